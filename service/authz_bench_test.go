package service

import (
	"context"
	"testing"
	"time"

	"github.com/kmsd/kmsd/fsm"
)

// Benchmarks of authorization alone (authorize: context, key policy,
// identity policy), on the request shapes of the data-key hot path. Each
// case is checked to be allowed first, so a benchmark cannot time a
// denial.
//
//	go test -run '^$' -bench 'Authorize' -benchmem ./service/

// benchAuthzService is a Service with just what authorization reads.
func benchAuthzService() *Service {
	return &Service{cfg: Config{AccountID: tAccount, Region: "us-east-1", Now: time.Now}, fsm: fsm.New()}
}

// benchAuthzKey is a symmetric key with a tag, under policy ("" is the
// default key policy).
func benchAuthzKey(s *Service, policy string) *fsm.Key {
	if policy == "" {
		policy = s.defaultKeyPolicy()
	}
	return &fsm.Key{KeyID: "1234abcd-12ab-34cd-56ef-1234567890ab", ARN: tKeyARN, AccountID: tAccount,
		KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS",
		Tags: map[string]string{"Project": "Alpha"}, Policy: policy}
}

// benchAuthzCtx is a GenerateDataKey request of caller, with identity
// policy idPolicy.
func benchAuthzCtx(caller, idPolicy string) context.Context {
	ctx := WithRequestInfo(context.Background(), RequestInfo{RequestID: "bench", SourceIP: "203.0.113.7",
		UserAgent: "aws-sdk-go-v2/1.0", Caller: Caller{AccessKeyID: "AKIDEXAMPLE", ARN: caller, AccountID: tAccount, Policy: idPolicy}})
	return WithRequestInput(ctx, &GenerateDataKeyInput{})
}

func benchAuthorize(b *testing.B, s *Service, ctx context.Context, r authzRequest) {
	b.Helper()
	if err := s.authorize(ctx, r); err != nil {
		b.Fatalf("benchmark request denied: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.authorize(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

const benchIdentityPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt","kms:GenerateDataKey*"],"Resource":"arn:aws:kms:*:111122223333:key/*"}]}`

// BenchmarkAuthorizeDefaultPolicy: GenerateDataKey under the default key
// policy, by the account root (as the batch benchmark calls) and by an IAM
// user whose identity policy allows it.
func BenchmarkAuthorizeDefaultPolicy(b *testing.B) {
	s := benchAuthzService()
	k := benchAuthzKey(s, "")
	ec := map[string]string{"AppName": "ExampleApp", "Stage": "Test"}
	b.Run("root", func(b *testing.B) {
		benchAuthorize(b, s, benchAuthzCtx(tRoot, ""), authzRequest{action: "GenerateDataKey", key: k, ref: k.KeyID, ec: ec, hasEC: true})
	})
	b.Run("user", func(b *testing.B) {
		benchAuthorize(b, s, benchAuthzCtx(tAlice, benchIdentityPolicy), authzRequest{action: "GenerateDataKey", key: k, ref: k.KeyID, ec: ec, hasEC: true})
	})
}

// BenchmarkAuthorizeWithConditions: a key policy whose statements have
// conditions on the encryption context, the time, the source address and
// a resource tag, with a Deny that does not apply.
func BenchmarkAuthorizeWithConditions(b *testing.B) {
	s := benchAuthzService()
	k := benchAuthzKey(s, `{"Version":"2012-10-17","Statement":[
	 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*",
	  "Condition":{"StringEquals":{"kms:CallerAccount":"111122223333"}}},
	 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":["kms:Encrypt","kms:GenerateDataKey*"],"Resource":"*",
	  "Condition":{"StringEquals":{"kms:EncryptionContext:AppName":"ExampleApp","aws:ResourceTag/Project":"Alpha"},
	   "DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"},"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}},
	 {"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*",
	  "Condition":{"Bool":{"aws:SecureTransport":"true"},"StringNotEquals":{"kms:EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}}]}`)
	ec := map[string]string{"AppName": "ExampleApp", "Stage": "Test"}
	benchAuthorize(b, s, benchAuthzCtx(tAlice, ""), authzRequest{action: "GenerateDataKey", key: k, ref: k.KeyID, ec: ec, hasEC: true})
}
