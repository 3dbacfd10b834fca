package fsm

import (
	"maps"
	"slices"
)

// Key states, as AWS names them.
const (
	StateEnabled         = "Enabled"
	StateDisabled        = "Disabled"
	StatePendingDeletion = "PendingDeletion"
	StatePendingImport   = "PendingImport"
)

// MaxTagsPerKey is AWS KMS's limit on tags per key.
const MaxTagsPerKey = 50

// Key rotation limits and kinds, as AWS names them.
const (
	// MinRotationPeriodDays and MaxRotationPeriodDays bound the automatic
	// rotation period (RotationPeriodInDays).
	MinRotationPeriodDays = 90
	MaxRotationPeriodDays = 2560
	// MaxOnDemandRotations is how many on-demand rotations a key may have.
	MaxOnDemandRotations = 25

	RotationAutomatic = "AUTOMATIC"
	RotationOnDemand  = "ON_DEMAND"
)

// nanosPerDay converts rotation periods to unix nanoseconds.
const nanosPerDay int64 = 24 * 60 * 60 * 1_000_000_000

// KeyVersion is one version of a key's material, wrapped under a domain key.
type KeyVersion struct {
	VersionID       [16]byte `json:"version_id"`
	DomainKeyID     string   `json:"domain_key_id"`
	WrappedMaterial []byte   `json:"wrapped_material"`
	CreatedAt       int64    `json:"created_at"` // unix nanoseconds
	// RotationType is how the version came to be: "" for the key's first
	// material, RotationAutomatic or RotationOnDemand for a rotation (whose
	// date is CreatedAt).
	RotationType string `json:"rotation_type,omitempty"`
}

// Key is a customer key's metadata and wrapped material. Values reachable
// from the FSM are immutable; Apply replaces them with modified copies.
type Key struct {
	KeyID             string            `json:"key_id"`
	ARN               string            `json:"arn"`
	AccountID         string            `json:"account_id"`
	CreatedAt         int64             `json:"created_at"`
	Description       string            `json:"description"`
	KeyUsage          string            `json:"key_usage"`
	KeySpec           string            `json:"key_spec"`
	Origin            string            `json:"origin"`
	KeyManager        string            `json:"key_manager"`
	MultiRegion       bool              `json:"multi_region"`
	State             string            `json:"state"`
	DeletionDate      int64             `json:"deletion_date,omitempty"`
	PendingWindowDays int32             `json:"pending_window_days,omitempty"`
	Policy            string            `json:"policy"`
	Tags              map[string]string `json:"tags,omitempty"`
	Versions          []KeyVersion      `json:"versions"` // oldest first; the last one is current
	// Automatic rotation. The settings persist while the key is disabled or
	// pending deletion; the leader rotates only Enabled keys whose
	// NextRotation (unix nanoseconds) has come.
	RotationEnabled    bool  `json:"rotation_enabled,omitempty"`
	RotationPeriodDays int32 `json:"rotation_period_days,omitempty"`
	NextRotation       int64 `json:"next_rotation,omitempty"`
	// Imported material (Origin EXTERNAL). MaterialFingerprint identifies
	// the first material imported (kept after deletion, so only the same
	// material can come back); ExpirationModel and ValidTo (unix
	// nanoseconds, KEY_MATERIAL_EXPIRES only) describe the material present.
	MaterialFingerprint []byte `json:"material_fingerprint,omitempty"`
	ExpirationModel     string `json:"expiration_model,omitempty"`
	ValidTo             int64  `json:"valid_to,omitempty"`
}

// OnDemandRotations counts the key's on-demand rotations.
func (k *Key) OnDemandRotations() int {
	n := 0
	for _, v := range k.Versions {
		if v.RotationType == RotationOnDemand {
			n++
		}
	}
	return n
}

// CurrentVersion returns the version new ciphertexts are made under.
func (k *Key) CurrentVersion() (KeyVersion, bool) {
	if len(k.Versions) == 0 {
		return KeyVersion{}, false
	}
	return k.Versions[len(k.Versions)-1], true
}

