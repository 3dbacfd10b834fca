package service

import (
	"context"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kmsd/kmsd/crypto"
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
// The condition keys of a request are those AWS KMS puts in the request
// context of the same operation, with AWS's value types. Each is worked
// out when a policy asks for it (authzContext.lookup), not per request:
//
//   - every request: kms:CallerAccount, aws:PrincipalArn,
//     aws:PrincipalAccount, aws:PrincipalType, aws:username (IAM users),
//     aws:CurrentTime, aws:EpochTime, aws:SecureTransport, aws:SourceIp,
//     aws:UserAgent, aws:RequestedRegion;
//   - operations on a key: kms:KeySpec, kms:KeyUsage, kms:KeyOrigin (and
//     the deprecated kms:CustomerMasterKeySpec / kms:CustomerMasterKeyUsage),
//     kms:MultiRegion, kms:MultiRegionKeyType, aws:ResourceAccount,
//     aws:ResourceTag/KEY, kms:ResourceAliases (reads the alias table),
//     kms:RequestAlias (a KeyId that is an alias);
//   - operations with an encryption context: kms:EncryptionContext:KEY and
//     kms:EncryptionContextKeys (CreateGrant: those of its constraints);
//   - request parameters (requestConditions): kms:EncryptionAlgorithm,
//     kms:SigningAlgorithm, kms:MessageType, kms:MacAlgorithm,
//     kms:DataKeyPairSpec, kms:ReEncryptOnSameKey, kms:WrappingAlgorithm,
//     kms:WrappingKeySpec, kms:ExpirationModel, kms:ValidTo,
//     kms:RotationPeriodInDays, kms:GrantOperations, kms:GranteePrincipal,
//     kms:RetiringPrincipal, kms:GrantConstraintType,
//     kms:BypassPolicyLockoutSafetyCheck, aws:RequestTag/KEY, aws:TagKeys,
//     and for CreateKey kms:KeySpec, kms:KeyUsage, kms:KeyOrigin and
//     kms:MultiRegion from the request;
//   - kms:GrantIsForAWSResource is false for CreateGrant, ListGrants and
//     RevokeGrant: no AWS service calls kmsd.
//
// kms:ViaService is never present, for the same reason: a StringEquals on
// it does not match, its IfExists form and the negated operators do, and
// Null is true. Any other key is absent and evaluated as IAM evaluates a
// missing key.

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

// Condition key names, lower-cased as the evaluator looks them up.
const (
	condCallerAccount           = "kms:calleraccount"
	condPrincipalARN            = "aws:principalarn"
	condPrincipalAccount        = "aws:principalaccount"
	condPrincipalType           = "aws:principaltype"
	condUsername                = "aws:username"
	condCurrentTime             = "aws:currenttime"
	condEpochTime               = "aws:epochtime"
	condSecureTransport         = "aws:securetransport"
	condSourceIP                = "aws:sourceip"
	condUserAgent               = "aws:useragent"
	condRequestedRegion         = "aws:requestedregion"
	condResourceAccount         = "aws:resourceaccount"
	condKeySpec                 = "kms:keyspec"
	condCMKSpec                 = "kms:customermasterkeyspec"
	condKeyUsage                = "kms:keyusage"
	condCMKUsage                = "kms:customermasterkeyusage"
	condKeyOrigin               = "kms:keyorigin"
	condMultiRegion             = "kms:multiregion"
	condMultiRegionKeyType      = "kms:multiregionkeytype"
	condResourceAliases         = "kms:resourcealiases"
	condRequestAlias            = "kms:requestalias"
	condEncryptionContextKeys   = "kms:encryptioncontextkeys"
	condEncryptionContextPrefix = "kms:encryptioncontext:"
	condResourceTagPrefix       = "aws:resourcetag/"
	condRequestTagPrefix        = "aws:requesttag/"
	condTagKeys                 = "aws:tagkeys"
	condGrantIsForAWSResource   = "kms:grantisforawsresource"
	condGrantOperations         = "kms:grantoperations"
	condGranteePrincipal        = "kms:granteeprincipal"
	condRetiringPrincipal       = "kms:retiringprincipal"
	condGrantConstraintType     = "kms:grantconstrainttype"
	condBypassLockout           = "kms:bypasspolicylockoutsafetycheck"
	condEncryptionAlgorithm     = "kms:encryptionalgorithm"
	condSigningAlgorithm        = "kms:signingalgorithm"
	condMessageType             = "kms:messagetype"
	condMacAlgorithm            = "kms:macalgorithm"
	condDataKeyPairSpec         = "kms:datakeypairspec"
	condReEncryptOnSameKey      = "kms:reencryptonsamekey"
	condWrappingAlgorithm       = "kms:wrappingalgorithm"
	condWrappingKeySpec         = "kms:wrappingkeyspec"
	condExpirationModel         = "kms:expirationmodel"
	condValidTo                 = "kms:validto"
	condRotationPeriodInDays    = "kms:rotationperiodindays"
)

// grantManagementActions are the operations kms:GrantIsForAWSResource
// applies to.
var grantManagementActions = []string{"CreateGrant", "ListGrants", "RevokeGrant"}

// breakGlassActions are the actions the account root may always perform.
var breakGlassActions = []string{"GetKeyPolicy", "PutKeyPolicy", "ListKeyPolicies"}

func (s *Service) rootARN() string { return rootARNPrefix + s.cfg.AccountID + rootARNSuffix }

const (
	rootARNPrefix = "arn:aws:iam::"
	rootARNSuffix = ":root"
)

// isRootARN reports whether arn is rootARN(), without building it: every
// request asks.
func (s *Service) isRootARN(arn string) bool {
	acct := s.cfg.AccountID
	return len(arn) == len(rootARNPrefix)+len(acct)+len(rootARNSuffix) &&
		strings.HasPrefix(arn, rootARNPrefix) && strings.HasSuffix(arn, rootARNSuffix) &&
		arn[len(rootARNPrefix):len(rootARNPrefix)+len(acct)] == acct
}

// authzCaller returns the request information of ctx with its caller's
// account filled in, or ok false for kmsd's own calls.
func (s *Service) authzCaller(ctx context.Context) (ri RequestInfo, isRoot, ok bool) {
	ri, ok = RequestInfoFrom(ctx)
	if !ok {
		return RequestInfo{}, false, false
	}
	if ri.Caller.AccountID == "" {
		if p, ok := arnParts(ri.Caller.ARN); ok {
			ri.Caller.AccountID = p[4]
		}
	}
	return ri, ri.Caller.ARN != "" && s.isRootARN(ri.Caller.ARN), true
}

func accessDenied(callerARN, action, resource, why string) error {
	if strings.Contains(why, "%s") {
		why = strings.ReplaceAll(why, "%s", action)
	}
	return newError(ErrAccessDenied, "User: %s is not authorized to perform: kms:%s on resource: %s %s", callerARN, action, resource, why)
}

// requestContext is the evaluation context of a request. in is the
// operation's input (requestInputFrom), or nil. It holds the request's
// facts only: a condition key is worked out when a statement's Condition
// (or a policy variable) asks for it (lookup), so a policy without
// conditions costs no condition work.
func (s *Service) requestContext(ri RequestInfo, isRoot bool, r *authzRequest, in any) *authzContext {
	c := ri.Caller
	ac := &authzContext{
		callerARN:     c.ARN,
		callerAccount: c.AccountID,
		isRoot:        isRoot,
		action:        actKMS + r.action,
		resource:      "*",
		svc:           s,
		req:           *r,
		in:            in,
		sourceIP:      ri.SourceIP,
		userAgent:     ri.UserAgent,
		secure:        ri.SecureTransport,
	}
	if r.key != nil {
		ac.resource = r.key.ARN
	}
	return ac
}

// lookup returns the values of a (lower-cased) condition key of the
// request, and whether the request has it. Keys from the request
// parameters (requestConditions, then authzRequest.extra) take precedence
// over those of the caller and the key, as they always have.
func (ac *authzContext) lookup(key string) ([]string, bool) {
	if v, ok := ac.params()[key]; ok {
		return v, true
	}
	one := func(v string) ([]string, bool) { return []string{v}, true }
	r, k := &ac.req, ac.req.key
	switch key {
	case condCallerAccount, condPrincipalAccount:
		return one(ac.callerAccount)
	case condPrincipalARN:
		return one(ac.callerARN)
	case condCurrentTime:
		if ac.nowISO == "" {
			ac.nowISO = ac.requestTime().UTC().Format(time.RFC3339)
		}
		return one(ac.nowISO)
	case condEpochTime:
		if ac.nowEpoch == "" {
			ac.nowEpoch = strconv.FormatInt(ac.requestTime().Unix(), 10)
		}
		return one(ac.nowEpoch)
	case condSecureTransport:
		return one(strconv.FormatBool(ac.secure))
	case condRequestedRegion:
		return one(ac.svc.cfg.Region)
	case condPrincipalType:
		if t, _ := principalTypeAndName(ac.callerARN); t != "" {
			return one(t)
		}
	case condUsername:
		if t, name := principalTypeAndName(ac.callerARN); t != "" && name != "" {
			return one(name)
		}
	case condSourceIP:
		if a, err := netip.ParseAddr(ac.sourceIP); err == nil {
			return one(a.Unmap().String())
		}
	case condUserAgent:
		if ac.userAgent != "" {
			return one(ac.userAgent)
		}
	case condGrantIsForAWSResource:
		if slices.Contains(grantManagementActions, r.action) {
			return one("false")
		}
	case condEncryptionContextKeys:
		if r.hasEC && len(r.ec) > 0 {
			names := slices.Collect(maps.Keys(r.ec))
			slices.Sort(names)
			return names, true
		}
	case condRequestAlias:
		if alias := requestAlias(r.ref); alias != "" {
			return one(alias)
		}
	}
	if k == nil {
		if r.hasEC && strings.HasPrefix(key, condEncryptionContextPrefix) {
			return matchingValues(r.ec, key[len(condEncryptionContextPrefix):])
		}
		return nil, false
	}
	switch key {
	case condKeySpec, condCMKSpec:
		return one(k.KeySpec)
	case condKeyUsage, condCMKUsage:
		return one(k.KeyUsage)
	case condKeyOrigin:
		return one(k.Origin)
	case condMultiRegion:
		return one(strconv.FormatBool(k.MultiRegion))
	case condMultiRegionKeyType:
		if k.MultiRegion {
			// kmsd has no replicas: every multi-Region key is a primary.
			return one("PRIMARY")
		}
	case condResourceAccount:
		if k.AccountID != "" {
			return one(k.AccountID)
		}
	case condResourceAliases:
		return ac.resourceAliases()
	}
	switch {
	case strings.HasPrefix(key, condResourceTagPrefix):
		return matchingValues(k.Tags, key[len(condResourceTagPrefix):])
	case r.hasEC && strings.HasPrefix(key, condEncryptionContextPrefix):
		return matchingValues(r.ec, key[len(condEncryptionContextPrefix):])
	}
	return nil, false
}

// requestTime is the time of the request, read from the clock the first
// time a condition asks for it (only time conditions do).
func (ac *authzContext) requestTime() time.Time {
	if !ac.nowRead {
		ac.now, ac.nowRead = ac.svc.now(), true
	}
	return ac.now
}

// matchingValues returns the values of the entries of m whose name,
// lower-cased, is lowerName: the values of the condition key PREFIX +
// lowerName (tags and encryption context keys are matched
// case-insensitively, and names differing only in case share the key).
func matchingValues(m map[string]string, lowerName string) ([]string, bool) {
	var out []string
	for name, v := range m {
		if lowerEquals(name, lowerName) {
			out = append(out, v)
		}
	}
	return out, out != nil
}

// lowerEquals reports whether strings.ToLower(s) == lower, without
// allocating for ASCII s.
func lowerEquals(s, lower string) bool {
	if !isASCII(s) {
		return strings.ToLower(s) == lower
	}
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if asciiLower(s[i]) != lower[i] {
			return false
		}
	}
	return true
}

