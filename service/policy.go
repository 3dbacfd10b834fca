package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/kmsd/kmsd/fsm"
)

// Key policies are stored and returned byte for byte, once they pass the
// IAM policy grammar (checkPolicyGrammar); authz.go enforces them. A key
// has exactly one policy, named "default".

const (
	defaultPolicyName      = "default"
	policyVersionCurrent   = "2012-10-17"
	policyVersionLegacy    = "2008-10-17"
	errNoSuchPolicyMessage = "No such policy exists"
	policyMarkerKind       = "policies"
)

// checkPolicyName accepts an absent name or "default", the only name AWS
// KMS knows; any other name is a policy that does not exist.
func checkPolicyName(name *string) error {
	if name != nil && *name != defaultPolicyName {
		return newError(ErrNotFound, errNoSuchPolicyMessage)
	}
	return nil
}

// malformed is a MalformedPolicyDocumentException.
func malformed(format string, args ...any) error {
	return newError(ErrMalformedPolicy, format, args...)
}

// policyElements are the elements a key policy document may have.
var policyElements = map[string]bool{"Version": true, "Id": true, "Statement": true}

// statementElements are the elements a policy statement may have.
var statementElements = map[string]bool{
	"Sid": true, "Effect": true, "Principal": true, "NotPrincipal": true, "Action": true, "NotAction": true,
	"Resource": true, "NotResource": true, "Condition": true,
}

// principalTypes are the keys of a Principal object.
var principalTypes = map[string]bool{"AWS": true, "Service": true, "Federated": true, "CanonicalUser": true}

// checkPolicyGrammar checks a decoded policy document against the IAM policy
// grammar as it applies to key policies: a Version (2012-10-17 or
// 2008-10-17), and one or more statements, each with an Effect (Allow or
// Deny), a Principal (or NotPrincipal), an Action (or NotAction) and a
// Resource (or NotResource).
func checkPolicyGrammar(doc map[string]json.RawMessage) error {
	return checkGrammar(doc, false)
}

// ValidateIdentityPolicy checks an IAM identity policy (a credential's
// "policy" in the credentials file) against the same grammar, except that
// its statements name no principal. A policy that fails it would be
// evaluated as allowing nothing; refusing it when the credentials are
// loaded says why.
func ValidateIdentityPolicy(doc []byte) error {
	var m map[string]json.RawMessage
	if json.Unmarshal(doc, &m) != nil || m == nil {
		return malformed("The identity policy is not a JSON object.")
	}
	err := checkGrammar(m, true)
	var e *Error
	if errors.As(err, &e) {
		// The grammar's messages name the key policy.
		e.Message = strings.ReplaceAll(e.Message, "key policy", "identity policy")
	}
	return err
}

func checkGrammar(doc map[string]json.RawMessage, identity bool) error {
	for name := range doc {
		if !policyElements[name] {
			return malformed("The key policy has an unsupported element %q.", truncateForMessage(name))
		}
	}
	rawVersion, ok := doc["Version"]
	if !ok {
		return malformed("The key policy has no Version.")
	}
	var version string
	if json.Unmarshal(rawVersion, &version) != nil || (version != policyVersionCurrent && version != policyVersionLegacy) {
		return malformed("The key policy Version must be %s or %s.", policyVersionCurrent, policyVersionLegacy)
	}
	if id, ok := doc["Id"]; ok && !isJSONString(id) {
		return malformed("The key policy Id must be a string.")
	}
	rawStatement, ok := doc["Statement"]
	if !ok {
		return malformed("The key policy has no Statement.")
	}
	var statements []map[string]json.RawMessage
	if t := bytes.TrimSpace(rawStatement); len(t) > 0 && t[0] == '{' {
		var one map[string]json.RawMessage
		if json.Unmarshal(t, &one) != nil {
			return malformed("The key policy Statement must be an object or a list of objects.")
		}
		statements = append(statements, one)
	} else if json.Unmarshal(rawStatement, &statements) != nil {
		return malformed("The key policy Statement must be an object or a list of objects.")
	}
	if len(statements) == 0 {
		return malformed("The key policy has no statements.")
	}
	for i, st := range statements {
		if err := checkStatement(i, st, identity); err != nil {
			return err
		}
	}
	return nil
}

