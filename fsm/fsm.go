package fsm

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/raft"
)

// DefaultDedupeWindow is how many recent request ids Apply remembers.
// Retries arrive within seconds; the window is sized well beyond that.
const DefaultDedupeWindow = 20000

// Result is what Apply returns for every command.
type Result struct {
	// Err is nil on success, else a business error (*Error).
	Err *Error
	// Duplicate is true when the request id had already been applied and
	// this is the remembered outcome.
	Duplicate bool
}

// FSM is kmsd's replicated state machine. It implements raft.FSM.
type FSM struct {
	mu      sync.RWMutex
	st      *state
	recent  map[string]int // request id -> index in st.Recent (offset by dropped)
	dropped int            // entries dropped from the front of st.Recent
	window  int
	// strs shares the strings many keys have equal (policy, key spec...),
	// written under mu by Apply and Restore.
	strs   interner
	hasher stateHasher
	// grantsByKey indexes st.Grants by key id (grants.go).
	grantsByKey grantIndex
}

// New returns an empty FSM.
func New() *FSM {
	return &FSM{st: newState(), recent: map[string]int{}, window: DefaultDedupeWindow}
}

var _ raft.BatchingFSM = (*FSM)(nil)

// Apply applies one committed log entry. It panics only when the entry
// cannot be decoded: every replica would fail the same way, and going on
// would diverge from the log.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd := mustDecode(l)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applyLocked(cmd)
}

// ApplyBatch implements raft.BatchingFSM: raft hands over every entry
// committed since the last call (up to its MaxAppendEntries), and the FSM
// applies them in order exactly as Apply would one by one, with the same
// results. Decoding, the bulk of the work, happens before the write lock is
// taken, and the lock is taken once per batch rather than once per entry,
// so readers wait less under a high write rate. An undecodable entry panics
// as Apply does, after the entries before it have been applied.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	cmds := make([]*Command, len(logs))
	var bad *raft.Log
	var badErr error
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		cmd, err := Decode(l.Data)
		if err != nil {
			bad, badErr, cmds = l, err, cmds[:i]
			break
		}
		cmds[i] = cmd
	}
	out := make([]any, len(logs))
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, cmd := range cmds {
		if cmd != nil {
			out[i] = f.applyLocked(cmd)
		}
	}
	if bad != nil {
		panic(undecodable(bad, badErr))
	}
	return out
}

func mustDecode(l *raft.Log) *Command {
	cmd, err := Decode(l.Data)
	if err != nil {
		panic(undecodable(l, err))
	}
	return cmd
}

func undecodable(l *raft.Log, err error) string {
	return fmt.Sprintf("fsm: undecodable command at index %d: %v", l.Index, err)
}

// applyLocked applies one decoded command; f.mu is held for writing.
func (f *FSM) applyLocked(cmd *Command) *Result {
	if res, ok := f.resultLocked(cmd.RequestID); ok {
		res.Duplicate = true
		return res
	}
	bizErr := f.applyCommand(cmd)
	f.remember(cmd.RequestID, bizErr)
	return &Result{Err: bizErr}
}

// remember records a request's outcome, dropping the oldest beyond the window.
func (f *FSM) remember(requestID string, e *Error) {
	entry := dedupeEntry{RequestID: requestID}
	if e != nil {
		entry.ErrCode, entry.ErrMsg = errorCodes[e.Kind], e.Message
	}
	f.recent[requestID] = len(f.st.Recent) + f.dropped
	f.st.Recent = append(f.st.Recent, entry)
	if over := len(f.st.Recent) - f.window; over > 0 {
		for _, old := range f.st.Recent[:over] {
			delete(f.recent, old.RequestID)
		}
		// Reslice rather than copy the whole window on every Apply: append
		// reallocates (copying only the live entries) once the capacity
		// runs out, so eviction costs O(1) amortised.
		clear(f.st.Recent[:over]) // release the dropped ids
		f.st.Recent = f.st.Recent[over:]
		f.dropped += over
	}
}