// params are the condition keys of the request parameters
// (requestConditions, overridden by authzRequest.extra), lower-cased;
// worked out once, the first time a key is looked up.
func (ac *authzContext) params() map[string][]string {
	if ac.paramsDone {
		return ac.paramKeys
	}
	ac.paramsDone = true
	rc := ac.svc.requestConditions(&ac.req, ac.in)
	if ac.req.extra == nil && allLower(rc) {
		// The common case: nothing to merge nor rename.
		ac.paramKeys = rc
		return rc
	}
	for _, m := range []map[string][]string{rc, ac.req.extra} {
		for k, v := range m {
			if ac.paramKeys == nil {
				ac.paramKeys = make(map[string][]string, len(m))
			}
			ac.paramKeys[strings.ToLower(k)] = v
		}
	}
	return ac.paramKeys
}

// allLower reports whether every name in m is lower-cased.
func allLower(m map[string][]string) bool {
	for k := range m {
		if strings.ToLower(k) != k {
			return false
		}
	}
	return true
}

// resourceAliases is kms:ResourceAliases: it reads the alias table, so it
// is read once per request and only when a policy asks for it.
func (ac *authzContext) resourceAliases() ([]string, bool) {
	if !ac.aliasesDone {
		ac.aliasesDone = true
		if keyID := ac.req.key.KeyID; keyID != "" {
			aliases, _ := ac.svc.fsm.ListAliases(keyID, "", math.MaxInt)
			for _, a := range aliases {
				ac.aliases = append(ac.aliases, a.Name)
			}
		}
	}
	return ac.aliases, len(ac.aliases) > 0
}