func checkStatement(i int, st map[string]json.RawMessage, identity bool) error {
	if st == nil {
		return malformed("Statement %d of the key policy is not an object.", i+1)
	}
	for name := range st {
		if !statementElements[name] {
			return malformed("Statement %d of the key policy has an unsupported element %q.", i+1, truncateForMessage(name))
		}
	}
	if sid, ok := st["Sid"]; ok && !isJSONString(sid) {
		return malformed("Statement %d of the key policy has a Sid that is not a string.", i+1)
	}
	var effect string
	if raw, ok := st["Effect"]; !ok || json.Unmarshal(raw, &effect) != nil || (effect != "Allow" && effect != "Deny") {
		return malformed("Statement %d of the key policy must have an Effect of Allow or Deny.", i+1)
	}
	if identity {
		if _, p := st["Principal"]; p {
			return malformed("Statement %d of the identity policy has a Principal: identity policies apply to their own principal.", i+1)
		}
		if _, p := st["NotPrincipal"]; p {
			return malformed("Statement %d of the identity policy has a NotPrincipal: identity policies apply to their own principal.", i+1)
		}
	} else {
		principal, err := exactlyOne(i, st, "Principal", "NotPrincipal")
		if err != nil {
			return err
		}
		if !validPrincipal(principal) {
			return malformed("Statement %d of the key policy has an invalid principal.", i+1)
		}
	}
	for _, pair := range [][2]string{{"Action", "NotAction"}, {"Resource", "NotResource"}} {
		raw, err := exactlyOne(i, st, pair[0], pair[1])
		if err != nil {
			return err
		}
		if !isStringOrStrings(raw) {
			return malformed("Statement %d of the key policy has an invalid %s.", i+1, pair[0])
		}
	}
	if cond, ok := st["Condition"]; ok {
		if err := checkCondition(i, cond); err != nil {
			return err
		}
	}
	return nil
}

