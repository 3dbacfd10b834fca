package service

import (
	"bytes"
	"reflect"
	"testing"
)

// cloudFormationKeyPolicy is the key policy of
// /work/shared/seeds/kms-key-cloudformation.yaml, as JSON.
const cloudFormationKeyPolicy = `{"Version": "2012-10-17", "Id": "key-example-1", "Statement": [
 {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
 {"Sid": "Allow administration of the key", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/key-admin"},
  "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*", "kms:Disable*",
   "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"], "Resource": "*"},
 {"Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/key-user"},
  "Action": ["kms:DescribeKey", "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext"], "Resource": "*"}]}`

// policySeeds are real policies (the default key policy, the
// CloudFormation example, AWS documentation examples of each condition
// family) and near misses.
func policySeeds() []string {
	def := (&Service{cfg: Config{AccountID: "111122223333"}}).defaultKeyPolicy()
	stmt := func(s string) string { return `{"Version":"2012-10-17","Statement":[` + s + `]}` }
	const head = `"Effect":"Allow","Principal":{"AWS":"*"},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant","kms:DescribeKey"],"Resource":"*"`
	return []string{
		def,
		cloudFormationKeyPolicy,
		stmt(`{` + head + `,"Condition":{"StringEquals":{"kms:CallerAccount":"111122223333","kms:ViaService":"ec2.us-west-2.amazonaws.com"}}}`),
		stmt(`{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:role/ExampleRole"},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*"],"Resource":"*","Condition":{"StringNotEquals":{"kms:EncryptionAlgorithm":"RSAES_OAEP_SHA_256"}}}`),
		stmt(`{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::712816755609:user/alice"},"Action":"kms:GenerateDataKey","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:AppName":"ExampleApp"},"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["AppName"]}}}`),
		stmt(`{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/TestTeam"},"Action":["kms:Decrypt","kms:Encrypt"],"Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:user":"${aws:username}"}}}`),
		stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"Null":{"kms:EncryptionContextKeys":false},"Bool":{"kms:BypassPolicyLockoutSafetyCheck":true}}}`),
		stmt(`{"Effect":"Allow","Principal":{"AWS":["111122223333"]},"Action":"kms:ImportKeyMaterial","Resource":"*","Condition":{"NumericLessThanEquals":{"kms:ValidTo":"1546257599.0"},"StringEqualsIfExists":{"kms:ExpirationModel":"KEY_MATERIAL_EXPIRES"}}}`),
		stmt(`{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:root"},"NotAction":"kms:Describe*","NotResource":"arn:aws:kms:*:111122223333:alias/*","Condition":{"NotIpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:DB8:1234:5678::/64"]},"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:01Z"},"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/Admin*"}}}`),
		stmt(`{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/ExampleUser"},"Action":"kms:CreateGrant","Resource":"*","Condition":{"ForAllValues:StringEquals":{"kms:GrantOperations":["Encrypt","ReEncryptTo"]},"ForAnyValue:StringLike":{"kms:ResourceAliases":"alias/*Test*"},"StringLike":{"aws:ResourceTag/Project":"Alpha-${*}-${?}-${$}"}}}`),
		`{"Version":"2008-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Sign","Resource":"*","Condition":{"StringLike":{"kms:SigningAlgorithm":"RSASSA_PSS*"},"DateLessThanEquals":{"aws:EpochTime":1700000000}}}}`,
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:List*","Resource":"*"}]}`,
		`{"Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"kms:Encrypt","Resource":"*","Condition":{"StringEquals":{"a":10,"b":true}}}]}`,
		`{"Version":"2012-10-17","Statement":[]}`,
		`{"Version":"2012-10-17"}`,
		``,
		`null`,
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"k":null}}}]}`,
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":5,"Resource":"*"}]}`,
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":"x"}}]}`,
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"stringequals":{"K":"1"},"StringEquals":{"k":"2"}}}]}`,
		`[{"Version":"2012-10-17"}]`,
	}
}

// fuzzContexts are requests the fuzzed policies are evaluated against, so
// that evaluation of any accepted document is exercised too.
func fuzzContexts() []*authzContext {
	return []*authzContext{
		{callerARN: "arn:aws:iam::111122223333:user/alice", callerAccount: "111122223333", action: "kms:Encrypt",
			resource: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			keys: map[string][]string{
				condPrincipalARN: {"arn:aws:iam::111122223333:user/alice"}, condCallerAccount: {"111122223333"},
				condUsername: {"alice"}, condSourceIP: {"203.0.113.7"}, condCurrentTime: {"2024-05-01T10:00:00Z"},
				condEpochTime: {"1714557600"}, condEncryptionContextKeys: {"AppName", "user"}, "kms:encryptioncontext:appname": {"ExampleApp"},
				"kms:encryptioncontext:user": {"alice"}, condSecureTransport: {"false"}, condValidTo: {"1546257599"},
			},
			lazy: func(key string) ([]string, bool) {
				if key == condResourceAliases {
					return []string{"alias/Test-1", "alias/prod"}, true
				}
				return nil, false
			}},
		{callerARN: "arn:aws:iam::111122223333:root", callerAccount: "111122223333", isRoot: true, action: "kms:ListKeys", resource: "*",
			keys: map[string][]string{condPrincipalARN: {"arn:aws:iam::111122223333:root"}, condSourceIP: {"2001:db8:1234:5678::1"}}},
	}
}

// FuzzParsePolicy: parsing and checking a document never panic; a document
// the key policy grammar accepts is one the evaluator reads whole; and the
// canonical form of a readable document parses to the same policy, is
// written the same again, and is still accepted by the grammar when the
// original was.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range policySeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		p := parsePolicy(doc)
		grammarErr := checkPolicyDocument(doc)
		_ = ValidateIdentityPolicy([]byte(doc))
		if grammarErr == nil && (p.invalid || p.noStatement) {
			t.Fatalf("the grammar accepts %q but the evaluator reads invalid=%v noStatement=%v", doc, p.invalid, p.noStatement)
		}
		for _, ac := range fuzzContexts() {
			evalPolicy(p, ac, true)
			evalPolicy(p, ac, false)
		}
		if p.invalid {
			return
		}
		canon := p.canonicalJSON()
		q := parsePolicy(string(canon))
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("canonical form %s of %q parses differently:\n%#v\n%#v", canon, doc, p, q)
		}
		if again := q.canonicalJSON(); !bytes.Equal(again, canon) {
			t.Fatalf("canonical form is not stable:\n%s\n%s", canon, again)
		}
		if grammarErr == nil {
			if err := checkPolicyDocument(string(canon)); err != nil {
				t.Fatalf("the grammar accepts %q but not its canonical form %s: %v", doc, canon, err)
			}
		}
	})
}

// TestPolicySeedsParse pins what the seeds are: the real policies are
// accepted by the grammar and read whole.
func TestPolicySeedsParse(t *testing.T) {
	seeds := policySeeds()
	for i, s := range seeds[:10] {
		if err := checkPolicyDocument(s); err != nil {
			t.Errorf("seed %d refused: %v", i, err)
		}
		if p := parsePolicy(s); p.invalid || len(p.statements) == 0 {
			t.Errorf("seed %d not read: %#v", i, p)
		}
	}
	for _, i := range []int{17, 18, 19, 21} {
		if p := parsePolicy(seeds[i]); !p.invalid {
			t.Errorf("seed %d (%s) read as valid", i, seeds[i])
		}
		if checkPolicyDocument(seeds[i]) == nil {
			t.Errorf("seed %d accepted by the grammar", i)
		}
	}
}