// addEncryptionContext adds kms:EncryptionContext:KEY for each pair and
// kms:EncryptionContextKeys (absent for an empty context).
func addEncryptionContext(keys map[string][]string, ec map[string]string) {
	if len(ec) == 0 {
		return
	}
	names := make([]string, 0, len(ec))
	for k, v := range ec {
		names = append(names, k)
		name := condEncryptionContextPrefix + strings.ToLower(k)
		keys[name] = append(keys[name], v)
	}
	slices.Sort(names)
	keys[condEncryptionContextKeys] = names
}

// arnParts splits an ARN into its six colon-separated parts (the last
// keeps any further colons), as strings.SplitN(arn, ":", 6) would, without
// allocating; ok is false when there are fewer than six.
func arnParts(arn string) (p [6]string, ok bool) {
	for i := 0; i < 5; i++ {
		j := strings.IndexByte(arn, ':')
		if j < 0 {
			return p, false
		}
		p[i], arn = arn[:j], arn[j+1:]
	}
	p[5] = arn
	return p, true
}

// principalTypeAndName returns aws:PrincipalType for an ARN, and the
// friendly name of an IAM user (aws:username), which only users have.
func principalTypeAndName(arn string) (typ, username string) {
	p, ok := arnParts(arn)
	if !ok || p[0] != "arn" {
		return "", ""
	}
	switch res := p[5]; {
	case p[2] == "iam" && res == "root":
		return "Account", ""
	case p[2] == "iam" && strings.HasPrefix(res, "user/"):
		return "User", res[strings.LastIndexByte(res, '/')+1:]
	case p[2] == "sts" && strings.HasPrefix(res, "assumed-role/"):
		return "AssumedRole", ""
	case p[2] == "sts" && strings.HasPrefix(res, "federated-user/"):
		return "FederatedUser", ""
	}
	return "", ""
}

