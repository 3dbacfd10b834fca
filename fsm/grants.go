package fsm

import (
	"maps"
	"slices"
	"strings"
)

// Key policy and grant commands.
const (
	// CmdPutKeyPolicy replaces a key's policy (the one named "default").
	CmdPutKeyPolicy = "PutKeyPolicy"
	// CmdCreateGrant adds a grant to a key, or with a Name matches an
	// existing grant with the same parameters and changes nothing.
	CmdCreateGrant = "CreateGrant"
	// CmdRemoveGrant deletes a grant (RetireGrant and RevokeGrant).
	CmdRemoveGrant = "RemoveGrant"
)

// MaxGrantsPerKey is AWS KMS's quota of grants per key.
const MaxGrantsPerKey = 50000

// PutKeyPolicyCmd sets a key's policy document, stored byte for byte.
type PutKeyPolicyCmd struct {
	KeyID  string `json:"key_id"`
	Policy string `json:"policy"`
}

// CreateGrantCmd creates Grant (its id, key id and creation date drawn by
// the leader; CreatedAt equals the command's Time).
type CreateGrantCmd struct {
	Grant Grant `json:"grant"`
}

// RemoveGrantCmd deletes the grant GrantID of key KeyID.
type RemoveGrantCmd struct {
	KeyID   string `json:"key_id"`
	GrantID string `json:"grant_id"`
}

// GrantConstraints are a grant's constraints, as AWS names them. Empty maps
// are stored as absent.
type GrantConstraints struct {
	EncryptionContextSubset map[string]string `json:"encryption_context_subset,omitempty"`
	EncryptionContextEquals map[string]string `json:"encryption_context_equals,omitempty"`
	SourceArn               string            `json:"source_arn,omitempty"`
}

// Grant is one grant on a key. Values reachable from the FSM are immutable.
type Grant struct {
	GrantID                  string            `json:"grant_id"`
	KeyID                    string            `json:"key_id"`
	Name                     string            `json:"name,omitempty"`
	CreatedAt                int64             `json:"created_at"` // unix nanoseconds
	GranteePrincipal         string            `json:"grantee_principal,omitempty"`
	GranteeServicePrincipal  string            `json:"grantee_service_principal,omitempty"`
	RetiringPrincipal        string            `json:"retiring_principal,omitempty"`
	RetiringServicePrincipal string            `json:"retiring_service_principal,omitempty"`
	IssuingAccount           string            `json:"issuing_account"`
	Operations               []string          `json:"operations"`
	Constraints              *GrantConstraints `json:"constraints,omitempty"`
}

// clone returns a deep copy.
func (g *Grant) clone() *Grant {
	c := *g
	c.Operations = slices.Clone(g.Operations)
	if g.Constraints != nil {
		gc := *g.Constraints
		gc.EncryptionContextSubset = maps.Clone(g.Constraints.EncryptionContextSubset)
		gc.EncryptionContextEquals = maps.Clone(g.Constraints.EncryptionContextEquals)
		if len(gc.EncryptionContextSubset) == 0 {
			gc.EncryptionContextSubset = nil
		}
		if len(gc.EncryptionContextEquals) == 0 {
			gc.EncryptionContextEquals = nil
		}
		if gc.EncryptionContextSubset == nil && gc.EncryptionContextEquals == nil && gc.SourceArn == "" {
			c.Constraints = nil
		} else {
			c.Constraints = &gc
		}
	}
	return &c
}

// SameParameters reports whether two grants on the same key were created
// with the same name and parameters (operations compared as sets), which
// makes a named CreateGrant idempotent.
func (g *Grant) SameParameters(o *Grant) bool {
	if g.KeyID != o.KeyID || g.Name != o.Name ||
		g.GranteePrincipal != o.GranteePrincipal || g.GranteeServicePrincipal != o.GranteeServicePrincipal ||
		g.RetiringPrincipal != o.RetiringPrincipal || g.RetiringServicePrincipal != o.RetiringServicePrincipal {
		return false
	}
	a, b := slices.Clone(g.Operations), slices.Clone(o.Operations)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(slices.Compact(a), slices.Compact(b)) {
		return false
	}
	var ca, cb GrantConstraints
	if g.Constraints != nil {
		ca = *g.Constraints
	}
	if o.Constraints != nil {
		cb = *o.Constraints
	}
	return ca.SourceArn == cb.SourceArn &&
		maps.Equal(ca.EncryptionContextSubset, cb.EncryptionContextSubset) &&
		maps.Equal(ca.EncryptionContextEquals, cb.EncryptionContextEquals)
}

// grantOrder sorts grants by creation, then id.
func grantOrder(a, b *Grant) int {
	if a.CreatedAt != b.CreatedAt {
		if a.CreatedAt < b.CreatedAt {
			return -1
		}
		return 1
	}
	return strings.Compare(a.GrantID, b.GrantID)
}

// namedGrantLocked returns the oldest grant on g's key with g's name and
// parameters; g must have a name.
func (f *FSM) namedGrantLocked(g *Grant) (*Grant, bool) {
	var best *Grant
	for _, have := range f.grantsByKey[g.KeyID] {
		if have.SameParameters(g) && (best == nil || grantOrder(have, best) < 0) {
			best = have
		}
	}
	return best, best != nil
}

