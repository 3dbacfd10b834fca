package service

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsd/kmsd/fsm"
)

// Tests of the request-path shortcuts of authorization: condition keys
// worked out on demand, allocation-free glob and ARN matching.

// buildContext is requestContext with every condition key of the request
// worked out up front through lookup into keys (all but
// kms:ResourceAliases, which stays read on demand): the whole context at
// once, as TestAuthzBuildContext inspects it.
func (s *Service) buildContext(ri RequestInfo, isRoot bool, r *authzRequest, in any) *authzContext {
	ac := s.requestContext(ri, isRoot, r, in)
	names := slices.Clone(baseConditionKeys)
	if k := r.key; k != nil {
		for tk := range k.Tags {
			names = append(names, condResourceTagPrefix+strings.ToLower(tk))
		}
	}
	if r.hasEC {
		for ek := range r.ec {
			names = append(names, condEncryptionContextPrefix+strings.ToLower(ek))
		}
	}
	for name := range ac.params() {
		names = append(names, name)
	}
	ac.keys = make(map[string][]string, len(names))
	for _, name := range names {
		if v, ok := ac.lookup(name); ok {
			ac.keys[name] = v
		}
	}
	return ac
}

// baseConditionKeys are the condition keys lookup answers by name (the
// others are the prefixed ones: tags, encryption context, and those of
// the request parameters), kms:ResourceAliases aside.
var baseConditionKeys = []string{
	condCallerAccount, condPrincipalARN, condPrincipalAccount, condPrincipalType, condUsername,
	condCurrentTime, condEpochTime, condSecureTransport, condSourceIP, condUserAgent, condRequestedRegion,
	condKeySpec, condCMKSpec, condKeyUsage, condCMKUsage, condKeyOrigin, condMultiRegion,
	condMultiRegionKeyType, condResourceAccount, condGrantIsForAWSResource, condEncryptionContextKeys,
	condRequestAlias,
}

// TestAuthorizeWithoutConditionsDoesNoConditionWork: under policies
// without conditions, a request neither reads the clock nor allocates
// more than the action name; a time condition reads the clock once,
// however many ask.
func TestAuthorizeWithoutConditionsDoesNoConditionWork(t *testing.T) {
	var clockReads atomic.Int64
	now := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	s := &Service{cfg: Config{AccountID: tAccount, Region: "us-east-1",
		Now: func() time.Time { clockReads.Add(1); return now }}, fsm: fsm.New()}
	k := benchAuthzKey(s, "")
	ctx := benchAuthzCtx(tAlice, benchIdentityPolicy)
	r := authzRequest{action: "GenerateDataKey", key: k, ref: k.KeyID, ec: map[string]string{"a": "b"}, hasEC: true}
	if err := s.authorize(ctx, r); err != nil {
		t.Fatal(err)
	}
	if n := clockReads.Load(); n != 0 {
		t.Fatalf("the clock was read %d times for policies without conditions", n)
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = s.authorize(ctx, r) }); allocs > 1 {
		t.Fatalf("%v allocations per authorization, want at most 1", allocs)
	}

	timed := benchAuthzKey(s, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"`+tAlice+`"},"Action":"kms:*","Resource":"*",
	 "Condition":{"DateGreaterThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"},"NumericGreaterThan":{"aws:EpochTime":"1704067200"},
	  "StringLike":{"aws:CurrentTime":"2024-05-*"}}}]}`)
	r.key = timed
	if err := s.authorize(benchAuthzCtx(tAlice, ""), r); err != nil {
		t.Fatal(err)
	}
	if n := clockReads.Load(); n != 1 {
		t.Fatalf("the clock was read %d times for three time conditions, want 1", n)
	}
	// The clock says 2024-05-01: a condition on a later time denies.
	late := benchAuthzKey(s, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"`+tAlice+`"},"Action":"kms:*","Resource":"*",
	 "Condition":{"DateGreaterThan":{"aws:CurrentTime":"2024-06-01T00:00:00Z"}}}]}`)
	r.key = late
	if err := s.authorize(benchAuthzCtx(tAlice, ""), r); err == nil {
		t.Fatal("a time condition the request time fails allowed the request")
	}
}

