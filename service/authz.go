package service

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/kmsd/kmsd/fsm"
)

// Authorization of every KMS operation, as AWS KMS decides it:
//
//   - An explicit Deny in the key policy, or in the caller's IAM identity
//     policy, wins.
//   - Otherwise an operation on a key is allowed when the key policy allows
//     the caller directly (its ARN, or "*"); or the key policy allows the
//     caller's account (the account id or arn:aws:iam::ACCOUNT:root, which
//     delegates to IAM) and the caller's identity policy allows the
//     operation too (the account root needs no identity policy); or a
//     grant on the key for the caller (GranteePrincipal is its ARN) has the
//     operation and its encryption context constraints match the request.
//     Grant tokens in the request name grants a follower may not have
//     applied yet: those are looked up after catching up with the leader.
//   - An operation not on a key (CreateKey, ListKeys, ListAliases without
//     KeyId, ListRetirableGrants, GenerateRandom) is decided by the identity
//     policy alone. The account root is always allowed, and so is a
//     credential that has no identity policy at all: before policies were
//     enforced every credential could do these, and a credentials file
//     without policies keeps working for them. A credential with an identity
//     policy needs it to allow them.
//   - Break glass: the account root may always GetKeyPolicy, PutKeyPolicy
//     and ListKeyPolicies, whatever the key policy says. AWS recovers a key
//     whose policy locks everybody out through AWS Support; kmsd has none,
//     so the root credential is the way back. (For the same reason the
//     policy lockout safety check is not made for the root.)
//   - A request without request information (RequestInfoFrom fails) comes
//     from kmsd itself (maintenance, in-process tests) and is allowed; the
//     api layer attaches the authenticated caller to every request.
//
// The condition keys of a request are kms:CallerAccount, aws:PrincipalArn,
// aws:PrincipalAccount, kms:EncryptionContext:KEY and
// kms:EncryptionContextKeys (operations with an encryption context),
// kms:RequestAlias (a KeyId that is an alias), kms:KeySpec, kms:KeyUsage,
// kms:KeyOrigin, kms:GrantOperations, kms:GranteePrincipal,
// kms:RetiringPrincipal, kms:GrantConstraintType and
// kms:GrantIsForAWSResource (CreateGrant), kms:BypassPolicyLockoutSafetyCheck
// (CreateKey, PutKeyPolicy). kms:ViaService is never present.

// authzRequest is one authorization question.
type authzRequest struct {
	action string   // KMS action without the "kms:" prefix
	key    *fsm.Key // nil for operations not on a key
	ref    string   // the KeyId as the caller gave it (kms:RequestAlias)
	ec     map[string]string
	hasEC  bool // the operation takes an encryption context
	tokens []string
	extra  map[string][]string // more condition keys, as named by AWS
	// grantOK is a further check a grant must pass to allow the request
	// (CreateGrant: the new grant may not exceed it).
	grantOK func(*fsm.Grant) bool
}

const (
	actKMS = "kms:"

	whyNoResourcePolicy = "because no resource-based policy allows the kms:%s action"
	whyNoIdentityPolicy = "because no identity-based policy allows the kms:%s action"
	whyResourceDeny     = "with an explicit deny in a resource-based policy"
	whyIdentityDeny     = "with an explicit deny in an identity-based policy"

	lockoutMessage = "The new key policy will not allow you to update the key policy in the future."
)

// breakGlassActions are the actions the account root may always perform.
var breakGlassActions = []string{"GetKeyPolicy", "PutKeyPolicy", "ListKeyPolicies"}

func (s *Service) rootARN() string { return "arn:aws:iam::" + s.cfg.AccountID + ":root" }

// authzCaller returns the caller of ctx, or ok false for kmsd's own calls.
func (s *Service) authzCaller(ctx context.Context) (c Caller, isRoot, ok bool) {
	ri, ok := RequestInfoFrom(ctx)
	if !ok {
		return Caller{}, false, false
	}
	c = ri.Caller
	if c.AccountID == "" {
		if p := strings.SplitN(c.ARN, ":", 6); len(p) == 6 {
			c.AccountID = p[4]
		}
	}
	return c, c.ARN != "" && c.ARN == s.rootARN(), true
}

