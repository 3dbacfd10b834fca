package audit

import (
	"testing"
	"time"

	"github.com/kmsd/kmsd/api"
)

// BenchmarkBuildEventCreateKey builds the record of a CreateKey: a request
// with a description and tags, a response with KeyMetadata (members the
// filter recurses into).
func BenchmarkBuildEventCreateKey(b *testing.B) {
	const arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	ev := api.AuditEvent{Operation: "CreateKey", Time: time.Unix(1765000000, 0),
		Request: []byte(`{"Description":"load test key","KeyUsage":"ENCRYPT_DECRYPT","Tags":[{"TagKey":"team","TagValue":"payments"}]}`),
		Response: []byte(`{"KeyMetadata":{"AWSAccountId":"111122223333","Arn":"` + arn + `","CreationDate":1.765e+09,` +
			`"CurrentKeyMaterialId":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","CustomerMasterKeySpec":"SYMMETRIC_DEFAULT",` +
			`"Description":"load test key","Enabled":true,"EncryptionAlgorithms":["SYMMETRIC_DEFAULT"],"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab",` +
			`"KeyManager":"CUSTOMER","KeySpec":"SYMMETRIC_DEFAULT","KeyState":"Enabled","KeyUsage":"ENCRYPT_DECRYPT","MultiRegion":false,"Origin":"AWS_KMS"}}`)}
	ev.Info.RequestID = "5a1b2c3d-0000-4000-8000-000000000000"
	ev.Info.Caller.ARN = "arn:aws:iam::111122223333:user/bench"
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		e := BuildEvent(ev, "us-east-1", "111122223333", "n1")
		buf = appendEvent(buf[:0], &e)
	}
}