func (f *FSM) applyCommand(c *Command) *Error {
	switch c.Type {
	case CmdCreateKey:
		return f.createKey(c)
	case CmdUpdateKeyDescription:
		return f.mutateKey(c.UpdateKeyDescription.KeyID, func(k *Key) *Error {
			if k.State == StatePendingDeletion {
				return pendingDeletion(k)
			}
			k.Description = c.UpdateKeyDescription.Description
			return nil
		})
	case CmdSetKeyEnabled:
		return f.mutateKey(c.SetKeyEnabled.KeyID, func(k *Key) *Error {
			switch k.State {
			case StatePendingDeletion:
				return pendingDeletion(k)
			case StatePendingImport:
				return fail(ErrInvalidState, "%s is pending import.", k.ARN)
			}
			if c.SetKeyEnabled.Enabled {
				k.State = StateEnabled
			} else {
				k.State = StateDisabled
			}
			return nil
		})
	case CmdScheduleKeyDeletion:
		sc := c.ScheduleKeyDeletion
		return f.mutateKey(sc.KeyID, func(k *Key) *Error {
			if k.State == StatePendingDeletion {
				return pendingDeletion(k)
			}
			k.State = StatePendingDeletion
			k.DeletionDate = sc.DeletionDate
			k.PendingWindowDays = sc.WindowDays
			return nil
		})
	case CmdCancelKeyDeletion:
		return f.mutateKey(c.KeyRef.KeyID, func(k *Key) *Error {
			if k.State != StatePendingDeletion {
				return fail(ErrInvalidState, "%s is not pending deletion.", k.ARN)
			}
			k.State = StateDisabled
			if k.Origin == OriginExternal && !k.HasMaterial() {
				k.State = StatePendingImport // its material was deleted meanwhile
			}
			k.DeletionDate, k.PendingWindowDays = 0, 0
			return nil
		})
	case CmdDeleteKey:
		return f.deleteKey(c)
	case CmdCreateAlias, CmdUpdateAlias:
		return f.putAlias(c)
	case CmdDeleteAlias:
		if _, ok := f.st.Aliases[c.Alias.Name]; !ok {
			return fail(ErrNotFound, "Alias %s is not found.", c.Alias.Name)
		}
		delete(f.st.Aliases, c.Alias.Name)
		return nil
	case CmdTagResource:
		return f.mutateKey(c.TagResource.KeyID, func(k *Key) *Error {
			if k.State == StatePendingDeletion {
				return pendingDeletion(k)
			}
			if k.Tags == nil {
				k.Tags = map[string]string{}
			}
			maps.Copy(k.Tags, c.TagResource.Tags)
			if len(k.Tags) > MaxTagsPerKey {
				return fail(ErrLimitExceeded, "A key may have at most %d tags.", MaxTagsPerKey)
			}
			return nil
		})
	case CmdUntagResource:
		return f.mutateKey(c.UntagResource.KeyID, func(k *Key) *Error {
			if k.State == StatePendingDeletion {
				return pendingDeletion(k)
			}
			for _, t := range c.UntagResource.TagKeys {
				delete(k.Tags, t)
			}
			return nil
		})
	case CmdAddDomainKey:
		dk := *c.AddDomainKey
		for _, have := range f.st.DomainKeys {
			if have.ID == dk.ID {
				return fail(ErrAlreadyExists, "domain key %s exists", dk.ID)
			}
		}
		f.st.DomainKeys = append(slices.Clone(f.st.DomainKeys), dk)
		return nil
	case CmdSetKeyRotation:
		return f.setKeyRotation(c)
	case CmdRotateKeyMaterial:
		return f.rotateKeyMaterial(c)
	case CmdPutKeyPolicy:
		return f.putKeyPolicy(c)
	case CmdCreateGrant:
		return f.createGrant(c)
	case CmdRemoveGrant:
		return f.removeGrant(c)
	case CmdPutImportParams:
		return f.putImportParams(c)
	case CmdImportKeyMaterial:
		return f.importKeyMaterial(c)
	case CmdDeleteImportedKeyMaterial:
		return f.deleteImportedKeyMaterial(c)
	default:
		panic(fmt.Sprintf("fsm: unknown command type %q", c.Type))
	}
}

// requireEnabled applies the key-state rules shared by the rotation
// commands and CreateGrant (reference/key-states.md): only an Enabled key.
func requireEnabled(k *Key) *Error {
	switch k.State {
	case StateEnabled:
		return nil
	case StateDisabled:
		return fail(ErrDisabled, "%s is disabled.", k.ARN)
	case StatePendingDeletion:
		return pendingDeletion(k)
	case StatePendingImport:
		return fail(ErrInvalidState, "%s is pending import.", k.ARN)
	default:
		return fail(ErrInvalidState, "%s is in state %s.", k.ARN, k.State)
	}
}