func accessDenied(callerARN, action, resource, why string) error {
	if strings.Contains(why, "%s") {
		why = strings.ReplaceAll(why, "%s", action)
	}
	return newError(ErrAccessDenied, "User: %s is not authorized to perform: kms:%s on resource: %s %s", callerARN, action, resource, why)
}

// buildContext assembles the evaluation context of a request.
func (s *Service) buildContext(c Caller, isRoot bool, r *authzRequest) *authzContext {
	ac := &authzContext{
		callerARN:     c.ARN,
		callerAccount: c.AccountID,
		isRoot:        isRoot,
		action:        actKMS + r.action,
		resource:      "*",
		keys: map[string][]string{
			"kms:calleraccount":         {c.AccountID},
			"aws:principalarn":          {c.ARN},
			"aws:principalaccount":      {c.AccountID},
			"kms:grantisforawsresource": {"false"},
		},
	}
	if r.key != nil {
		ac.resource = r.key.ARN
		ac.keys["kms:keyspec"] = []string{r.key.KeySpec}
		ac.keys["kms:keyusage"] = []string{r.key.KeyUsage}
		ac.keys["kms:keyorigin"] = []string{r.key.Origin}
	}
	if r.hasEC && len(r.ec) > 0 {
		keys := make([]string, 0, len(r.ec))
		for k, v := range r.ec {
			keys = append(keys, k)
			name := "kms:encryptioncontext:" + strings.ToLower(k)
			ac.keys[name] = append(ac.keys[name], v)
		}
		slices.Sort(keys)
		ac.keys["kms:encryptioncontextkeys"] = keys
	}
	if alias := requestAlias(r.ref); alias != "" {
		ac.keys["kms:requestalias"] = []string{alias}
	}
	for k, v := range r.extra {
		ac.keys[strings.ToLower(k)] = v
	}
	return ac
}

// requestAlias returns the alias name a KeyId names (alias/x or an alias
// ARN), or "".
func requestAlias(ref string) string {
	if strings.HasPrefix(ref, aliasPrefix) {
		return ref
	}
	if strings.HasPrefix(ref, "arn:") {
		if p := strings.SplitN(ref, ":", 6); len(p) == 6 && strings.HasPrefix(p[5], aliasPrefix) {
			return p[5]
		}
	}
	return ""
}

// authorize decides a request; nil means allowed, otherwise the
// AccessDeniedException to return. An allowed request on a key is reported
// to Config.OnKeyUse.
func (s *Service) authorize(ctx context.Context, r authzRequest) error {
	err := s.decide(ctx, r)
	if err == nil && r.key != nil && s.cfg.OnKeyUse != nil {
		s.cfg.OnKeyUse(r.key.KeyID, r.action)
	}
	return err
}

// decide is authorize without the usage report.
func (s *Service) decide(ctx context.Context, r authzRequest) error {
	c, isRoot, ok := s.authzCaller(ctx)
	if !ok {
		return nil
	}
	resource := "*"
	if r.key != nil {
		resource = r.key.ARN
	}
	if c.ARN == "" {
		return newError(ErrAccessDenied, "The request has no authenticated caller.")
	}
	if isRoot && r.key != nil && slices.Contains(breakGlassActions, r.action) {
		return nil
	}
	ac := s.buildContext(c, isRoot, &r)
	var kp, id policyResult
	if r.key != nil {
		kp = evalPolicy(s.keyPolicy(r.key), ac, true)
	}
	hasIdentity := !isRoot && strings.TrimSpace(c.Policy) != ""
	if hasIdentity {
		id = evalPolicy(s.policies.get(c.Policy), ac, false)
	}
	switch {
	case kp.deny:
		return accessDenied(c.ARN, r.action, resource, whyResourceDeny)
	case id.deny:
		return accessDenied(c.ARN, r.action, resource, whyIdentityDeny)
	}
	if r.key == nil {
		if isRoot || !hasIdentity || id.allowDirect {
			return nil
		}
		return accessDenied(c.ARN, r.action, resource, whyNoIdentityPolicy)
	}
	if kp.allowDirect || (kp.allowAccount && (isRoot || id.allowDirect)) {
		return nil
	}
	if s.grantAllows(ctx, &r, c.ARN) {
		return nil
	}
	if kp.allowAccount {
		return accessDenied(c.ARN, r.action, resource, whyNoIdentityPolicy)
	}
	return accessDenied(c.ARN, r.action, resource, whyNoResourcePolicy)
}

