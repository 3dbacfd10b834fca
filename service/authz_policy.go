package service

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// An evaluator of the IAM policy language as key policies and identity
// policies use it: Effect, Principal / NotPrincipal, Action / NotAction,
// Resource / NotResource and Condition with the string, numeric, date,
// Bool, binary, IP address, ARN and Null operators, the IfExists suffix,
// the ForAnyValue: / ForAllValues: set prefixes, and policy variables
// (${aws:username}, ${*}, ...) in Resource and in the values of string and
// ARN conditions.
//
// A document is decoded once (parsePolicy) into a typed form that the
// request path evaluates without touching JSON again.

// authzContext is what a policy is evaluated against.
type authzContext struct {
	callerARN     string
	callerAccount string
	isRoot        bool   // the caller is the account root (arn:aws:iam::ACCOUNT:root)
	action        string // "kms:Encrypt"
	resource      string // the key ARN, or "*" for operations not on a key
	// keys are condition keys given outright, lower-cased, each with its
	// values: they are looked at first.
	keys map[string][]string
	// lazy computes a condition key that keys does not have the first time
	// a policy asks for it; nil means none. Contexts built from a request
	// (requestContext) use lookup instead.
	lazy func(key string) ([]string, bool)
	// resolved remembers lazy answers, present or not.
	resolved map[string]bool

	// The facts of a request (requestContext; svc nil: none), from which
	// lookup works out a condition key when one is asked for.
	svc       *Service
	req       authzRequest
	in        any // the operation's input, or nil
	sourceIP  string
	userAgent string
	secure    bool
	now       time.Time // requestTime
	nowRead   bool
	// Memoised answers: those that cost formatting, a map or a state read.
	nowISO, nowEpoch string
	paramKeys        map[string][]string
	paramsDone       bool
	aliases          []string
	aliasesDone      bool
}