// checkCondition checks a Condition element: an object of condition
// operators this evaluator implements, each an object of condition keys
// with a value or a non-empty list of values (strings, numbers or
// booleans) of the operator's type. A condition AWS KMS refuses as overly
// permissive (ForAllValues on a single-valued key that names an encryption
// context pair or a request tag) is refused too.
func checkCondition(i int, raw json.RawMessage) error {
	var blocks map[string]json.RawMessage
	if json.Unmarshal(raw, &blocks) != nil || blocks == nil {
		return malformed("Statement %d of the key policy has a Condition that is not an object.", i+1)
	}
	for op, rawBlock := range blocks {
		set, base, _, known := splitOperator(op)
		if !known {
			return malformed("Statement %d of the key policy has an unsupported condition operator %q.", i+1, truncateForMessage(op))
		}
		var block map[string]json.RawMessage
		if json.Unmarshal(rawBlock, &block) != nil || len(block) == 0 {
			return malformed("Statement %d of the key policy has a %s condition that is not an object of condition keys.", i+1, truncateForMessage(op))
		}
		for key, rv := range block {
			values, ok := conditionValues(rv)
			if !ok || len(values) == 0 || key == "" {
				return malformed("Statement %d of the key policy has an invalid value for %s in its %s condition.", i+1, truncateForMessage(key), truncateForMessage(op))
			}
			for _, v := range values {
				if !validConditionValue(base, v) {
					return malformed("Statement %d of the key policy has %q, which is not a valid %s value, for %s.", i+1, truncateForMessage(v), truncateForMessage(op), truncateForMessage(key))
				}
			}
			if set == setAll {
				if err := checkOverlyPermissive(key); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// validConditionValue checks a policy value against its operator's type.
// String, ARN and binary operators take any string.
func validConditionValue(base, v string) bool {
	switch conditionOperators[base].family {
	case opNumeric:
		_, err := strconv.ParseFloat(v, 64)
		return err == nil
	case opDate:
		_, ok := parsePolicyTime(v)
		return ok
	case opBool, opNull:
		return strings.EqualFold(v, "true") || strings.EqualFold(v, "false")
	case opIP:
		_, ok := parseIPRange(v)
		return ok
	}
	return true
}

// checkOverlyPermissive refuses ForAllValues on kms:EncryptionContext:KEY
// and aws:RequestTag/KEY, with AWS KMS's messages.
func checkOverlyPermissive(key string) error {
	lower := strings.ToLower(key)
	switch {
	case strings.HasPrefix(lower, condEncryptionContextPrefix):
		return malformed("OverlyPermissiveCondition:EncryptionContext: Using the ForAllValues set operator with a single-valued condition key matches requests without the specified encryption context or with an unspecified encryption context. To fix, remove ForAllValues.")
	case strings.HasPrefix(lower, condRequestTagPrefix):
		return malformed("OverlyPermissiveCondition:RequestTag: Using the ForAllValues set operator with a single-valued condition key matches requests without the specified tag or with an unspecified tag. To fix, remove ForAllValues.")
	}
	return nil
}

// exactlyOne returns the value of element a or its negation b; a statement
// must have one of them, not both.
func exactlyOne(i int, st map[string]json.RawMessage, a, b string) (json.RawMessage, error) {
	ra, hasA := st[a]
	rb, hasB := st[b]
	switch {
	case hasA && hasB:
		return nil, malformed("Statement %d of the key policy has both %s and %s.", i+1, a, b)
	case hasA:
		return ra, nil
	case hasB:
		return rb, nil
	}
	return nil, malformed("Statement %d of the key policy has no %s.", i+1, a)
}

// validPrincipal accepts "*" or an object whose keys are principal types
// and whose values are a string or a non-empty list of strings.
func validPrincipal(raw json.RawMessage) bool {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s == "*"
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return false
	}
	for k, v := range m {
		if !principalTypes[k] || !isStringOrStrings(v) {
			return false
		}
	}
	return true
}

func isJSONString(raw json.RawMessage) bool {
	var s string
	return json.Unmarshal(raw, &s) == nil
}

// isStringOrStrings accepts a non-empty string or a non-empty list of
// non-empty strings.
func isStringOrStrings(raw json.RawMessage) bool {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s != ""
	}
	var list []string
	if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
		return false
	}
	for _, e := range list {
		if e == "" {
			return false
		}
	}
	return true
}

func truncateForMessage(s string) string {
	if r := []rune(s); len(r) > 64 {
		return string(r[:64]) + "..."
	}
	return s
}

// GetKeyPolicy returns a key's policy exactly as it was set. It works in
// every key state.
func (s *Service) GetKeyPolicy(ctx context.Context, in *GetKeyPolicyInput) (*GetKeyPolicyOutput, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	k, err := s.resolveKey(*in.KeyId, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeKey(ctx, k, "GetKeyPolicy", *in.KeyId); err != nil {
		return nil, err
	}
	if err := checkPolicyName(in.PolicyName); err != nil {
		return nil, err
	}
	return &GetKeyPolicyOutput{Policy: k.Policy, PolicyName: defaultPolicyName}, nil
}

// PutKeyPolicy replaces a key's policy. It works in every key state.
// Unless BypassPolicyLockoutSafetyCheck is true, the new policy must let the
// caller call PutKeyPolicy again (see checkLockout).
func (s *Service) PutKeyPolicy(ctx context.Context, in *PutKeyPolicyInput) (*Empty, error) {
	k, err := s.resolveKey(*in.KeyId, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, authzRequest{action: "PutKeyPolicy", key: k, ref: *in.KeyId,
		extra: bypassCondition(in.BypassPolicyLockoutSafetyCheck)}); err != nil {
		return nil, err
	}
	if err := checkCustomerManaged(k); err != nil {
		return nil, err
	}
	if err := checkPolicyName(in.PolicyName); err != nil {
		return nil, err
	}
	if err := checkPolicyDocument(*in.Policy); err != nil {
		return nil, err
	}
	if err := s.checkLockout(ctx, *in.Policy, k.ARN, in.BypassPolicyLockoutSafetyCheck); err != nil {
		return nil, err
	}
	return &Empty{}, s.propose(ctx, &fsm.Command{Type: fsm.CmdPutKeyPolicy,
		PutKeyPolicy: &fsm.PutKeyPolicyCmd{KeyID: k.KeyID, Policy: *in.Policy}})
}

// ListKeyPolicies lists a key's policy names: always just "default".
func (s *Service) ListKeyPolicies(ctx context.Context, in *ListKeyPoliciesInput) (*ListKeyPoliciesOutput, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	k, err := s.resolveKey(*in.KeyId, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeKey(ctx, k, "ListKeyPolicies", *in.KeyId); err != nil {
		return nil, err
	}
	after, err := decodeMarker(policyMarkerKind, in.Marker)
	if err != nil {
		return nil, err
	}
	// One name fits in every page: Limit is at least 1.
	out := &ListKeyPoliciesOutput{PolicyNames: []string{}}
	if defaultPolicyName > after {
		out.PolicyNames = append(out.PolicyNames, defaultPolicyName)
	}
	return out, nil
}