// Version finds a version by id.
func (k *Key) Version(id [16]byte) (KeyVersion, bool) {
	for _, v := range k.Versions {
		if v.VersionID == id {
			return v, true
		}
	}
	return KeyVersion{}, false
}

// SortedTags returns the tag keys in order.
func (k *Key) SortedTagKeys() []string {
	return slices.Sorted(maps.Keys(k.Tags))
}

// clone returns a copy that may be modified without affecting k.
func (k *Key) clone() *Key {
	c := *k
	c.Tags = maps.Clone(k.Tags)
	c.Versions = slices.Clone(k.Versions)
	return &c
}

// Alias maps an alias name (alias/...) to a key id.
type Alias struct {
	Name        string `json:"name"`
	TargetKeyID string `json:"target_key_id"`
	CreatedAt   int64  `json:"created_at"`
	UpdatedAt   int64  `json:"updated_at"`
}

// DomainKey is a domain key wrapped under the region root key.
type DomainKey struct {
	ID        string `json:"id"`
	Wrapped   []byte `json:"wrapped"`
	CreatedAt int64  `json:"created_at"`
}

// dedupeEntry is the remembered result of an applied request.
type dedupeEntry struct {
	RequestID string `json:"request_id"`
	ErrCode   string `json:"err_code,omitempty"`
	ErrMsg    string `json:"err_msg,omitempty"`
}

// state is everything Apply changes. It is what a snapshot holds.
type state struct {
	Keys       map[string]*Key   `json:"keys"`
	Aliases    map[string]*Alias `json:"aliases"`
	DomainKeys []DomainKey       `json:"domain_keys"` // oldest first; the last one is current
	// Recent is the request-id deduplication window, oldest first.
	Recent []dedupeEntry `json:"recent"`
	// Grants by grant id (absent in snapshots without grants).
	Grants map[string]*Grant `json:"grants,omitempty"`
	// ImportParams by import token id (absent when there are none).
	ImportParams map[string]*ImportParams `json:"import_params,omitempty"`
}

func newState() *state {
	return &state{Keys: map[string]*Key{}, Aliases: map[string]*Alias{}}
}

// interner makes equal strings that many keys carry (the default key
// policy, account id, key spec, usage, origin, manager, state, domain key
// id) share one copy: each decoded command brings its own copies, and the
// default policy alone is a third of a key's memory. Interning changes no
// value, only where it is stored. The table is bounded: when full it starts
// over, which keeps what is common (it comes back at once) without
// tracking use.
type interner struct {
	m     map[string]string
	bytes int
}

const (
	internMaxEntries = 1024
	internMaxBytes   = 1 << 20
)

func (in *interner) str(s string) string {
	if s == "" {
		return s
	}
	if c, ok := in.m[s]; ok {
		return c
	}
	if len(s) > internMaxBytes/16 {
		return s // a rare huge policy would flush the table by itself
	}
	if in.m == nil || len(in.m) >= internMaxEntries || in.bytes+len(s) > internMaxBytes {
		in.m, in.bytes = make(map[string]string), 0
	}
	in.m[s] = s
	in.bytes += len(s)
	return s
}

// key interns k's shared strings in place; k must not be visible to
// readers yet (a fresh copy).
func (in *interner) key(k *Key) {
	k.AccountID = in.str(k.AccountID)
	k.KeyUsage = in.str(k.KeyUsage)
	k.KeySpec = in.str(k.KeySpec)
	k.Origin = in.str(k.Origin)
	k.KeyManager = in.str(k.KeyManager)
	k.State = in.str(k.State)
	k.Policy = in.str(k.Policy)
	k.ExpirationModel = in.str(k.ExpirationModel)
	for i := range k.Versions {
		v := &k.Versions[i]
		v.DomainKeyID = in.str(v.DomainKeyID)
		v.RotationType = in.str(v.RotationType)
	}
}
