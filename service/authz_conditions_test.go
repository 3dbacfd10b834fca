package service

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kmsd/kmsd/fsm"
)

// Unit tests of the condition evaluator: each case is one Allow statement
// of an identity policy with one Condition block, evaluated against a
// request context; the SDK-level matrix (authz_matrix_test.go) covers the
// same keys end to end.

const (
	tAccount  = "111122223333"
	tAlice    = "arn:aws:iam::111122223333:user/alice"
	tRoot     = "arn:aws:iam::111122223333:root"
	tKeyARN   = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	tNowISO   = "2024-05-01T10:00:00Z"
	tNowEpoch = "1714557600"
)

// aliceContext is a request by alice for kms:Encrypt on tKeyARN.
func aliceContext(extra map[string][]string) *authzContext {
	ac := &authzContext{callerARN: tAlice, callerAccount: tAccount, action: "kms:Encrypt", resource: tKeyARN,
		keys: map[string][]string{
			condPrincipalARN: {tAlice}, condPrincipalAccount: {tAccount}, condCallerAccount: {tAccount},
			condUsername: {"alice"}, condPrincipalType: {"User"}, condSourceIP: {"203.0.113.7"},
			condCurrentTime: {tNowISO}, condEpochTime: {tNowEpoch}, condSecureTransport: {"false"},
		}}
	for k, v := range extra {
		ac.keys[k] = v
	}
	return ac
}

// allowsWith evaluates {"Effect":"Allow","Action":"kms:*","Resource":"*",
// "Condition":cond} under version.
func allowsWith(t *testing.T, version, cond string, ac *authzContext) bool {
	t.Helper()
	doc := `{"Version":"` + version + `","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":` + cond + `}]}`
	p := parsePolicy(doc)
	if p.invalid {
		t.Fatalf("policy does not parse: %s", doc)
	}
	return evalPolicy(p, ac, false).allowDirect
}