// value returns the values of a (lower-cased) condition key and whether
// the request has it.
func (ac *authzContext) value(key string) ([]string, bool) {
	if v, ok := ac.keys[key]; ok {
		return v, true
	}
	if ac.svc != nil {
		return ac.lookup(key)
	}
	if ac.lazy == nil || ac.resolved[key] {
		return nil, false
	}
	if ac.resolved == nil {
		ac.resolved = map[string]bool{}
	}
	ac.resolved[key] = true
	v, ok := ac.lazy(key)
	if !ok {
		return nil, false
	}
	if ac.keys == nil {
		ac.keys = map[string][]string{}
	}
	ac.keys[key] = v
	return v, true
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

// parsedPolicy is a decoded policy document. It is read-only once parsed,
// so one parse serves every request under the same document.
type parsedPolicy struct {
	version    string
	statements []policyStatement
	// noStatement: the document is empty or has no Statement element.
	noStatement bool
	// invalid: the document is not a policy this evaluator can read; it
	// has no statements, so it allows nothing.
	invalid bool
}

// policyStatement is one statement. Elements keep their values as written
// (strings in a list) so that canonicalJSON can write them back.
type policyStatement struct {
	effect    string
	principal *policyPrincipal // nil: no Principal nor NotPrincipal
	action    policyNames
	resource  policyNames
	// conditions are sorted by operator, then key.
	conditions []policyCondition
}

// policyPrincipal is a Principal or NotPrincipal element: "*" or principal
// type -> names.
type policyPrincipal struct {
	negated bool // NotPrincipal
	any     bool // "*"
	types   map[string][]string
	// aws is types["AWS"] compiled for matching callers.
	aws []awsPrincipal
}

// awsPrincipal is one name of an "AWS" principal.
type awsPrincipal struct {
	name string
	// rootAccount is ACCOUNT when name is arn:PARTITION:iam::ACCOUNT:root.
	rootAccount string
}

// compileAWSPrincipals prepares the "AWS" names of a principal.
func compileAWSPrincipals(names []string) []awsPrincipal {
	if len(names) == 0 {
		return nil
	}
	out := make([]awsPrincipal, len(names))
	for i, n := range names {
		out[i].name = n
		if p, ok := arnParts(n); ok && p[0] == "arn" && p[2] == "iam" && p[3] == "" && p[5] == "root" {
			out[i].rootAccount = p[4]
		}
	}
	return out
}

// policyNames is an Action or Resource element, or its negation.
type policyNames struct {
	present bool
	negated bool // NotAction / NotResource
	values  []string
}

// policyCondition is one operator applied to one condition key.
type policyCondition struct {
	operator string   // as written: "ForAnyValue:StringLikeIfExists"
	key      string   // as written: "kms:EncryptionContext:AppName"
	values   []string // strings, numbers and booleans as text

	lkey     string // key, lower-cased: condition keys are case-insensitive
	set      string // "", setAny or setAll
	base     string // the operator without set prefix nor IfExists, lower-cased
	ifExists bool
	known    bool              // an operator this evaluator implements, with values of its type
	op       conditionOperator // conditionOperators[base]
	hasVars  bool              // a value has "${": a policy variable, in policies that have them
}

const (
	setAny = "any" // ForAnyValue:
	setAll = "all" // ForAllValues:

	prefixForAnyValue = "foranyvalue:"
	prefixForAllValue = "forallvalues:"
	suffixIfExists    = "ifexists"
)

// Operator families: how policy values are read and compared.
const (
	opString = iota + 1
	opNumeric
	opDate
	opBool
	opBinary
	opIP
	opARN
	opNull
)

// conditionOperator describes a base operator (lower-cased).
type conditionOperator struct {
	family  int
	negated bool
	cmp     string // "eq", "ieq", "like", "lt", "le", "gt", "ge"
}

var conditionOperators = map[string]conditionOperator{
	"stringequals":              {opString, false, "eq"},
	"stringnotequals":           {opString, true, "eq"},
	"stringequalsignorecase":    {opString, false, "ieq"},
	"stringnotequalsignorecase": {opString, true, "ieq"},
	"stringlike":                {opString, false, "like"},
	"stringnotlike":             {opString, true, "like"},
	"numericequals":             {opNumeric, false, "eq"},
	"numericnotequals":          {opNumeric, true, "eq"},
	"numericlessthan":           {opNumeric, false, "lt"},
	"numericlessthanequals":     {opNumeric, false, "le"},
	"numericgreaterthan":        {opNumeric, false, "gt"},
	"numericgreaterthanequals":  {opNumeric, false, "ge"},
	"dateequals":                {opDate, false, "eq"},
	"datenotequals":             {opDate, true, "eq"},
	"datelessthan":              {opDate, false, "lt"},
	"datelessthanequals":        {opDate, false, "le"},
	"dategreaterthan":           {opDate, false, "gt"},
	"dategreaterthanequals":     {opDate, false, "ge"},
	"bool":                      {opBool, false, "ieq"},
	"binaryequals":              {opBinary, false, "eq"},
	"ipaddress":                 {opIP, false, "eq"},
	"notipaddress":              {opIP, true, "eq"},
	"arnequals":                 {opARN, false, "like"},
	"arnlike":                   {opARN, false, "like"},
	"arnnotequals":              {opARN, true, "like"},
	"arnnotlike":                {opARN, true, "like"},
	"null":                      {opNull, false, "eq"},
}

// splitOperator splits an operator as written into its set prefix, base
// (lower-cased) and IfExists suffix. known is false for an operator this
// evaluator does not implement, or Null with a prefix or suffix.
func splitOperator(op string) (set, base string, ifExists, known bool) {
	lower := strings.ToLower(op)
	switch {
	case strings.HasPrefix(lower, prefixForAllValue):
		set, lower = setAll, lower[len(prefixForAllValue):]
	case strings.HasPrefix(lower, prefixForAnyValue):
		set, lower = setAny, lower[len(prefixForAnyValue):]
	}
	if strings.HasSuffix(lower, suffixIfExists) {
		ifExists, lower = true, lower[:len(lower)-len(suffixIfExists)]
	}
	o, ok := conditionOperators[lower]
	if ok && o.family == opNull && (set != "" || ifExists) {
		ok = false
	}
	return set, lower, ifExists, ok
}

// policyElementNames are the elements a document and a statement may have.
var (
	documentElementNames  = []string{"Version", "Id", "Statement"}
	statementElementNames = []string{"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"}
)

// parsePolicy decodes a policy document. An empty document, or one
// without a Statement, is noStatement; one that does not decode as a
// policy (bad JSON, an element of the wrong shape, an unknown element) is
// invalid and has no statements at all, so it allows nothing: no part of
// a document that cannot be read is half-applied.
func parsePolicy(doc string) parsedPolicy {
	t := bytes.TrimSpace([]byte(doc))
	if len(t) == 0 || string(t) == "null" {
		return parsedPolicy{noStatement: true}
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(t, &top) != nil || top == nil {
		return parsedPolicy{invalid: true}
	}
	var p parsedPolicy
	for name, raw := range top {
		if !slices.Contains(documentElementNames, name) {
			return parsedPolicy{invalid: true}
		}
		if name == "Version" && json.Unmarshal(raw, &p.version) != nil {
			return parsedPolicy{invalid: true}
		}
	}
	raw, ok := top["Statement"]
	if !ok || isJSONNull(raw) {
		p.noStatement = true
		return p
	}
	var list []json.RawMessage
	if r := bytes.TrimSpace(raw); len(r) > 0 && r[0] == '{' {
		list = []json.RawMessage{r}
	} else if json.Unmarshal(raw, &list) != nil {
		return parsedPolicy{invalid: true}
	}
	p.statements = make([]policyStatement, 0, len(list))
	for _, r := range list {
		st, ok := parseStatement(r)
		if !ok {
			return parsedPolicy{invalid: true}
		}
		p.statements = append(p.statements, st)
	}
	return p
}

func isJSONNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func parseStatement(raw json.RawMessage) (policyStatement, bool) {
	var st policyStatement
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return st, false
	}
	for name := range m {
		if !slices.Contains(statementElementNames, name) {
			return st, false
		}
	}
	if r, ok := m["Effect"]; ok && json.Unmarshal(r, &st.effect) != nil {
		return st, false
	}
	_, hasP := m["Principal"]
	_, hasNP := m["NotPrincipal"]
	switch {
	case hasP && hasNP:
		return st, false
	case hasP || hasNP:
		r := m["Principal"]
		if hasNP {
			r = m["NotPrincipal"]
		}
		pr, ok := parsePrincipal(r)
		if !ok {
			return st, false
		}
		pr.negated = hasNP
		st.principal = pr
	}
	var ok bool
	if st.action, ok = parseNames(m, "Action", "NotAction"); !ok {
		return st, false
	}
	if st.resource, ok = parseNames(m, "Resource", "NotResource"); !ok {
		return st, false
	}
	if r, has := m["Condition"]; has {
		if st.conditions, ok = parseConditions(r); !ok {
			return st, false
		}
	}
	return st, true
}

// parsePrincipal reads "*" or {"TYPE": name or [names], ...}.
func parsePrincipal(raw json.RawMessage) (*policyPrincipal, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return &policyPrincipal{any: true}, s == "*"
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return nil, false
	}
	p := &policyPrincipal{types: make(map[string][]string, len(m))}
	for k, v := range m {
		names, ok := stringList(v)
		if !ok {
			return nil, false
		}
		p.types[k] = names
	}
	p.aws = compileAWSPrincipals(p.types["AWS"])
	return p, true
}