// TestAuthzLookupPrecedence: keys from the request parameters replace
// those of the key and caller, as when the context was one map written in
// that order; a key the request does not have is absent.
func TestAuthzLookupPrecedence(t *testing.T) {
	s := &Service{cfg: Config{AccountID: tAccount, Region: "us-east-1", Now: time.Now}, fsm: fsm.New()}
	k := &fsm.Key{KeyID: "k1", ARN: tKeyARN, KeySpec: "SYMMETRIC_DEFAULT", Tags: map[string]string{"Stage": "a", "STAGE": "b"}}
	r := &authzRequest{action: "Encrypt", key: k, extra: map[string][]string{"kms:KeySpec": {"FROM_EXTRA"}},
		ec: map[string]string{"App": "x", "app": "y"}, hasEC: true}
	ac := s.requestContext(RequestInfo{Caller: Caller{ARN: tAlice, AccountID: tAccount}}, false, r, &EncryptInput{})
	for key, want := range map[string]string{
		condKeySpec:                 "FROM_EXTRA",
		condEncryptionAlgorithm:     "SYMMETRIC_DEFAULT",
		"aws:resourcetag/stage":     "a,b",
		"kms:encryptioncontext:app": "x,y",
		condEncryptionContextKeys:   "App,app",
		condUsername:                "alice",
		condResourceAccount:         "",
		condMultiRegionKeyType:      "",
		"kms:viaservice":            "",
	} {
		v, ok := ac.value(key)
		// Values gathered from maps come in map order.
		v = slices.Sorted(slices.Values(v))
		if got := strings.Join(v, ","); got != want || ok != (want != "") {
			t.Errorf("%s = %q (present %v), want %q", key, got, ok, want)
		}
	}
}

// TestGlobMatchASCIIAgreesWithRunes: the byte-wise matcher decides every
// ASCII pattern and text as the rune-wise one does, with and without case
// folding and literal characters.
func TestGlobMatchASCIIAgreesWithRunes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "aAbB*?:/-"
	gen := func(n int) string {
		b := make([]byte, rng.IntN(n+1))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for i := range 100000 {
		p := globPattern{s: gen(8)}
		if i%4 == 0 { // the fast paths' shapes: "*" and a prefix then '*'
			p.s = strings.ReplaceAll(strings.ReplaceAll(gen(4), "*", "a"), "?", "b") + "*"
		}
		if rng.IntN(3) == 0 {
			p.lit = make([]bool, len(p.s))
			for i := range p.lit {
				p.lit[i] = rng.IntN(2) == 0
			}
		}
		s, fold := gen(10), rng.IntN(2) == 0
		if got, want := globMatch(p, s, fold), globMatchRunes(p, s, fold); got != want {
			t.Fatalf("globMatch(%q lit=%v, %q, fold=%v) = %v, rune-wise %v", p.s, p.lit, s, fold, got, want)
		}
	}
	for _, tc := range []struct {
		pat, s string
		fold   bool
		want   bool
	}{
		{"kms:*", "kms:Encrypt", true, true},
		{"KMS:ENCRYPT", "kms:Encrypt", true, true},
		{"KMS:ENCRYPT", "kms:Encrypt", false, false},
		{"kms:Generate*", "kms:GenerateDataKey", false, true},
		{"kms:Gen?rate*", "kms:GenerateDataKey", false, true},
		{"arn:aws:kms:*:111122223333:key/*", tKeyARN, false, true},
		{"arn:aws:kms:*:111122223333:key/*", strings.ToUpper(tKeyARN), false, false},
		{"ä*", "äb", false, true}, // not ASCII: rune-wise
		{"?b", "äb", false, true}, // ? is one rune
		{"Ä*", "äB", true, true},  // folded rune-wise
		{"a*", "äb", false, false},
		{"*", "äb", true, true},
		{"*", "", false, true},
		{"\u212a*", "kms", true, true}, // the Kelvin sign: rune-wise, lower-cased to k as strings.ToLower does
	} {
		if got := globMatch(literalPattern(tc.pat), tc.s, tc.fold); got != tc.want {
			t.Errorf("globMatch(%q, %q, %v) = %v", tc.pat, tc.s, tc.fold, got)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() {
		globMatch(literalPattern("arn:aws:kms:*:111122223333:key/*"), tKeyARN, false)
		globMatch(literalPattern("kms:GENERATE*"), "kms:GenerateDataKey", true)
		arnMatch(literalPattern("arn:aws:iam::*:user/al?ce"), tAlice)
	}); allocs != 0 {
		t.Fatalf("%v allocations matching ASCII", allocs)
	}
}

// TestArnParts: arnParts splits as strings.SplitN(s, ":", 6).
func TestArnParts(t *testing.T) {
	for _, s := range []string{"", "arn", "a:b:c:d:e", "a:b:c:d:e:f", "a:b:c:d:e:f:g:h", ":::::", tKeyARN, "arn:aws:kms:us-east-1:111122223333:alias/x:y"} {
		p, ok := arnParts(s)
		want := strings.SplitN(s, ":", 6)
		if ok != (len(want) == 6) || (ok && strings.Join(p[:], "|") != strings.Join(want, "|")) {
			t.Errorf("arnParts(%q) = %q, %v; SplitN %q", s, p, ok, want)
		}
	}
	s := &Service{cfg: Config{AccountID: tAccount}}
	for _, arn := range []string{tRoot, tAlice, tRoot + "x", "x" + tRoot, "arn:aws:iam::111122223334:root", "arn:aws:iam::11112222333:root", ""} {
		if got, want := s.isRootARN(arn), arn == s.rootARN(); got != want {
			t.Errorf("isRootARN(%q) = %v, want %v", arn, got, want)
		}
	}
}
