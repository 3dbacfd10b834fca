package kmsdclient

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// checkDecode decodes raw into each result type with decodeBatch and with
// encoding/json, and fails where they differ (in results, or in whether
// they fail). It reports whether the fast path took raw as a T.
func checkDecode[T batchResult](t testing.TB, raw []byte) bool {
	t.Helper()
	var want struct{ Results []T }
	wantErr := json.Unmarshal(raw, &want)
	var got []T
	fast, gotErr := decodeBatchPath(raw, &got)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%T of %q: error %v, encoding/json %v", got, raw, gotErr, wantErr)
	}
	if wantErr == nil && !reflect.DeepEqual(want.Results, got) {
		t.Fatalf("%T of %q:\n got %#v\nwant %#v", got, raw, got, want.Results)
	}
	return fast
}

func checkAll(t testing.TB, raw []byte) (fast [3]bool) {
	t.Helper()
	return [3]bool{checkDecode[DataKeyResult](t, raw), checkDecode[EncryptResult](t, raw), checkDecode[DecryptResult](t, raw)}
}

// Answers as kmsd writes them take the fast path and decode as
// encoding/json decodes them.
func TestDecodeBatchServerShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	blob := func() []byte {
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	for n := range 50 {
		dk := BatchGenerateDataKeyOutput{Results: []DataKeyResult{}}
		enc := BatchEncryptOutput{Results: []EncryptResult{}}
		dec := BatchDecryptOutput{Results: []DecryptResult{}}
		for i := range n {
			if i%7 == 3 {
				e := &ItemError{Code: "NotFoundException", Message: fmt.Sprintf("Key 'arn:aws:kms:us-east-1:111122223333:key/%d' does not exist", i)}
				dk.Results = append(dk.Results, DataKeyResult{Error: e})
				enc.Results = append(enc.Results, EncryptResult{Error: e})
				dec.Results = append(dec.Results, DecryptResult{Error: e})
				continue
			}
			arn := fmt.Sprintf("arn:aws:kms:us-east-1:111122223333:key/%08x-12ab-34cd-56ef-1234567890ab", i)
			dk.Results = append(dk.Results, DataKeyResult{CiphertextBlob: blob(), Plaintext: blob(), KeyId: arn, KeyMaterialId: strings.Repeat("ab", 32)})
			enc.Results = append(enc.Results, EncryptResult{CiphertextBlob: blob(), KeyId: arn, EncryptionAlgorithm: "SYMMETRIC_DEFAULT"})
			dec.Results = append(dec.Results, DecryptResult{Plaintext: blob(), KeyId: arn, EncryptionAlgorithm: "SYMMETRIC_DEFAULT", KeyMaterialId: "x"})
		}
		for i, out := range []any{dk, enc, dec} {
			raw, err := json.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			if fast := checkAll(t, raw); !fast[i] {
				t.Fatalf("the fast path refused a %T kmsd would send: %.200s", out, raw)
			}
		}
	}
}

// Odd answers decode as encoding/json decodes them, or fail as it fails.
func TestDecodeBatchOddAnswers(t *testing.T) {
	for _, raw := range oddAnswers {
		checkAll(t, []byte(raw))
	}
}

