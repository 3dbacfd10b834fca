package service

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
)

// An evaluator of the IAM policy language as key policies and identity
// policies use it: Effect, Principal / NotPrincipal, Action / NotAction,
// Resource / NotResource and Condition (string, ARN, numeric, Bool and Null
// operators, the IfExists suffix, and the ForAnyValue: / ForAllValues:
// set prefixes).

// authzContext is what a policy is evaluated against.
type authzContext struct {
	callerARN     string
	callerAccount string
	isRoot        bool   // the caller is the account root (arn:aws:iam::ACCOUNT:root)
	action        string // "kms:Encrypt"
	resource      string // the key ARN, or "*" for operations not on a key
	// keys are the condition keys of the request, lower-cased, each with
	// its values; an absent key is absent from the map.
	keys map[string][]string
}

// principalMatch says how a statement's principal matches the caller.
type principalMatch int

const (
	principalNone    principalMatch = iota
	principalDirect                 // the caller itself, or "*"
	principalAccount                // the caller's account: delegation to IAM
)

// policyResult is the outcome of evaluating one policy document.
type policyResult struct {
	deny         bool // an applicable Deny statement
	allowDirect  bool // an applicable Allow naming the caller (or "*")
	allowAccount bool // an applicable Allow naming the caller's account
}

type policyStatement struct {
	Effect       string                                `json:"Effect"`
	Principal    json.RawMessage                       `json:"Principal"`
	NotPrincipal json.RawMessage                       `json:"NotPrincipal"`
	Action       json.RawMessage                       `json:"Action"`
	NotAction    json.RawMessage                       `json:"NotAction"`
	Resource     json.RawMessage                       `json:"Resource"`
	NotResource  json.RawMessage                       `json:"NotResource"`
	Condition    map[string]map[string]json.RawMessage `json:"Condition"`
}

// parsedPolicy is a decoded policy document. Statements are read-only once
// parsed, so one parse serves every request under the same document.
type parsedPolicy struct {
	statements []policyStatement
	// noStatement: the document decodes but has no Statement element.
	noStatement bool
}

// parsePolicy decodes a policy's statements (an object or a list of
// objects). A document that does not decode has no statements, so it
// allows nothing.
func parsePolicy(doc string) parsedPolicy {
	var top struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if strings.TrimSpace(doc) == "" {
		return parsedPolicy{noStatement: true}
	}
	if json.Unmarshal([]byte(doc), &top) != nil {
		return parsedPolicy{}
	}
	if top.Statement == nil {
		return parsedPolicy{noStatement: true}
	}
	raw := bytes.TrimSpace(top.Statement)
	if len(raw) > 0 && raw[0] == '{' {
		var one policyStatement
		if json.Unmarshal(raw, &one) != nil {
			return parsedPolicy{}
		}
		return parsedPolicy{statements: []policyStatement{one}}
	}
	var list []policyStatement
	if json.Unmarshal(raw, &list) != nil {
		return parsedPolicy{}
	}
	return parsedPolicy{statements: list}
}

// policyCacheSize bounds the parsed policies kept: documents come from
// stored keys and the credentials file, and most keys share the default.
const policyCacheSize = 1024

// policyCache keeps parsed policy documents by their text, so the request
// path does not decode JSON policies on every call.
type policyCache struct {
	mu sync.Mutex
	m  map[string]parsedPolicy
}

func (c *policyCache) get(doc string) parsedPolicy {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.m[doc]; ok {
		return p
	}
	if c.m == nil || len(c.m) >= policyCacheSize {
		c.m = make(map[string]parsedPolicy)
	}
	p := parsePolicy(doc)
	c.m[doc] = p
	return p
}

// evalPolicy evaluates a parsed policy. withPrincipal is true for
// resource-based (key) policies; identity policies have no principal and
// every applicable Allow counts as direct.
func evalPolicy(p parsedPolicy, ac *authzContext, withPrincipal bool) policyResult {
	var r policyResult
	for _, st := range p.statements {
		deny := st.Effect == "Deny"
		if !deny && st.Effect != "Allow" {
			continue
		}
		pm := principalDirect
		if withPrincipal {
			switch {
			case st.Principal != nil:
				pm = matchPrincipal(st.Principal, ac)
			case st.NotPrincipal != nil:
				if matchPrincipal(st.NotPrincipal, ac) != principalNone {
					pm = principalNone
				}
			default:
				pm = principalNone
			}
			if pm == principalNone {
				continue
			}
		}
		if !matchElement(st.Action, st.NotAction, ac.action, true) ||
			!matchElement(st.Resource, st.NotResource, ac.resource, false) {
			continue
		}
		if !evalConditions(st.Condition, ac, deny) {
			continue
		}
		switch {
		case deny:
			// A Deny naming the account applies to every principal of it.
			r.deny = true
		case pm == principalDirect:
			r.allowDirect = true
		default:
			r.allowAccount = true
		}
	}
	return r
}

// stringsOf decodes a string or a list of strings.
func stringsOf(raw json.RawMessage) []string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	return nil
}

// matchPrincipal matches "*" or {"AWS": ...}; other principal types
// (Service, Federated, CanonicalUser) never match an IAM caller.
func matchPrincipal(raw json.RawMessage, ac *authzContext) principalMatch {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "*" {
			return principalDirect
		}
		return principalNone
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return principalNone
	}
	best := principalNone
	for _, p := range stringsOf(m["AWS"]) {
		switch {
		case p == "*" || p == ac.callerARN:
			return principalDirect
		case ac.callerAccount != "" && (p == ac.callerAccount || isAccountRootARN(p, ac.callerAccount)):
			if ac.isRoot {
				return principalDirect
			}
			best = principalAccount
		}
	}
	return best
}