// requestAlias returns the alias name a KeyId names (alias/x or an alias
// ARN), or "".
func requestAlias(ref string) string {
	if strings.HasPrefix(ref, aliasPrefix) {
		return ref
	}
	if strings.HasPrefix(ref, "arn:") {
		if p, ok := arnParts(ref); ok && strings.HasPrefix(p[5], aliasPrefix) {
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
	ri, isRoot, ok := s.authzCaller(ctx)
	if !ok {
		return nil
	}
	c := ri.Caller
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
	ac := s.requestContext(ri, isRoot, &r, requestInputFrom(ctx))
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
	if len(s.fsm.GrantsForKey(r.key.KeyID, fits)) > 0 {
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
	ri, isRoot, ok := s.authzCaller(ctx)
	if !ok || isRoot {
		return nil // kmsd itself; the root always may (break glass)
	}
	c := ri.Caller
	r := authzRequest{action: "PutKeyPolicy", key: &fsm.Key{ARN: keyARN, Policy: policy}}
	ac := s.requestContext(ri, isRoot, &r, nil)
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

// bypassCondition is kms:BypassPolicyLockoutSafetyCheck, present only
// when the request has the parameter: AWS documents a Null condition on it
// to allow only requests without it.
func bypassCondition(bypass *bool) map[string][]string {
	if bypass == nil {
		return nil
	}
	return map[string][]string{condBypassLockout: {strconv.FormatBool(*bypass)}}
}

// createKeyConditions are the condition keys of a CreateKey request. The
// key's properties come from the request, with their defaults when absent.
func createKeyConditions(in *CreateKeyInput) map[string][]string {
	m := map[string][]string{
		condMultiRegion: {boolString(in.MultiRegion)},
		condKeySpec:     {specSymmetricDefault},
		condKeyUsage:    {usageEncryptDecrypt},
		condKeyOrigin:   {originAWSKMS},
	}
	maps.Copy(m, bypassCondition(in.BypassPolicyLockoutSafetyCheck))
	switch {
	case in.KeySpec != nil:
		m[condKeySpec] = []string{*in.KeySpec}
	case in.CustomerMasterKeySpec != nil:
		m[condKeySpec] = []string{*in.CustomerMasterKeySpec}
	}
	if in.KeyUsage != nil {
		m[condKeyUsage] = []string{*in.KeyUsage}
	}
	if in.Origin != nil {
		m[condKeyOrigin] = []string{*in.Origin}
	}
	m[condCMKSpec], m[condCMKUsage] = m[condKeySpec], m[condKeyUsage]
	addRequestTags(m, in.Tags)
	return m
}

// addRequestTags adds aws:RequestTag/KEY for each tag and aws:TagKeys.
func addRequestTags(m map[string][]string, tags []Tag) {
	for _, t := range tags {
		if t.TagKey == nil {
			continue
		}
		m[condTagKeys] = append(m[condTagKeys], *t.TagKey)
		if t.TagValue != nil {
			name := condRequestTagPrefix + strings.ToLower(*t.TagKey)
			m[name] = append(m[name], *t.TagValue)
		}
	}
}

// createGrantConditions are the condition keys of a CreateGrant request;
// the encryption context keys are those of its constraints.
func createGrantConditions(in *CreateGrantInput) map[string][]string {
	m := map[string][]string{condGrantOperations: in.Operations}
	if in.GranteePrincipal != nil {
		m[condGranteePrincipal] = []string{*in.GranteePrincipal}
	}
	if in.RetiringPrincipal != nil {
		m[condRetiringPrincipal] = []string{*in.RetiringPrincipal}
	}
	if c := in.Constraints; c != nil {
		var types []string
		if len(c.EncryptionContextSubset) > 0 {
			types = append(types, "EncryptionContextSubset")
			addEncryptionContext(m, c.EncryptionContextSubset)
		}
		if len(c.EncryptionContextEquals) > 0 {
			types = append(types, "EncryptionContextEquals")
			addEncryptionContext(m, c.EncryptionContextEquals)
		}
		if types != nil {
			m[condGrantConstraintType] = types
		}
	}
	return m
}

// requestConditions are the condition keys AWS KMS takes from an
// operation's request parameters. in is the decoded input the api layer
// attached to the context (WithRequestInput); an input only supplies keys
// to the actions of its own operation, so a request that leads kmsd to
// authorize another action does not lend it its parameters. Parameters
// with a default count with it when absent, as AWS documents.
func (s *Service) requestConditions(r *authzRequest, in any) map[string][]string {
	one := func(name, v string) map[string][]string { return map[string][]string{name: {v}} }
	algorithm := func(alg *string) map[string][]string {
		if alg == nil {
			return one(condEncryptionAlgorithm, specSymmetricDefault)
		}
		return one(condEncryptionAlgorithm, *alg)
	}
	switch in := in.(type) {
	case *CreateKeyInput:
		if r.action == "CreateKey" {
			return createKeyConditions(in)
		}
	case *PutKeyPolicyInput:
		if r.action == "PutKeyPolicy" {
			return bypassCondition(in.BypassPolicyLockoutSafetyCheck)
		}
	case *CreateGrantInput:
		if r.action == "CreateGrant" {
			return createGrantConditions(in)
		}
	case *EncryptInput:
		if r.action == "Encrypt" {
			return algorithm(in.EncryptionAlgorithm)
		}
	case *DecryptInput:
		if r.action == "Decrypt" {
			return algorithm(in.EncryptionAlgorithm)
		}
	case *ReEncryptInput:
		var m map[string][]string
		switch r.action {
		case "ReEncryptFrom":
			m = algorithm(in.SourceEncryptionAlgorithm)
		case "ReEncryptTo":
			m = algorithm(in.DestinationEncryptionAlgorithm)
		default:
			return nil
		}
		if same, ok := s.reEncryptOnSameKey(r, in); ok {
			m[condReEncryptOnSameKey] = []string{strconv.FormatBool(same)}
		}
		return m
	case *GenerateDataKeyInput:
		if r.action == "GenerateDataKey" || r.action == "GenerateDataKeyWithoutPlaintext" {
			return algorithm(nil)
		}
	case *GenerateDataKeyPairInput:
		if r.action == "GenerateDataKeyPair" {
			return dataKeyPairConditions(in.KeyPairSpec)
		}
	case *GenerateDataKeyPairWithoutPlaintextInput:
		if r.action == "GenerateDataKeyPairWithoutPlaintext" {
			return dataKeyPairConditions(in.KeyPairSpec)
		}
	case *SignInput:
		if r.action == "Sign" {
			return signingConditions(in.SigningAlgorithm, in.MessageType)
		}
	case *VerifyInput:
		if r.action == "Verify" {
			return signingConditions(in.SigningAlgorithm, in.MessageType)
		}
	case *GenerateMacInput:
		if r.action == "GenerateMac" && in.MacAlgorithm != nil {
			return one(condMacAlgorithm, *in.MacAlgorithm)
		}
	case *VerifyMacInput:
		if r.action == "VerifyMac" && in.MacAlgorithm != nil {
			return one(condMacAlgorithm, *in.MacAlgorithm)
		}
	case *GetParametersForImportInput:
		if r.action == "GetParametersForImport" {
			m := map[string][]string{}
			if in.WrappingAlgorithm != nil {
				m[condWrappingAlgorithm] = []string{*in.WrappingAlgorithm}
			}
			if in.WrappingKeySpec != nil {
				m[condWrappingKeySpec] = []string{*in.WrappingKeySpec}
			}
			return m
		}
	case *ImportKeyMaterialInput:
		if r.action == "ImportKeyMaterial" {
			// Both only when in the request: AWS documents a Null condition
			// on kms:ExpirationModel to require the default.
			m := map[string][]string{}
			if in.ExpirationModel != nil {
				m[condExpirationModel] = []string{*in.ExpirationModel}
			}
			if in.ValidTo != nil {
				m[condValidTo] = []string{strconv.FormatInt(in.ValidTo.Unix(), 10)}
			}
			return m
		}
	case *EnableKeyRotationInput:
		if r.action == "EnableKeyRotation" {
			days := int32(defaultRotationPeriodInDays)
			if in.RotationPeriodInDays != nil {
				days = *in.RotationPeriodInDays
			}
			return one(condRotationPeriodInDays, strconv.Itoa(int(days)))
		}
	case *TagResourceInput:
		if r.action == "TagResource" {
			m := map[string][]string{}
			addRequestTags(m, in.Tags)
			return m
		}
	case *UntagResourceInput:
		if r.action == "UntagResource" && len(in.TagKeys) > 0 {
			return map[string][]string{condTagKeys: in.TagKeys}
		}
	}
	return nil
}

func dataKeyPairConditions(spec *string) map[string][]string {
	m := map[string][]string{condEncryptionAlgorithm: {specSymmetricDefault}}
	if spec != nil {
		m[condDataKeyPairSpec] = []string{*spec}
	}
	return m
}

// signingConditions are kms:SigningAlgorithm and kms:MessageType (RAW
// when the request has none).
func signingConditions(alg, messageType *string) map[string][]string {
	m := map[string][]string{condMessageType: {"RAW"}}
	if alg != nil {
		m[condSigningAlgorithm] = []string{*alg}
	}
	if messageType != nil {
		m[condMessageType] = []string{*messageType}
	}
	return m
}

// reEncryptOnSameKey reports whether a ReEncrypt request's source and
// destination are the same key. r.key is the source for ReEncryptFrom and
// the destination for ReEncryptTo; the other is resolved from the request
// (the source from SourceKeyId, or from the ciphertext's header). ok is
// false when the other key cannot be named.
func (s *Service) reEncryptOnSameKey(r *authzRequest, in *ReEncryptInput) (same, ok bool) {
	if r.key == nil {
		return false, false
	}
	var other string
	switch {
	case r.action == "ReEncryptFrom" && in.DestinationKeyId != nil:
		k, err := s.resolveKey(*in.DestinationKeyId, anyKeyRef)
		if err != nil {
			return false, false
		}
		other = k.KeyID
	case r.action == "ReEncryptTo" && in.SourceKeyId != nil:
		k, err := s.resolveKey(*in.SourceKeyId, anyKeyRef)
		if err != nil {
			return false, false
		}
		other = k.KeyID
	case r.action == "ReEncryptTo":
		b, err := crypto.ParseBlob(in.CiphertextBlob)
		if err != nil {
			return false, false
		}
		other = crypto.FormatKeyID(b.KeyID, b.MultiRegion)
	default:
		return false, false
	}
	return other == r.key.KeyID, true
}

// authorizeRetire decides RetireGrant: the grant's retiring principal may
// retire it, and so may its grantee when the grant has the RetireGrant
// operation; anyone else needs kms:RetireGrant on the key.
func (s *Service) authorizeRetire(ctx context.Context, g *fsm.Grant) error {
	ri, _, ok := s.authzCaller(ctx)
	if !ok {
		return nil
	}
	c := ri.Caller
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