var oddAnswers = []string{
	``, `null`, `{}`, `[]`, `{"Results":null}`, `{"Results":[]}`, ` { "Results" : [ ] } `, `{"Results":[]} x`,
	`{"Results":[{}]}`, `{"Results":[null]}`, `{"Results":[1]}`, `{"Results":[{},]}`, `{"Results":[{}]`,
	`{"results":[{"keyid":"k"}]}`, `{"Results":[{"KeyId":"k"}],"Results":[{"KeyId":"j"}]}`,
	`{"Results":[{"KeyId":"k"}],"Other":1}`, `{"Other":1,"Results":[{"KeyId":"k"}]}`,
	`{"Results":[{"KeyId":"a\"b"}]}`, `{"Results":[{"KeyId":"a\u00e9"}]}`, "{\"Results\":[{\"KeyId\":\"\xff\"}]}",
	"{\"Results\":[{\"KeyId\":\"caf\xc3\xa9\"}]}", "{\"Results\":[{\"KeyId\":\"a\tb\"}]}",
	`{"Results":[{"KeyId":5}]}`, `{"Results":[{"KeyId":null}]}`, `{"Results":[{"Unknown":"x"}]}`,
	`{"Results":[{"CiphertextBlob":"AAAA"}]}`, `{"Results":[{"CiphertextBlob":""}]}`, `{"Results":[{"CiphertextBlob":"A"}]}`,
	`{"Results":[{"CiphertextBlob":"AA=="}]}`, `{"Results":[{"CiphertextBlob":"AA"}]}`, `{"Results":[{"CiphertextBlob":"!!!!"}]}`,
	`{"Results":[{"Plaintext":"AAAA","Plaintext":"AQID"}]}`, `{"Results":[{"CiphertextBlob":null}]}`,
	`{"Results":[{"Error":{"__type":"A","message":"m"}}]}`, `{"Results":[{"Error":{}}]}`, `{"Results":[{"Error":null}]}`,
	`{"Results":[{"Error":{"__type":"A"},"Error":{"message":"m"}}]}`, `{"Results":[{"Error":{"__type":"A","x":"y"}}]}`,
	`{"Results":[{"Error":{"__type":1}}]}`, `{"Results":[{"Error":"x"}]}`, `{"Results":[{"Error":{"__type":"A"},"KeyId":"k"}]}`,
	`{"Results":[{"KeyMaterialId":"m","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}]}`,
	"{\"Results\":[\n\t{ \"KeyId\" : \"k\" ,\r\n\"Plaintext\":\"AQID\" } , {}\n]\n}\n",
}

// FuzzDecodeBatch holds decodeBatch to encoding/json on any answer.
func FuzzDecodeBatch(f *testing.F) {
	for _, raw := range oddAnswers {
		f.Add([]byte(raw))
	}
	f.Add([]byte(`{"Results":[{"CiphertextBlob":"AQID","Plaintext":"BAUG","KeyId":"arn:aws:kms:us-east-1:1:key/k","KeyMaterialId":"ab"},{"Error":{"__type":"NotFoundException","message":"no"}}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkAll(t, raw)
	})
}

// BenchmarkDecodeBatch compares decodeBatch with encoding/json on a
// 1,000-item BatchGenerateDataKey answer.
func BenchmarkDecodeBatch(b *testing.B) {
	out := BatchGenerateDataKeyOutput{}
	for i := range 1000 {
		out.Results = append(out.Results, DataKeyResult{CiphertextBlob: make([]byte, 120), Plaintext: make([]byte, 32),
			KeyId: fmt.Sprintf("arn:aws:kms:us-east-1:111122223333:key/%08x-12ab-34cd-56ef-1234567890ab", i), KeyMaterialId: strings.Repeat("ab", 32)})
	}
	raw, err := json.Marshal(out)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decodeBatch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var rs []DataKeyResult
			if err := decodeBatch(raw, &rs); err != nil || len(rs) != 1000 {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var o BatchGenerateDataKeyOutput
			if err := json.Unmarshal(raw, &o); err != nil || len(o.Results) != 1000 {
				b.Fatal(err)
			}
		}
	})
}

// readBody reads at most limit bytes, whatever Content-Length says.
func TestReadBodyLimit(t *testing.T) {
	for _, c := range []struct {
		body   string
		length int64
		limit  int64
		want   string
	}{
		{"0123456789", 10, 100, "0123456789"},
		{"0123456789", -1, 100, "0123456789"},
		{"0123456789", 10, 5, "01234"},
		{"0123456789", 3, 100, "0123456789"}, // a short Content-Length only sizes the buffer
		{"0123456789", 1 << 40, 6, "012345"}, // nor does a huge one allocate
		{"", 0, 5, ""},
	} {
		resp := &http.Response{Body: io.NopCloser(strings.NewReader(c.body)), ContentLength: c.length}
		got, err := readBody(resp, c.limit)
		if err != nil || string(got) != c.want {
			t.Errorf("%+v: %q, %v", c, got, err)
		}
	}
}