// parseNames reads an element (pos) or its negation (neg): a string or a
// list of strings. Both at once is not a statement.
func parseNames(m map[string]json.RawMessage, pos, neg string) (policyNames, bool) {
	rp, hasPos := m[pos]
	rn, hasNeg := m[neg]
	switch {
	case hasPos && hasNeg:
		return policyNames{}, false
	case hasPos:
		v, ok := stringList(rp)
		return policyNames{present: true, values: v}, ok
	case hasNeg:
		v, ok := stringList(rn)
		return policyNames{present: true, negated: true, values: v}, ok
	}
	return policyNames{}, true
}

// stringList decodes a string or a list of strings (never nil when ok).
func stringList(raw json.RawMessage) ([]string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, true
	}
	if isJSONNull(raw) {
		return nil, false
	}
	list := []string{}
	if json.Unmarshal(raw, &list) != nil || list == nil {
		return nil, false
	}
	return list, true
}

// parseConditions reads {"Operator": {"key": value or [values]}}.
func parseConditions(raw json.RawMessage) ([]policyCondition, bool) {
	var blocks map[string]map[string]json.RawMessage
	if json.Unmarshal(raw, &blocks) != nil || blocks == nil {
		return nil, false
	}
	var out []policyCondition
	for op, block := range blocks {
		if block == nil {
			return nil, false
		}
		set, base, ifExists, known := splitOperator(op)
		for key, rv := range block {
			values, ok := conditionValues(rv)
			if !ok {
				return nil, false
			}
			// A value that is not of the operator's type (an IP range that
			// is not one) makes the condition one the evaluator cannot
			// decide, as an unknown operator would.
			valid := known && !slices.ContainsFunc(values, func(v string) bool { return !validConditionValue(base, v) })
			out = append(out, policyCondition{operator: op, key: key, values: values,
				lkey: strings.ToLower(key), set: set, base: base, ifExists: ifExists, known: valid,
				op: conditionOperators[base], hasVars: slices.ContainsFunc(values, func(v string) bool { return strings.Contains(v, "${") })})
		}
	}
	slices.SortFunc(out, func(a, b policyCondition) int {
		if c := strings.Compare(a.operator, b.operator); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	return out, true
}

// conditionValues decodes a condition's values: a string, number or
// boolean, or a list of them. Numbers keep their text.
func conditionValues(raw json.RawMessage) ([]string, bool) {
	t := bytes.TrimSpace(raw)
	var list []json.RawMessage
	if len(t) > 0 && t[0] == '[' {
		if json.Unmarshal(t, &list) != nil {
			return nil, false
		}
	} else {
		list = []json.RawMessage{t}
	}
	out := make([]string, 0, len(list))
	for _, v := range list {
		s, ok := conditionScalar(v)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func conditionScalar(raw json.RawMessage) (string, bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "", false
	}
	switch t[0] {
	case 'n', '[', '{':
		return "", false
	case '"':
		var s string
		return s, json.Unmarshal(t, &s) == nil
	case 't', 'f':
		var b bool
		if json.Unmarshal(t, &b) != nil {
			return "", false
		}
		return strconv.FormatBool(b), true
	}
	var n json.Number
	if json.Unmarshal(t, &n) != nil {
		return "", false
	}
	return n.String(), true
}

// canonicalJSON writes the parsed document back as a policy: statements
// always in a list, element values always lists, no Sid or Id. Parsing it
// gives an equal parsedPolicy (FuzzParsePolicy checks it).
func (p parsedPolicy) canonicalJSON() []byte {
	type statement struct {
		Effect       string                         `json:"Effect"`
		Principal    any                            `json:"Principal,omitempty"`
		NotPrincipal any                            `json:"NotPrincipal,omitempty"`
		Action       *[]string                      `json:"Action,omitempty"`
		NotAction    *[]string                      `json:"NotAction,omitempty"`
		Resource     *[]string                      `json:"Resource,omitempty"`
		NotResource  *[]string                      `json:"NotResource,omitempty"`
		Condition    map[string]map[string][]string `json:"Condition,omitempty"`
	}
	doc := map[string]any{}
	if p.version != "" {
		doc["Version"] = p.version
	}
	if !p.noStatement {
		list := make([]statement, 0, len(p.statements))
		for _, st := range p.statements {
			out := statement{Effect: st.effect}
			if pr := st.principal; pr != nil {
				var v any = "*"
				if !pr.any {
					v = pr.types
				}
				if pr.negated {
					out.NotPrincipal = v
				} else {
					out.Principal = v
				}
			}
			names := func(n policyNames, pos, neg **[]string) {
				if !n.present {
					return
				}
				v := n.values
				if n.negated {
					*neg = &v
				} else {
					*pos = &v
				}
			}
			names(st.action, &out.Action, &out.NotAction)
			names(st.resource, &out.Resource, &out.NotResource)
			for _, c := range st.conditions {
				if out.Condition == nil {
					out.Condition = map[string]map[string][]string{}
				}
				if out.Condition[c.operator] == nil {
					out.Condition[c.operator] = map[string][]string{}
				}
				out.Condition[c.operator][c.key] = c.values
			}
			list = append(list, out)
		}
		doc["Statement"] = list
	}
	b, err := json.Marshal(doc)
	if err != nil {
		// Only strings, lists and maps of them: Marshal cannot fail.
		panic("service: canonical policy: " + err.Error())
	}
	return b
}

// policyCacheSize bounds the parsed policies kept: documents come from
// stored keys and the credentials file, and most keys share the default.
const policyCacheSize = 1024

// policyCache keeps parsed policy documents by their text, so the request
// path does not decode JSON policies on every call.
type policyCache struct {
	// mu is read-locked on the hit path, which is nearly every request
	// (batch items are authorized on every core at once).
	mu sync.RWMutex
	m  map[string]parsedPolicy
}

func (c *policyCache) get(doc string) parsedPolicy {
	c.mu.RLock()
	p, ok := c.m[doc]
	c.mu.RUnlock()
	if ok {
		return p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.m[doc]; ok {
		return p
	}
	if c.m == nil || len(c.m) >= policyCacheSize {
		c.m = make(map[string]parsedPolicy)
	}
	p = parsePolicy(doc)
	c.m[doc] = p
	return p
}

// evalPolicy evaluates a parsed policy. withPrincipal is true for
// resource-based (key) policies; identity policies have no principal and
// every applicable Allow counts as direct.
func evalPolicy(p parsedPolicy, ac *authzContext, withPrincipal bool) policyResult {
	var r policyResult
	vars := p.version == policyVersionCurrent
	for i := range p.statements {
		st := &p.statements[i]
		deny := st.effect == "Deny"
		if !deny && st.effect != "Allow" {
			continue
		}
		pm := principalDirect
		if withPrincipal {
			if st.principal == nil {
				continue
			}
			m := matchPrincipal(st.principal, ac)
			switch {
			case !st.principal.negated:
				pm = m
			case m != principalNone:
				pm = principalNone
			}
			if pm == principalNone {
				continue
			}
		}
		if !matchAction(st.action, ac.action) || !matchResource(st.resource, ac, vars) {
			continue
		}
		if !evalConditions(st.conditions, ac, deny, vars) {
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

// matchPrincipal matches "*" or {"AWS": ...}; other principal types
// (Service, Federated, CanonicalUser) never match an IAM caller.
func matchPrincipal(pr *policyPrincipal, ac *authzContext) principalMatch {
	if pr.any {
		return principalDirect
	}
	best := principalNone
	for i := range pr.aws {
		p := &pr.aws[i]
		switch {
		case p.name == "*" || p.name == ac.callerARN:
			return principalDirect
		case ac.callerAccount != "" && (p.name == ac.callerAccount || p.rootAccount == ac.callerAccount):
			if ac.isRoot {
				return principalDirect
			}
			best = principalAccount
		}
	}
	return best
}

// matchAction matches an action (case-insensitively) against Action or
// NotAction.
func matchAction(n policyNames, action string) bool {
	if !n.present {
		return false
	}
	hit := slices.ContainsFunc(n.values, func(p string) bool { return globMatch(literalPattern(p), action, true) })
	return hit != n.negated
}

// matchResource matches the request's resource against Resource or
// NotResource. Policy variables may stand in the resource part of an ARN
// pattern; a pattern whose variable has no value matches nothing.
func matchResource(n policyNames, ac *authzContext, vars bool) bool {
	if !n.present {
		return false
	}
	hit := false
	for _, p := range n.values {
		pat, ok := ac.pattern(p, vars)
		if ok && globMatch(pat, ac.resource, false) {
			hit = true
			break
		}
	}
	return hit != n.negated
}

// evalConditions ANDs every condition of a statement. An operator this
// evaluator does not know makes an Allow not apply and a Deny apply (fail
// closed); key policies with one are refused when they are put.
func evalConditions(conds []policyCondition, ac *authzContext, deny, vars bool) bool {
	for i := range conds {
		c := &conds[i]
		if !c.known {
			if deny {
				continue
			}
			return false
		}
		if !evalCondition(c, ac, vars) {
			return false
		}
	}
	return true
}

// evalCondition evaluates one operator on one key, as IAM does: a key
// absent from the request matches nothing, so a positive operator is
// false and a negated one true, except that ...IfExists is true and Null
// tests exactly the absence. ForAllValues holds for an absent or empty
// set; ForAnyValue does not.
func evalCondition(c *policyCondition, ac *authzContext, vars bool) bool {
	op := c.op
	reqValues, present := ac.value(c.lkey)
	present = present && len(reqValues) > 0
	if op.family == opNull {
		if len(c.values) != 1 {
			return false
		}
		want, err := strconv.ParseBool(c.values[0])
		return err == nil && want == !present
	}
	pats, ok := c.patterns(ac, vars)
	if !ok {
		// A policy variable without a value: the condition cannot match.
		return false
	}
	match := func(rv string) bool { return c.matches(pats, rv) }
	switch c.set {
	case setAll:
		for _, rv := range reqValues {
			if match(rv) == op.negated {
				return false
			}
		}
		return true
	case setAny:
		if !present {
			return c.ifExists
		}
		for _, rv := range reqValues {
			if match(rv) != op.negated {
				return true
			}
		}
		return false
	}
	if !present {
		return c.ifExists || op.negated
	}
	hit := slices.ContainsFunc(reqValues, match)
	return hit != op.negated
}

// patterns returns the policy values of a string or ARN condition with
// their policy variables expanded; nil when no value has one (matches
// then reads the values as written). ok is false when a policy variable
// in a value has no value in the request.
func (c *policyCondition) patterns(ac *authzContext, vars bool) ([]globPattern, bool) {
	if !vars || !c.hasVars || (c.op.family != opString && c.op.family != opARN) {
		return nil, true
	}
	pats := make([]globPattern, 0, len(c.values))
	for _, v := range c.values {
		p, ok := ac.pattern(v, vars)
		if !ok {
			return nil, false
		}
		pats = append(pats, p)
	}
	return pats, true
}

// matches is the positive comparison of a request value with the
// condition's policy values (any of them); pats are the expanded values of
// a string or ARN condition (patterns).
func (c *policyCondition) matches(pats []globPattern, rv string) bool {
	op := c.op
	switch op.family {
	case opString, opARN:
		if pats == nil {
			for _, v := range c.values {
				if matchStringOrARN(op, literalPattern(v), rv) {
					return true
				}
			}
			return false
		}
		for _, p := range pats {
			if matchStringOrARN(op, p, rv) {
				return true
			}
		}
		return false
	case opBool:
		return slices.ContainsFunc(c.values, func(pv string) bool { return strings.EqualFold(pv, rv) })
	case opBinary:
		return slices.Contains(c.values, rv)
	case opNumeric:
		r, err := strconv.ParseFloat(rv, 64)
		if err != nil {
			return false
		}
		return slices.ContainsFunc(c.values, func(pv string) bool {
			p, err := strconv.ParseFloat(pv, 64)
			return err == nil && compareOrdered(r, p, op.cmp)
		})
	case opDate:
		r, ok := parsePolicyTime(rv)
		if !ok {
			return false
		}
		return slices.ContainsFunc(c.values, func(pv string) bool {
			p, ok := parsePolicyTime(pv)
			return ok && compareOrdered(r.UnixNano(), p.UnixNano(), op.cmp)
		})
	case opIP:
		addr, err := netip.ParseAddr(rv)
		if err != nil {
			return false
		}
		addr = addr.Unmap()
		return slices.ContainsFunc(c.values, func(pv string) bool {
			p, ok := parseIPRange(pv)
			return ok && p.Contains(addr)
		})
	}
	return false
}

// matchStringOrARN compares one request value with one policy value of a
// string or ARN operator.
func matchStringOrARN(op conditionOperator, p globPattern, rv string) bool {
	switch {
	case op.family == opARN:
		return arnMatch(p, rv)
	case op.cmp == "like":
		return globMatch(p, rv, false)
	case op.cmp == "ieq":
		return strings.EqualFold(p.String(), rv)
	}
	return p.String() == rv
}

func compareOrdered[T int64 | float64](req, pol T, cmp string) bool {
	switch cmp {
	case "eq":
		return req == pol
	case "lt":
		return req < pol
	case "le":
		return req <= pol
	case "gt":
		return req > pol
	case "ge":
		return req >= pol
	}
	return false
}

// parseIPRange reads a CIDR block, or a single address (a /32 or /128).
func parseIPRange(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			if p.Bits() < 0 {
				return netip.Prefix{}, false
			}
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// policyTimeLayouts are the W3C profiles of ISO 8601 that IAM accepts.
var policyTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02",
	"2006-01",
}

// parsePolicyTime reads a date condition value: epoch seconds (possibly
// fractional) or an ISO 8601 date or date and time (UTC when no zone is
// given).
func parsePolicyTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if isDecimal(s) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < -1e15 || f > 1e15 {
			return time.Time{}, false
		}
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), true
	}
	for _, l := range policyTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// isDecimal reports whether s is an optionally signed decimal number
// without exponent: epoch time.
func isDecimal(s string) bool {
	s = strings.TrimPrefix(s, "-")
	digits, dot := 0, false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

// globPattern is a pattern with * (any run) and ? (one character), some of
// whose characters are literal: those that came from ${*}, ${?} or a
// policy variable's value.
type globPattern struct {
	s   string
	lit []bool // per byte of s; nil: no literal characters
}

func literalPattern(s string) globPattern { return globPattern{s: s} }

func (p globPattern) String() string { return p.s }

// wild reports whether byte i of the pattern is the wildcard c.
func (p globPattern) wild(i int, c byte) bool {
	return p.s[i] == c && (p.lit == nil || !p.lit[i])
}

// globMatch matches s against a pattern, ignoring case (as strings.ToLower
// does) when fold is set. ASCII pattern and text are matched byte by byte
// without allocating; anything else rune by rune.
func globMatch(p globPattern, s string, fold bool) bool {
	if len(p.s) == 1 && p.wild(0, '*') {
		return true // "Resource": "*", the usual key policy's, matches anything
	}
	if !isASCII(p.s) || !isASCII(s) {
		return globMatchRunes(p, s, fold)
	}
	if prefix, ok := p.prefixStar(); ok { // "kms:*", "kms:Generate*"
		return len(s) >= len(prefix) && asciiEqual(prefix, s[:len(prefix)], fold)
	}
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p.s) && (p.wild(pi, '?') || (sameByte(p.s[pi], s[si], fold) && !p.wild(pi, '*'))):
			pi++
			si++
		case pi < len(p.s) && p.wild(pi, '*'):
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
	for pi < len(p.s) && p.wild(pi, '*') {
		pi++
	}
	return pi == len(p.s)
}

// prefixStar reports whether the pattern is a prefix without wildcards
// followed by one '*', and returns the prefix.
func (p globPattern) prefixStar() (string, bool) {
	n := len(p.s) - 1
	if n < 0 || !p.wild(n, '*') {
		return "", false
	}
	for i := range n {
		if p.wild(i, '*') || p.wild(i, '?') {
			return "", false
		}
	}
	return p.s[:n], true
}

// asciiEqual compares ASCII strings of the same length, ignoring case when
// fold is set.
func asciiEqual(a, b string, fold bool) bool {
	if !fold {
		return a == b
	}
	for i := range len(a) {
		if asciiLower(a[i]) != asciiLower(b[i]) {
			return false
		}
	}
	return true
}

func sameByte(a, b byte, fold bool) bool {
	if fold {
		return asciiLower(a) == asciiLower(b)
	}
	return a == b
}

func asciiLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// globMatchRunes is globMatch for text that is not all ASCII: ? matches
// one rune. Folding lower-cases both sides, unless that changes the
// pattern's length in runes (rare runes), when they are compared as
// written.
func globMatchRunes(p globPattern, s string, fold bool) bool {
	orig := []rune(p.s)
	var lit []bool // per rune
	if p.lit != nil {
		lit = make([]bool, 0, len(orig))
		for i := range p.s { // i: the byte offset of each rune
			lit = append(lit, p.lit[i])
		}
	}
	wild := func(i int, c rune) bool { return orig[i] == c && (lit == nil || !lit[i]) }
	pr, str := orig, []rune(s)
	if fold {
		pr = []rune(strings.ToLower(p.s))
		str = []rune(strings.ToLower(s))
		if len(pr) != len(orig) {
			// Lower-casing changed the length (rare runes): compare as written.
			pr, str = orig, []rune(s)
		}
	}
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(pr) && (wild(pi, '?') || (pr[pi] == str[si] && !wild(pi, '*'))):
			pi++
			si++
		case pi < len(pr) && wild(pi, '*'):
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
	for pi < len(pr) && wild(pi, '*') {
		pi++
	}
	return pi == len(pr)
}

// arnMatch is ArnLike: each of the six colon-separated parts of the ARN
// is matched on its own, so a wildcard never spans a colon. "*" alone
// matches any value.
func arnMatch(p globPattern, value string) bool {
	if len(p.s) == 1 && p.wild(0, '*') {
		return true
	}
	vparts, ok := arnParts(value)
	if !ok {
		return false
	}
	var pparts [6]globPattern
	n, start := 0, 0
	for i := 0; i < len(p.s); i++ {
		if p.s[i] == ':' && n < 5 {
			pparts[n] = p.slice(start, i)
			n++
			start = i + 1
		}
	}
	if n != 5 {
		return false
	}
	pparts[5] = p.slice(start, len(p.s))
	for i := range pparts {
		if !globMatch(pparts[i], vparts[i], false) {
			return false
		}
	}
	return true
}

func (p globPattern) slice(i, j int) globPattern {
	out := globPattern{s: p.s[i:j]}
	if p.lit != nil {
		out.lit = p.lit[i:j]
	}
	return out
}

// pattern expands the policy variables of a policy value (when the policy
// language version has them): ${key} is the single value of a condition
// key of the request, ${key, 'default'} the default when the request has
// none, and ${*}, ${?}, ${$} stand for those characters taken literally.
// ok is false when a variable has no value.
func (ac *authzContext) pattern(s string, vars bool) (globPattern, bool) {
	if !vars || !strings.Contains(s, "${") {
		return literalPattern(s), true
	}
	var buf []byte
	var lit []bool
	add := func(text string, literal bool) {
		buf = append(buf, text...)
		for range len(text) {
			lit = append(lit, literal)
		}
	}
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			add(s, false)
			return globPattern{s: string(buf), lit: lit}, true
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			add(s, false)
			return globPattern{s: string(buf), lit: lit}, true
		}
		add(s[:i], false)
		name := s[i+2 : i+j]
		s = s[i+j+1:]
		switch name {
		case "*", "?", "$":
			add(name, true)
			continue
		}
		def, hasDef := "", false
		if k := strings.IndexByte(name, ','); k >= 0 {
			d := strings.TrimSpace(name[k+1:])
			if len(d) >= 2 && d[0] == '\'' && d[len(d)-1] == '\'' {
				def, hasDef = d[1:len(d)-1], true
			}
			name = strings.TrimSpace(name[:k])
		}
		v, ok := ac.value(strings.ToLower(name))
		switch {
		case ok && len(v) == 1:
			add(v[0], true)
		case hasDef:
			add(def, true)
		default:
			return globPattern{}, false
		}
	}
}