func (f *FSM) setKeyRotation(c *Command) *Error {
	sr := c.SetKeyRotation
	return f.mutateKey(sr.KeyID, func(k *Key) *Error {
		if err := requireEnabled(k); err != nil {
			return err
		}
		if !sr.Enabled {
			k.RotationEnabled, k.RotationPeriodDays, k.NextRotation = false, 0, 0
			return nil
		}
		if sr.PeriodDays < MinRotationPeriodDays || sr.PeriodDays > MaxRotationPeriodDays {
			return fail(ErrPrecondition, "rotation period %d is outside %d to %d days.", sr.PeriodDays, MinRotationPeriodDays, MaxRotationPeriodDays)
		}
		if k.RotationEnabled {
			// A new period keeps the schedule's anchor (the enable date or
			// the last automatic rotation).
			k.NextRotation += int64(sr.PeriodDays-k.RotationPeriodDays) * nanosPerDay
		} else {
			k.NextRotation = c.Time + int64(sr.PeriodDays)*nanosPerDay
		}
		k.RotationEnabled, k.RotationPeriodDays = true, sr.PeriodDays
		return nil
	})
}

func (f *FSM) rotateKeyMaterial(c *Command) *Error {
	rk := c.RotateKeyMaterial
	v := rk.Version
	return f.mutateKey(rk.KeyID, func(k *Key) *Error {
		switch v.RotationType {
		case RotationAutomatic:
			if k.State != StateEnabled || !k.RotationEnabled || k.NextRotation > c.Time {
				return fail(ErrPrecondition, "%s is not due for automatic rotation.", k.ARN)
			}
			k.NextRotation = c.Time + int64(k.RotationPeriodDays)*nanosPerDay
		case RotationOnDemand:
			if err := requireEnabled(k); err != nil {
				return err
			}
			if k.OnDemandRotations() >= MaxOnDemandRotations {
				return fail(ErrLimitExceeded, "%s has reached the limit of %d on-demand rotations.", k.ARN, MaxOnDemandRotations)
			}
		default:
			return fail(ErrPrecondition, "unknown rotation type %q", v.RotationType)
		}
		if _, dup := k.Version(v.VersionID); dup {
			return fail(ErrAlreadyExists, "%s already has a material version with this id.", k.ARN)
		}
		k.Versions = append(k.Versions, v)
		return nil
	})
}

func pendingDeletion(k *Key) *Error {
	return fail(ErrInvalidState, "%s is pending deletion.", k.ARN)
}

// mutateKey applies fn to a copy of the key and stores the copy only when fn
// succeeds, so a failed command changes nothing.
func (f *FSM) mutateKey(id string, fn func(*Key) *Error) *Error {
	k, ok := f.st.Keys[id]
	if !ok {
		return fail(ErrNotFound, "Key '%s' does not exist", id)
	}
	c := k.clone()
	if err := fn(c); err != nil {
		return err
	}
	f.strs.key(c)
	f.st.Keys[id] = c
	return nil
}

func (f *FSM) createKey(c *Command) *Error {
	k := c.CreateKey.Key.clone()
	if _, ok := f.st.Keys[k.KeyID]; ok {
		return fail(ErrAlreadyExists, "Key '%s' already exists", k.ARN)
	}
	f.strs.key(k)
	f.st.Keys[k.KeyID] = k
	return nil
}

func (f *FSM) deleteKey(c *Command) *Error {
	id := c.KeyRef.KeyID
	k, ok := f.st.Keys[id]
	if !ok {
		return fail(ErrNotFound, "Key '%s' does not exist", id)
	}
	if k.State != StatePendingDeletion || k.DeletionDate > c.Time {
		return fail(ErrPrecondition, "%s is not due for deletion.", k.ARN)
	}
	delete(f.st.Keys, id)
	f.dropGrantsOf(id) // grants disappear with their key
	f.dropImportParamsOf(id)
	for name, a := range f.st.Aliases {
		if a.TargetKeyID == id {
			delete(f.st.Aliases, name)
		}
	}
	return nil
}