// isAccountRootARN reports whether p is arn:PARTITION:iam::ACCOUNT:root.
func isAccountRootARN(p, account string) bool {
	parts := strings.SplitN(p, ":", 6)
	return len(parts) == 6 && parts[0] == "arn" && parts[2] == "iam" && parts[3] == "" && parts[4] == account && parts[5] == "root"
}

// matchElement matches value against an element (Action, Resource) or its
// negation. Actions compare case-insensitively, resources exactly.
func matchElement(pos, neg json.RawMessage, value string, fold bool) bool {
	raw, negated := pos, false
	if raw == nil {
		raw, negated = neg, true
	}
	if raw == nil {
		return false
	}
	hit := false
	for _, p := range stringsOf(raw) {
		if globMatch(p, value, fold) {
			hit = true
			break
		}
	}
	return hit != negated
}

// globMatch matches s against a pattern with * (any run) and ? (one
// character).
func globMatch(pattern, s string, fold bool) bool {
	if fold {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	p, str := []rune(pattern), []rune(s)
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == str[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// evalConditions ANDs every operator and every key of a Condition block.
// An operator this evaluator does not know makes an Allow not apply and a
// Deny apply (fail closed).
func evalConditions(cond map[string]map[string]json.RawMessage, ac *authzContext, deny bool) bool {
	for op, block := range cond {
		for key, rawValues := range block {
			ok, known := evalCondition(op, key, condValues(rawValues), ac)
			if !known {
				if deny {
					continue
				}
				return false
			}
			if !ok {
				return false
			}
		}
	}
	return true
}

// condValues decodes a condition's values: strings, numbers and booleans,
// alone or in a list.
func condValues(raw json.RawMessage) []string {
	var list []json.RawMessage
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
		if json.Unmarshal(t, &list) != nil {
			return nil
		}
	} else {
		list = []json.RawMessage{raw}
	}
	out := make([]string, 0, len(list))
	for _, v := range list {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out = append(out, s)
			continue
		}
		out = append(out, string(bytes.TrimSpace(v)))
	}
	return out
}

// evalCondition evaluates one operator on one key. known is false for an
// operator this evaluator does not implement.
func evalCondition(op, key string, policyValues []string, ac *authzContext) (ok, known bool) {
	set := ""
	switch lower := strings.ToLower(op); {
	case strings.HasPrefix(lower, "forallvalues:"):
		set, op = "all", op[len("ForAllValues:"):]
	case strings.HasPrefix(lower, "foranyvalue:"):
		set, op = "any", op[len("ForAnyValue:"):]
	}
	ifExists := false
	if strings.HasSuffix(strings.ToLower(op), "ifexists") {
		ifExists, op = true, op[:len(op)-len("IfExists")]
	}
	reqValues, present := ac.keys[strings.ToLower(key)]
	op = strings.ToLower(op)
	if op == "null" {
		if ifExists || set != "" || len(policyValues) != 1 {
			return false, false
		}
		want, err := strconv.ParseBool(policyValues[0])
		if err != nil {
			return false, false
		}
		return want == !present, true
	}
	match, negated, known := conditionMatcher(op)
	if !known {
		return false, false
	}
	anyPolicy := func(rv string) bool {
		for _, pv := range policyValues {
			if match(pv, rv) {
				return true
			}
		}
		return false
	}
	switch set {
	case "all":
		// Every request value must satisfy the operator; an empty or absent
		// set satisfies it.
		for _, rv := range reqValues {
			if anyPolicy(rv) == negated {
				return false, true
			}
		}
		return true, true
	case "any":
		for _, rv := range reqValues {
			if anyPolicy(rv) != negated {
				return true, true
			}
		}
		return false, true
	}
	if !present {
		// A missing key satisfies IfExists and the negated operators.
		return ifExists || negated, true
	}
	hit := false
	for _, rv := range reqValues {
		if anyPolicy(rv) {
			hit = true
			break
		}
	}
	return hit != negated, true
}

// conditionMatcher returns the comparison of an operator (lower-cased,
// without prefix or IfExists) and whether it is negated.
func conditionMatcher(op string) (match func(policy, request string) bool, negated, known bool) {
	eq := func(p, r string) bool { return p == r }
	fold := func(p, r string) bool { return strings.EqualFold(p, r) }
	like := func(p, r string) bool { return globMatch(p, r, false) }
	num := func(cmp func(a, b float64) bool) func(p, r string) bool {
		return func(p, r string) bool {
			pf, err1 := strconv.ParseFloat(p, 64)
			rf, err2 := strconv.ParseFloat(r, 64)
			return err1 == nil && err2 == nil && cmp(rf, pf)
		}
	}
	switch op {
	case "stringequals", "arnequals":
		return eq, false, true
	case "stringnotequals", "arnnotequals":
		return eq, true, true
	case "stringequalsignorecase":
		return fold, false, true
	case "stringnotequalsignorecase":
		return fold, true, true
	case "stringlike", "arnlike":
		return like, false, true
	case "stringnotlike", "arnnotlike":
		return like, true, true
	case "bool":
		return fold, false, true
	case "numericequals":
		return num(func(a, b float64) bool { return a == b }), false, true
	case "numericnotequals":
		return num(func(a, b float64) bool { return a == b }), true, true
	case "numericlessthan":
		return num(func(a, b float64) bool { return a < b }), false, true
	case "numericlessthanequals":
		return num(func(a, b float64) bool { return a <= b }), false, true
	case "numericgreaterthan":
		return num(func(a, b float64) bool { return a > b }), false, true
	case "numericgreaterthanequals":
		return num(func(a, b float64) bool { return a >= b }), false, true
	}
	return nil, false, false
}