// grantAllows reports whether a grant of the key allows the request for
// the caller.
func (s *Service) grantAllows(ctx context.Context, r *authzRequest, callerARN string) bool {
	if !slices.Contains(grantOperationEnum, r.action) {
		return false
	}
	fits := func(g *fsm.Grant) bool {
		return g.KeyID == r.key.KeyID && g.GranteePrincipal == callerARN &&
			slices.Contains(g.Operations, r.action) && grantConstraintsMatch(g, r) &&
			(r.grantOK == nil || r.grantOK(g))
	}
	if len(s.fsm.Grants(fits)) > 0 {
		return true
	}
	caughtUp := false
	for _, tok := range r.tokens {
		id, err := s.parseGrantToken(tok)
		if err != nil {
			continue
		}
		g, ok := s.fsm.Grant(id)
		if !ok && !caughtUp {
			// A grant token makes a grant usable before every node has it.
			caughtUp = true
			if s.proposer.ReadBarrier(ctx) == nil {
				g, ok = s.fsm.Grant(id)
			}
		}
		if ok && fits(&g) {
			return true
		}
	}
	return false
}

// grantConstraintsMatch applies a grant's encryption context constraints to
// the request: EncryptionContextSubset pairs must all be in the request's
// context, EncryptionContextEquals must be all of it. They do not apply to
// the grant management operations.
func grantConstraintsMatch(g *fsm.Grant, r *authzRequest) bool {
	c := g.Constraints
	if c == nil || slices.Contains(grantManagementOps, r.action) {
		return true
	}
	if c.EncryptionContextSubset != nil {
		for k, v := range c.EncryptionContextSubset {
			if have, ok := r.ec[k]; !ok || have != v {
				return false
			}
		}
	}
	if c.EncryptionContextEquals != nil && !maps.Equal(c.EncryptionContextEquals, r.ec) {
		return false
	}
	return true
}

// subGrantOK is CreateGrant's rule for a grantee creating a grant from its
// own: the new grant's operations must be among the parent's, and its
// encryption context constraints at least as strict.
func subGrantOK(in *CreateGrantInput) func(*fsm.Grant) bool {
	return func(parent *fsm.Grant) bool {
		for _, op := range in.Operations {
			if !slices.Contains(parent.Operations, op) {
				return false
			}
		}
		pc := parent.Constraints
		if pc == nil || (pc.EncryptionContextSubset == nil && pc.EncryptionContextEquals == nil) {
			return true
		}
		if in.Constraints == nil {
			return false
		}
		if pc.EncryptionContextEquals != nil {
			return maps.Equal(pc.EncryptionContextEquals, in.Constraints.EncryptionContextEquals)
		}
		child := in.Constraints.EncryptionContextEquals
		if child == nil {
			child = in.Constraints.EncryptionContextSubset
		}
		for k, v := range pc.EncryptionContextSubset {
			if have, ok := child[k]; !ok || have != v {
				return false
			}
		}
		return true
	}
}

// checkLockout is the policy lockout safety check of CreateKey and
// PutKeyPolicy: unless bypassed, the new policy must let the caller call
// PutKeyPolicy on the key afterwards.
func (s *Service) checkLockout(ctx context.Context, policy, keyARN string, bypass *bool) error {
	if bypass != nil && *bypass {
		return nil
	}
	c, isRoot, ok := s.authzCaller(ctx)
	if !ok || isRoot {
		return nil // kmsd itself; the root always may (break glass)
	}
	r := authzRequest{action: "PutKeyPolicy", key: &fsm.Key{ARN: keyARN, Policy: policy}}
	ac := s.buildContext(c, isRoot, &r)
	kp := evalPolicy(parsePolicy(policy), ac, true)
	var id policyResult
	if strings.TrimSpace(c.Policy) != "" {
		id = evalPolicy(s.policies.get(c.Policy), ac, false)
	}
	if !kp.deny && !id.deny && (kp.allowDirect || (kp.allowAccount && id.allowDirect)) {
		return nil
	}
	return newError(ErrMalformedPolicy, lockoutMessage)
}