func (f *FSM) putKeyPolicy(c *Command) *Error {
	p := c.PutKeyPolicy
	return f.mutateKey(p.KeyID, func(k *Key) *Error {
		k.Policy = p.Policy // allowed in every key state
		return nil
	})
}

func (f *FSM) createGrant(c *Command) *Error {
	g := c.CreateGrant.Grant.clone()
	k, ok := f.st.Keys[g.KeyID]
	if !ok {
		return fail(ErrNotFound, "Key '%s' does not exist", g.KeyID)
	}
	if err := requireEnabled(k); err != nil {
		return err
	}
	if g.Name != "" {
		if _, ok := f.namedGrantLocked(g); ok {
			return nil // idempotent: the existing grant stands
		}
	}
	if _, dup := f.st.Grants[g.GrantID]; dup {
		return fail(ErrAlreadyExists, "Grant %s already exists.", g.GrantID)
	}
	if len(f.grantsByKey[g.KeyID]) >= MaxGrantsPerKey {
		return fail(ErrLimitExceeded, "%s already has the maximum of %d grants.", k.ARN, MaxGrantsPerKey)
	}
	if f.st.Grants == nil {
		f.st.Grants = map[string]*Grant{}
	}
	f.st.Grants[g.GrantID] = g
	f.indexGrant(g)
	return nil
}

// grantIndex maps a key id to its grants by grant id: derived from
// st.Grants (not in snapshots), so that creating, counting and listing one
// key's grants does not visit every grant of the region.
type grantIndex map[string]map[string]*Grant

func newGrantIndex(grants map[string]*Grant) grantIndex {
	idx := grantIndex{}
	for _, g := range grants {
		idx.add(g)
	}
	return idx
}

func (idx grantIndex) add(g *Grant) {
	m := idx[g.KeyID]
	if m == nil {
		m = map[string]*Grant{}
		idx[g.KeyID] = m
	}
	m[g.GrantID] = g
}

func (f *FSM) indexGrant(g *Grant) {
	if f.grantsByKey == nil {
		f.grantsByKey = grantIndex{}
	}
	f.grantsByKey.add(g)
}

func (f *FSM) unindexGrant(g *Grant) {
	m := f.grantsByKey[g.KeyID]
	delete(m, g.GrantID)
	if len(m) == 0 {
		delete(f.grantsByKey, g.KeyID)
	}
}

func (f *FSM) removeGrant(c *Command) *Error {
	r := c.RemoveGrant
	g, ok := f.st.Grants[r.GrantID]
	if !ok || g.KeyID != r.KeyID {
		return fail(ErrNotFound, "Grant ID %s not found for key %s.", r.GrantID, r.KeyID)
	}
	delete(f.st.Grants, r.GrantID)
	f.unindexGrant(g)
	return nil
}

// dropGrantsOf deletes every grant of a key (the key is being deleted).
func (f *FSM) dropGrantsOf(keyID string) {
	for id := range f.grantsByKey[keyID] {
		delete(f.st.Grants, id)
	}
	delete(f.grantsByKey, keyID)
}

// Grant returns a copy of the grant with the given id.
func (f *FSM) Grant(id string) (Grant, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	g, ok := f.st.Grants[id]
	if !ok {
		return Grant{}, false
	}
	return *g.clone(), true
}

// NamedGrant returns the grant a named CreateGrant with g's key, name and
// parameters resolves to: the oldest such grant.
func (f *FSM) NamedGrant(g *Grant) (Grant, bool) {
	if g.Name == "" {
		return Grant{}, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	have, ok := f.namedGrantLocked(g)
	if !ok {
		return Grant{}, false
	}
	return *have.clone(), true
}

// Grants returns copies of the grants for which match returns true (nil:
// all), oldest first (ties by grant id).
func (f *FSM) Grants(match func(*Grant) bool) []Grant {
	f.mu.RLock()
	var sel []*Grant
	for _, g := range f.st.Grants {
		if match == nil || match(g) {
			sel = append(sel, g)
		}
	}
	f.mu.RUnlock()
	slices.SortFunc(sel, grantOrder)
	out := make([]Grant, len(sel))
	for i, g := range sel {
		out[i] = *g.clone()
	}
	return out
}

// GrantsForKey returns copies of the grants of key keyID for which match
// returns true (nil: all), oldest first (ties by grant id): Grants with the
// key's own grants only, at a cost that does not grow with other keys'.
func (f *FSM) GrantsForKey(keyID string, match func(*Grant) bool) []Grant {
	f.mu.RLock()
	var sel []*Grant
	for _, g := range f.grantsByKey[keyID] {
		if match == nil || match(g) {
			sel = append(sel, g)
		}
	}
	f.mu.RUnlock()
	slices.SortFunc(sel, grantOrder)
	out := make([]Grant, len(sel))
	for i, g := range sel {
		out[i] = *g.clone()
	}
	return out
}

// GrantCount returns the number of grants of every key.
func (f *FSM) GrantCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.st.Grants)
}