func (f *FSM) putAlias(c *Command) *Error {
	a := c.Alias
	existing, exists := f.st.Aliases[a.Name]
	if c.Type == CmdCreateAlias && exists {
		return fail(ErrAlreadyExists, "An alias with the name %s already exists", a.Name)
	}
	if c.Type == CmdUpdateAlias && !exists {
		return fail(ErrNotFound, "Alias %s is not found.", a.Name)
	}
	k, ok := f.st.Keys[a.TargetKeyID]
	if !ok {
		return fail(ErrNotFound, "Key '%s' does not exist", a.TargetKeyID)
	}
	if k.State == StatePendingDeletion {
		return pendingDeletion(k)
	}
	n := &Alias{Name: a.Name, TargetKeyID: a.TargetKeyID, CreatedAt: c.Time, UpdatedAt: c.Time}
	if exists {
		n.CreatedAt = existing.CreatedAt
	}
	f.st.Aliases[a.Name] = n
	return nil
}

// Key returns the key with the given id. The value is immutable.
func (f *FSM) Key(id string) (*Key, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	k, ok := f.st.Keys[id]
	return k, ok
}

// Alias returns the alias with the given name.
func (f *FSM) Alias(name string) (Alias, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	a, ok := f.st.Aliases[name]
	if !ok {
		return Alias{}, false
	}
	return *a, true
}

// ListKeys returns up to limit keys with ids greater than after, in id
// order, and whether more follow.
func (f *FSM) ListKeys(after string, limit int) ([]*Key, bool) {
	f.mu.RLock()
	ids := make([]string, 0, len(f.st.Keys))
	for id := range f.st.Keys {
		if id > after {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	more := len(ids) > limit
	if more {
		ids = ids[:limit]
	}
	out := make([]*Key, len(ids))
	for i, id := range ids {
		out[i] = f.st.Keys[id]
	}
	f.mu.RUnlock()
	return out, more
}

// ListAliases returns up to limit aliases with names greater than after, in
// name order, optionally only those targeting keyID, and whether more follow.
func (f *FSM) ListAliases(keyID, after string, limit int) ([]Alias, bool) {
	f.mu.RLock()
	var out []Alias
	for _, a := range f.st.Aliases {
		if a.Name > after && (keyID == "" || a.TargetKeyID == keyID) {
			out = append(out, *a)
		}
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(x, y Alias) int { return strings.Compare(x.Name, y.Name) })
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more
}

// DomainKey returns the domain key with the given id.
func (f *FSM) DomainKey(id string) (DomainKey, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, dk := range f.st.DomainKeys {
		if dk.ID == id {
			return dk, true
		}
	}
	return DomainKey{}, false
}

// CurrentDomainKey returns the domain key new material is wrapped under.
func (f *FSM) CurrentDomainKey() (DomainKey, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if len(f.st.DomainKeys) == 0 {
		return DomainKey{}, false
	}
	return f.st.DomainKeys[len(f.st.DomainKeys)-1], true
}

// KeysDueForDeletion returns the ids of keys pending deletion whose deletion
// date is at or before now (unix nanoseconds), in id order.
func (f *FSM) KeysDueForDeletion(now int64) []string {
	f.mu.RLock()
	var ids []string
	for id, k := range f.st.Keys {
		if k.State == StatePendingDeletion && k.DeletionDate <= now {
			ids = append(ids, id)
		}
	}
	f.mu.RUnlock()
	sort.Strings(ids)
	return ids
}

// KeysDueForRotation returns the ids of enabled keys with automatic rotation
// whose next rotation date is at or before now (unix nanoseconds), in id
// order. Disabled keys and keys pending deletion are not rotated.
func (f *FSM) KeysDueForRotation(now int64) []string {
	f.mu.RLock()
	var ids []string
	for id, k := range f.st.Keys {
		if k.State == StateEnabled && k.RotationEnabled && k.NextRotation <= now {
			ids = append(ids, id)
		}
	}
	f.mu.RUnlock()
	sort.Strings(ids)
	return ids
}

// KeyCount returns the number of keys.
func (f *FSM) KeyCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.st.Keys)
}

// ResultOf returns the remembered outcome of an applied request. A node
// whose proposal was committed through another node (forwarding) reads its
// outcome here once it has applied the entry.
func (f *FSM) ResultOf(requestID string) (*Result, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.resultLocked(requestID)
}

func (f *FSM) resultLocked(requestID string) (*Result, bool) {
	i, ok := f.recent[requestID]
	if !ok {
		return nil, false
	}
	e := f.st.Recent[i-f.dropped]
	res := &Result{}
	if e.ErrCode != "" {
		res.Err = &Error{Kind: kindFromCode(e.ErrCode), Message: e.ErrMsg}
	}
	return res, true
}