// boolString is "true" or "false".
func boolString(b *bool) string {
	if b != nil && *b {
		return "true"
	}
	return "false"
}

// authorizeKey is authorize for the common case: an action on a key named
// by ref.
func (s *Service) authorizeKey(ctx context.Context, k *fsm.Key, action, ref string) error {
	return s.authorize(ctx, authzRequest{action: action, key: k, ref: ref})
}

// createKeyConditions are the condition keys of a CreateKey request.
func createKeyConditions(in *CreateKeyInput) map[string][]string {
	m := map[string][]string{
		"kms:BypassPolicyLockoutSafetyCheck": {boolString(in.BypassPolicyLockoutSafetyCheck)},
		"kms:MultiRegion":                    {boolString(in.MultiRegion)},
		"kms:KeySpec":                        {specSymmetricDefault},
		"kms:KeyUsage":                       {usageEncryptDecrypt},
		"kms:KeyOrigin":                      {originAWSKMS},
	}
	if in.KeySpec != nil {
		m["kms:KeySpec"] = []string{*in.KeySpec}
	} else if in.CustomerMasterKeySpec != nil {
		m["kms:KeySpec"] = []string{*in.CustomerMasterKeySpec}
	}
	if in.KeyUsage != nil {
		m["kms:KeyUsage"] = []string{*in.KeyUsage}
	}
	if in.Origin != nil {
		m["kms:KeyOrigin"] = []string{*in.Origin}
	}
	return m
}

// createGrantConditions are the condition keys of a CreateGrant request.
func createGrantConditions(in *CreateGrantInput) map[string][]string {
	m := map[string][]string{"kms:GrantOperations": in.Operations}
	if in.GranteePrincipal != nil {
		m["kms:GranteePrincipal"] = []string{*in.GranteePrincipal}
	}
	if in.RetiringPrincipal != nil {
		m["kms:RetiringPrincipal"] = []string{*in.RetiringPrincipal}
	}
	if c := in.Constraints; c != nil {
		var types []string
		if len(c.EncryptionContextSubset) > 0 {
			types = append(types, "EncryptionContextSubset")
		}
		if len(c.EncryptionContextEquals) > 0 {
			types = append(types, "EncryptionContextEquals")
		}
		if types != nil {
			m["kms:GrantConstraintType"] = types
		}
	}
	return m
}

// authorizeRetire decides RetireGrant: the grant's retiring principal may
// retire it, and so may its grantee when the grant has the RetireGrant
// operation; anyone else needs kms:RetireGrant on the key.
func (s *Service) authorizeRetire(ctx context.Context, g *fsm.Grant) error {
	c, _, ok := s.authzCaller(ctx)
	if !ok {
		return nil
	}
	if c.ARN != "" && (c.ARN == g.RetiringPrincipal ||
		(c.ARN == g.GranteePrincipal && slices.Contains(g.Operations, grantOpRetireGrant))) {
		return nil
	}
	k, ok := s.fsm.Key(g.KeyID)
	if !ok {
		return newError(ErrAccessDenied, "User: %s is not authorized to perform: kms:RetireGrant", c.ARN)
	}
	return s.authorize(ctx, authzRequest{action: grantOpRetireGrant, key: k,
		grantOK: func(own *fsm.Grant) bool { return own.GrantID == g.GrantID }})
}

// keyPolicy is the parsed policy a key is evaluated under: its own, or
// for a key whose stored policy has no Statement at all (state written
// before policies were stored; CreateKey and PutKeyPolicy never store one),
// the default key policy.
func (s *Service) keyPolicy(k *fsm.Key) parsedPolicy {
	p := s.policies.get(k.Policy)
	if p.noStatement {
		return s.policies.get(s.defaultKeyPolicy())
	}
	return p
}