func TestAuthzConditionOperators(t *testing.T) {
	ec := map[string][]string{condEncryptionContextKeys: {"AppName", "Stage"},
		"kms:encryptioncontext:appname": {"ExampleApp"}, "kms:encryptioncontext:stage": {"Test"}}
	cases := []struct {
		name  string
		cond  string
		extra map[string][]string
		want  bool
	}{
		// A key the request does not have (kms:ViaService: no AWS service
		// calls kmsd): positive operators false, negated and IfExists
		// true, Null true.
		{"ViaService StringEquals", `{"StringEquals":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}}`, nil, false},
		{"ViaService StringEqualsIfExists", `{"StringEqualsIfExists":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}}`, nil, true},
		{"ViaService StringNotEquals", `{"StringNotEquals":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}}`, nil, true},
		{"ViaService StringLike", `{"StringLike":{"kms:ViaService":"*"}}`, nil, false},
		{"ViaService Null true", `{"Null":{"kms:ViaService":"true"}}`, nil, true},
		{"ViaService Null false", `{"Null":{"kms:ViaService":false}}`, nil, false},
		{"unknown key Bool", `{"Bool":{"kms:NoSuchKey":"false"}}`, nil, false},
		{"unknown key BoolIfExists", `{"BoolIfExists":{"kms:NoSuchKey":"false"}}`, nil, true},
		{"Null on present key", `{"Null":{"aws:SourceIp":"false"}}`, nil, true},

		// Strings.
		{"StringEquals case", `{"StringEquals":{"aws:username":"Alice"}}`, nil, false},
		{"StringEqualsIgnoreCase", `{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}`, nil, true},
		{"StringNotEqualsIgnoreCase", `{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}`, nil, false},
		{"StringLike ?", `{"StringLike":{"aws:username":"al?ce"}}`, nil, true},
		{"StringNotLike", `{"StringNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:root"}}`, nil, true},
		{"values are ORed", `{"StringEquals":{"aws:username":["bob","alice"]}}`, nil, true},
		{"keys are ANDed", `{"StringEquals":{"aws:username":"alice","kms:CallerAccount":"444455556666"}}`, nil, false},
		{"operators are ANDed", `{"StringEquals":{"aws:username":"alice"},"Bool":{"aws:SecureTransport":"true"}}`, nil, false},
		{"key names are case-insensitive", `{"StringEquals":{"AWS:USERNAME":"alice"}}`, nil, true},

		// Encryption context: the context key in the condition key is
		// case-insensitive; the value's case is the operator's.
		{"EncryptionContext key case", `{"StringEquals":{"kms:EncryptionContext:APPNAME":"ExampleApp"}}`, ec, true},
		{"EncryptionContext value case", `{"StringEquals":{"kms:EncryptionContext:AppName":"exampleapp"}}`, ec, false},
		{"EncryptionContextKeys ForAnyValue", `{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"AppName"}}`, ec, true},
		{"EncryptionContextKeys ForAllValues subset", `{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["AppName"]}}`, ec, false},
		{"EncryptionContextKeys ForAllValues superset", `{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["AppName","Stage","X"]}}`, ec, true},
		{"ForAllValues without context", `{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["AppName"]}}`, nil, true},
		{"ForAnyValue without context", `{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":["AppName"]}}`, nil, false},
		{"ForAnyValue IfExists without context", `{"ForAnyValue:StringEqualsIfExists":{"kms:EncryptionContextKeys":["AppName"]}}`, nil, true},
		{"ForAllValues StringNotLike", `{"ForAllValues:StringNotLike":{"kms:EncryptionContextKeys":"Secret*"}}`, ec, true},
		{"ForAnyValue StringNotEquals", `{"ForAnyValue:StringNotEquals":{"kms:EncryptionContextKeys":["AppName","Stage"]}}`, ec, false},
		{"Null EncryptionContextKeys false", `{"Null":{"kms:EncryptionContextKeys":"false"}}`, ec, true},
		{"Null EncryptionContextKeys no context", `{"Null":{"kms:EncryptionContextKeys":"false"}}`, nil, false},

		// Numbers.
		{"NumericLessThanEquals", `{"NumericLessThanEquals":{"kms:ValidTo":"1546257599.0"}}`, map[string][]string{condValidTo: {"1546257599"}}, true},
		{"NumericLessThan", `{"NumericLessThan":{"kms:ValidTo":1546257599}}`, map[string][]string{condValidTo: {"1546257599"}}, false},
		{"NumericGreaterThanEquals", `{"NumericGreaterThanEquals":{"kms:RotationPeriodInDays":180}}`, map[string][]string{condRotationPeriodInDays: {"365"}}, true},
		{"NumericNotEquals", `{"NumericNotEquals":{"kms:RotationPeriodInDays":["365","90"]}}`, map[string][]string{condRotationPeriodInDays: {"365"}}, false},
		{"NumericEquals absent", `{"NumericEquals":{"kms:RotationPeriodInDays":365}}`, nil, false},

		// Dates: ISO 8601 or epoch seconds on either side.
		{"DateLessThan ISO", `{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}`, nil, true},
		{"DateGreaterThan ISO", `{"DateGreaterThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}`, nil, false},
		{"DateGreaterThanEquals date only", `{"DateGreaterThanEquals":{"aws:CurrentTime":"2024-05-01"}}`, nil, true},
		{"DateEquals epoch vs ISO", `{"DateEquals":{"aws:CurrentTime":"1714557600"}}`, nil, true},
		{"DateNotEquals", `{"DateNotEquals":{"aws:CurrentTime":"2024-05-01T10:00:00+00:00"}}`, nil, false},
		{"DateLessThanEquals EpochTime ISO", `{"DateLessThanEquals":{"aws:EpochTime":"2024-05-01T10:00:00Z"}}`, nil, true},
		{"DateLessThan zone", `{"DateLessThan":{"aws:CurrentTime":"2024-05-01T11:30:00+02:00"}}`, nil, false},
		{"NumericLessThan EpochTime", `{"NumericLessThan":{"aws:EpochTime":1714557601}}`, nil, true},

		// Booleans.
		{"Bool false", `{"Bool":{"aws:SecureTransport":"false"}}`, nil, true},
		{"Bool true", `{"Bool":{"aws:SecureTransport":true}}`, nil, false},
		{"Bool case", `{"Bool":{"aws:SecureTransport":"FALSE"}}`, nil, true},

		// IP addresses.
		{"IpAddress CIDR", `{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, nil, true},
		{"IpAddress single", `{"IpAddress":{"aws:SourceIp":"203.0.113.8"}}`, nil, false},
		{"IpAddress list", `{"IpAddress":{"aws:SourceIp":["2001:DB8::/32","203.0.113.7"]}}`, nil, true},
		{"NotIpAddress", `{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, nil, false},
		{"NotIpAddress outside", `{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, nil, true},
		{"IpAddress IPv6", `{"IpAddress":{"aws:SourceIp":"2001:DB8:1234:5678::/64"}}`, map[string][]string{condSourceIP: {"2001:db8:1234:5678::9"}}, true},
		{"IpAddress v4 range, v6 caller", `{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}`, map[string][]string{condSourceIP: {"::1"}}, false},
		{"IpAddress mapped caller", `{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, map[string][]string{condSourceIP: {"::ffff:203.0.113.7"}}, true},
		{"IpAddress absent", `{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}`, map[string][]string{condSourceIP: nil}, false},
		{"NotIpAddressIfExists absent", `{"NotIpAddressIfExists":{"aws:SourceIp":"0.0.0.0/0"}}`, map[string][]string{condSourceIP: nil}, true},

		// ARNs: each part on its own.
		{"ArnLike", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}`, nil, true},
		{"ArnEquals wildcard", `{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:*"}}`, nil, true},
		{"ArnLike root", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:root"}}`, nil, false},
		{"ArnNotLike", `{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/a*"}}`, nil, false},
		{"ArnNotEquals other", `{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/bob"}}`, nil, true},
		{"ArnLike does not span colons",
			`{"ArnLike":{"aws:SourceArn":"arn:aws:someservice:*:111122223333:finance/*"}}`,
			map[string][]string{"aws:sourcearn": {"arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"}}, false},
		{"StringLike spans colons",
			`{"StringLike":{"aws:SourceArn":"arn:aws:someservice:*:111122223333:finance/*"}}`,
			map[string][]string{"aws:sourcearn": {"arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"}}, true},
		{"ArnLike not an ARN", `{"ArnLike":{"aws:username":"arn:*:*:*:*:*"}}`, nil, false},

		// Policy variables.
		{"variable", `{"StringEquals":{"kms:EncryptionContext:user":"${aws:username}"}}`, map[string][]string{"kms:encryptioncontext:user": {"alice"}}, true},
		{"variable mismatch", `{"StringEquals":{"kms:EncryptionContext:user":"${aws:username}"}}`, map[string][]string{"kms:encryptioncontext:user": {"bob"}}, false},
		{"variable in a pattern", `{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}:user/*"}}`, nil, true},
		{"variable in an ARN", `{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::${kms:CallerAccount}:user/${aws:username}"}}`, nil, true},
		{"variable without value", `{"StringNotEquals":{"aws:username":"${aws:userid}"}}`, nil, false},
		{"variable default", `{"StringEquals":{"aws:username":"${aws:userid, 'alice'}"}}`, nil, true},
		{"literal star", `{"StringLike":{"kms:EncryptionContext:p":"a${*}b"}}`, map[string][]string{"kms:encryptioncontext:p": {"axb"}}, false},
		{"literal star matches star", `{"StringLike":{"kms:EncryptionContext:p":"a${*}b*"}}`, map[string][]string{"kms:encryptioncontext:p": {"a*bcd"}}, true},
		{"literal question mark and dollar", `{"StringEquals":{"kms:EncryptionContext:p":"${?}${$}"}}`, map[string][]string{"kms:encryptioncontext:p": {"?$"}}, true},
		{"variable value is literal", `{"StringLike":{"kms:EncryptionContext:p":"${kms:EncryptionContext:q}"}}`,
			map[string][]string{"kms:encryptioncontext:p": {"abc"}, "kms:encryptioncontext:q": {"*"}}, false},

		// Operators the evaluator does not know never let an Allow apply.
		{"unknown operator", `{"StringSortOf":{"aws:username":"alice"}}`, nil, false},
		{"Null with IfExists", `{"NullIfExists":{"kms:ViaService":"true"}}`, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := allowsWith(t, policyVersionCurrent, tc.cond, aliceContext(tc.extra)); got != tc.want {
				t.Fatalf("condition %s: allow = %v, want %v", tc.cond, got, tc.want)
			}
		})
	}
}

func TestAuthzConditionVersionAndDeny(t *testing.T) {
	// Variables are a 2012-10-17 feature: under 2008-10-17 "${aws:username}"
	// is the literal text.
	cond := `{"StringEquals":{"kms:EncryptionContext:user":"${aws:username}"}}`
	ac := aliceContext(map[string][]string{"kms:encryptioncontext:user": {"alice"}})
	if allowsWith(t, policyVersionLegacy, cond, ac) {
		t.Fatal("2008-10-17 expanded a variable")
	}
	ac = aliceContext(map[string][]string{"kms:encryptioncontext:user": {"${aws:username}"}})
	if !allowsWith(t, policyVersionLegacy, cond, ac) {
		t.Fatal("2008-10-17 did not compare the literal text")
	}

	// An unknown operator makes a Deny apply (fail closed).
	p := parsePolicy(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:*","Resource":"*","Condition":{"StringSortOf":{"aws:username":"bob"}}}]}`)
	if !evalPolicy(p, aliceContext(nil), false).deny {
		t.Fatal("a Deny with an unknown operator did not apply")
	}

	// Resource patterns take variables in their resource part.
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"arn:aws:kms:*:111122223333:key/${aws:username}-*"}]}`
	ac = aliceContext(nil)
	ac.resource = "arn:aws:kms:us-east-1:111122223333:key/alice-1"
	if !evalPolicy(parsePolicy(doc), ac, false).allowDirect {
		t.Fatal("resource variable did not match")
	}
	ac.resource = "arn:aws:kms:us-east-1:111122223333:key/bob-1"
	if evalPolicy(parsePolicy(doc), ac, false).allowDirect {
		t.Fatal("resource variable matched another user's key")
	}
	ac = &authzContext{callerARN: tRoot, callerAccount: tAccount, isRoot: true, action: "kms:Encrypt",
		resource: "arn:aws:kms:us-east-1:111122223333:key/-1", keys: map[string][]string{}}
	if evalPolicy(parsePolicy(doc), ac, false).allowDirect {
		t.Fatal("a resource pattern whose variable has no value matched")
	}
}

func TestAuthzLazyResourceAliases(t *testing.T) {
	calls := 0
	aliases := []string{"alias/Test-a", "alias/prod"}
	ac := aliceContext(nil)
	ac.lazy = func(key string) ([]string, bool) {
		if key != condResourceAliases {
			return nil, false
		}
		calls++
		return aliases, len(aliases) > 0
	}
	doc := `{"Version":"2012-10-17","Statement":[
	 {"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"ForAnyValue:StringLike":{"kms:ResourceAliases":"alias/*Test*"}}},
	 {"Effect":"Deny","Action":"kms:*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"kms:ResourceAliases":"alias/forbidden"}}}]}`
	r := evalPolicy(parsePolicy(doc), ac, false)
	if !r.allowDirect || r.deny || calls != 1 {
		t.Fatalf("result %+v after %d lookups, want allowed after 1", r, calls)
	}
	// ForAllValues: every alias must match; a key without aliases passes.
	all := `{"ForAllValues:StringLike":{"kms:ResourceAliases":"alias/*Test*"}}`
	if allowsWith(t, policyVersionCurrent, all, ac) {
		t.Fatal("ForAllValues matched with alias/prod")
	}
	aliases = nil
	ac = aliceContext(nil)
	ac.lazy = func(string) ([]string, bool) { return aliases, false }
	if !allowsWith(t, policyVersionCurrent, all, ac) {
		t.Fatal("ForAllValues on a key without aliases")
	}
}

// TestAuthzBuildContext checks the request context kmsd builds: the
// caller's keys, the key's, and those from request parameters.
func TestAuthzBuildContext(t *testing.T) {
	now := time.Date(2024, 5, 1, 10, 0, 0, 5, time.UTC)
	s := &Service{cfg: Config{AccountID: tAccount, Region: "us-east-1", Now: func() time.Time { return now }}, fsm: fsm.New()}
	ri := RequestInfo{Caller: Caller{ARN: tAlice, AccountID: tAccount}, SourceIP: "::ffff:198.51.100.4", UserAgent: "sdk/1", SecureTransport: true}
	k := &fsm.Key{KeyID: "k1", ARN: tKeyARN, AccountID: tAccount, KeySpec: "RSA_2048", KeyUsage: "SIGN_VERIFY", Origin: "AWS_KMS",
		MultiRegion: true, Tags: map[string]string{"Project": "Alpha"}}
	alg, mt := "RSASSA_PSS_SHA_256", "DIGEST"
	ac := s.buildContext(ri, false, &authzRequest{action: "Sign", key: k, ref: "alias/signer"},
		&SignInput{SigningAlgorithm: &alg, MessageType: &mt})
	want := map[string][]string{
		condPrincipalARN: {tAlice}, condCallerAccount: {tAccount}, condPrincipalAccount: {tAccount},
		condPrincipalType: {"User"}, condUsername: {"alice"}, condSourceIP: {"198.51.100.4"},
		condUserAgent: {"sdk/1"}, condSecureTransport: {"true"}, condCurrentTime: {"2024-05-01T10:00:00Z"},
		condEpochTime: {"1714557600"}, condRequestedRegion: {"us-east-1"}, condResourceAccount: {tAccount},
		condKeySpec: {"RSA_2048"}, condCMKSpec: {"RSA_2048"}, condKeyUsage: {"SIGN_VERIFY"}, condCMKUsage: {"SIGN_VERIFY"},
		condKeyOrigin: {"AWS_KMS"}, condMultiRegion: {"true"}, condMultiRegionKeyType: {"PRIMARY"},
		"aws:resourcetag/project": {"Alpha"}, condRequestAlias: {"alias/signer"},
		condSigningAlgorithm: {alg}, condMessageType: {mt},
	}
	for k, v := range want {
		if got := ac.keys[k]; strings.Join(got, ",") != strings.Join(v, ",") {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for k := range ac.keys {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected key %s = %q", k, ac.keys[k])
		}
	}
	if v, ok := ac.value(condResourceAliases); ok {
		t.Errorf("a key without aliases has kms:ResourceAliases %q", v)
	}

	// An input only lends its parameters to its own operation's actions.
	ac = s.buildContext(ri, false, &authzRequest{action: "DescribeKey", key: k}, &SignInput{SigningAlgorithm: &alg})
	if _, ok := ac.keys[condSigningAlgorithm]; ok {
		t.Error("DescribeKey got kms:SigningAlgorithm from a Sign input")
	}

	// The root has no user name; its principal type is Account.
	ac = s.buildContext(RequestInfo{Caller: Caller{ARN: tRoot, AccountID: tAccount}}, true, &authzRequest{action: "ListKeys"}, nil)
	if ac.keys[condPrincipalType][0] != "Account" || ac.keys[condUsername] != nil || ac.keys[condSourceIP] != nil {
		t.Errorf("root context %v", ac.keys)
	}

	// Request parameters of each family, with AWS's defaults.
	days := int32(180)
	for _, tc := range []struct {
		action string
		in     any
		want   map[string]string // key -> values joined by ","; "" absent
	}{
		{"Encrypt", &EncryptInput{}, map[string]string{condEncryptionAlgorithm: "SYMMETRIC_DEFAULT"}},
		{"GenerateDataKeyWithoutPlaintext", &GenerateDataKeyInput{}, map[string]string{condEncryptionAlgorithm: "SYMMETRIC_DEFAULT"}},
		{"GenerateDataKeyPair", &GenerateDataKeyPairInput{KeyPairSpec: strp("ECC_NIST_P256")},
			map[string]string{condDataKeyPairSpec: "ECC_NIST_P256", condEncryptionAlgorithm: "SYMMETRIC_DEFAULT"}},
		{"Verify", &VerifyInput{SigningAlgorithm: &alg}, map[string]string{condSigningAlgorithm: alg, condMessageType: "RAW"}},
		{"VerifyMac", &VerifyMacInput{MacAlgorithm: strp("HMAC_SHA_384")}, map[string]string{condMacAlgorithm: "HMAC_SHA_384"}},
		{"GetParametersForImport", &GetParametersForImportInput{WrappingAlgorithm: strp("RSAES_OAEP_SHA_256"), WrappingKeySpec: strp("RSA_4096")},
			map[string]string{condWrappingAlgorithm: "RSAES_OAEP_SHA_256", condWrappingKeySpec: "RSA_4096"}},
		{"ImportKeyMaterial", &ImportKeyMaterialInput{ValidTo: NewTimestamp(time.Unix(1546257599, 0))},
			map[string]string{condValidTo: "1546257599", condExpirationModel: ""}},
		{"EnableKeyRotation", &EnableKeyRotationInput{}, map[string]string{condRotationPeriodInDays: "365"}},
		{"EnableKeyRotation", &EnableKeyRotationInput{RotationPeriodInDays: &days}, map[string]string{condRotationPeriodInDays: "180"}},
		{"TagResource", &TagResourceInput{Tags: []Tag{{TagKey: strp("Stage"), TagValue: strp("prod")}}},
			map[string]string{condTagKeys: "Stage", "aws:requesttag/stage": "prod"}},
		{"UntagResource", &UntagResourceInput{TagKeys: []string{"a", "b"}}, map[string]string{condTagKeys: "a,b"}},
		{"PutKeyPolicy", &PutKeyPolicyInput{}, map[string]string{condBypassLockout: ""}},
		{"CreateKey", &CreateKeyInput{KeySpec: strp("HMAC_256"), KeyUsage: strp("GENERATE_VERIFY_MAC"),
			Tags: []Tag{{TagKey: strp("Owner"), TagValue: strp("alice")}}, BypassPolicyLockoutSafetyCheck: boolp(true)},
			map[string]string{condKeySpec: "HMAC_256", condKeyUsage: "GENERATE_VERIFY_MAC", condKeyOrigin: "AWS_KMS",
				condMultiRegion: "false", condBypassLockout: "true", condTagKeys: "Owner", "aws:requesttag/owner": "alice"}},
		{"CreateGrant", &CreateGrantInput{Operations: []string{"Decrypt", "Encrypt"}, GranteePrincipal: strp(tAlice),
			Constraints: &GrantConstraints{EncryptionContextEquals: map[string]string{"App": "x"}}},
			map[string]string{condGrantOperations: "Decrypt,Encrypt", condGranteePrincipal: tAlice, condRetiringPrincipal: "",
				condGrantConstraintType: "EncryptionContextEquals", "kms:encryptioncontext:app": "x", condEncryptionContextKeys: "App",
				condGrantIsForAWSResource: "false"}},
	} {
		ac := s.buildContext(ri, false, &authzRequest{action: tc.action, key: k}, tc.in)
		for key, v := range tc.want {
			if got := strings.Join(ac.keys[key], ","); got != v {
				t.Errorf("%s: %s = %q, want %q", tc.action, key, got, v)
			}
		}
	}
}

func strp(s string) *string { return &s }
func boolp(b bool) *bool    { return &b }

// TestAuthzConditionGrammar: key policies with conditions this evaluator
// cannot evaluate, or that AWS KMS refuses, are MalformedPolicyDocument.
func TestAuthzConditionGrammar(t *testing.T) {
	policy := func(cond string) string {
		return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*","Condition":` + cond + `}]}`
	}
	good := []string{
		`{}`,
		`{"StringEquals":{"kms:CallerAccount":"111122223333","kms:EncryptionContext:a":["x","y"]}}`,
		`{"ForAnyValue:StringLikeIfExists":{"kms:EncryptionContextKeys":"a*"}}`,
		`{"NumericLessThanEquals":{"kms:ValidTo":1546257599.5}}`,
		`{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:01Z"},"DateLessThan":{"aws:EpochTime":1700000000}}`,
		`{"Bool":{"aws:SecureTransport":false},"Null":{"kms:ViaService":"true"}}`,
		`{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:DB8::/32","198.51.100.7"]}}`,
		`{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"},"ArnNotEqualsIfExists":{"aws:SourceArn":"*"}}`,
		`{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["a"],"aws:TagKeys":["b"]}}`,
		`{"BinaryEquals":{"kms:Something":"QmluYXJ5"}}`,
	}
	for _, c := range good {
		if err := checkPolicyDocument(policy(c)); err != nil {
			t.Errorf("%s refused: %v", c, err)
		}
	}
	bad := map[string]string{
		`{"StringSortOf":{"a":"b"}}`:                                    "unsupported condition operator",
		`{"NullIfExists":{"a":"true"}}`:                                 "unsupported condition operator",
		`{"ForAnyValue:Null":{"a":"true"}}`:                             "unsupported condition operator",
		`{"StringEquals":"x"}`:                                          "not an object of condition keys",
		`{"StringEquals":{}}`:                                           "not an object of condition keys",
		`{"StringEquals":{"a":null}}`:                                   "invalid value",
		`{"StringEquals":{"a":[]}}`:                                     "invalid value",
		`{"StringEquals":{"a":{"b":"c"}}}`:                              "invalid value",
		`{"StringEquals":{"a":[["b"]]}}`:                                "invalid value",
		`{"NumericEquals":{"a":"ten"}}`:                                 "not a valid NumericEquals value",
		`{"DateLessThan":{"aws:CurrentTime":"yesterday"}}`:              "not a valid DateLessThan value",
		`{"Bool":{"aws:SecureTransport":"yes"}}`:                        "not a valid Bool value",
		`{"Null":{"a":"maybe"}}`:                                        "not a valid Null value",
		`{"IpAddress":{"aws:SourceIp":"203.0.113.0/33"}}`:               "not a valid IpAddress value",
		`{"NotIpAddress":{"aws:SourceIp":"localhost"}}`:                 "not a valid NotIpAddress value",
		`{"ForAllValues:StringEquals":{"kms:EncryptionContext:a":"x"}}`: "OverlyPermissiveCondition:EncryptionContext",
		`{"ForAllValues:StringLike":{"aws:RequestTag/Owner":"x"}}`:      "OverlyPermissiveCondition:RequestTag",
		`"x"`: "Condition that is not an object",
	}
	for c, msg := range bad {
		err := checkPolicyDocument(policy(c))
		var e *Error
		if !errors.As(err, &e) || e.Kind != ErrMalformedPolicy || !strings.Contains(e.Message, msg) {
			t.Errorf("%s: got %v, want MalformedPolicyDocument %q", c, err, msg)
		}
		// Identity policies are not put through the grammar: there, an
		// operator or a value the evaluator cannot read never allows.
		if strings.Contains(msg, "valid") || strings.Contains(msg, "unsupported") {
			if p := parsePolicy(policy(c)); !p.invalid && evalPolicy(p, aliceContext(nil), false).allowDirect {
				t.Errorf("%s: a refused condition allows", c)
			}
		}
	}
}

// TestAuthzIdentityPolicyGrammar: identity policies have no principal.
func TestAuthzIdentityPolicyGrammar(t *testing.T) {
	if err := ValidateIdentityPolicy([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}`)); err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Encrypt","Resource":"*"}]}`,
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"ten"}}}]}`,
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}`,
		`[]`,
	} {
		err := ValidateIdentityPolicy([]byte(doc))
		var e *Error
		if !errors.As(err, &e) || e.Kind != ErrMalformedPolicy || !strings.Contains(e.Message, "identity policy") || strings.Contains(e.Message, "key policy") {
			t.Errorf("%s: got %v", doc, err)
		}
	}
}
