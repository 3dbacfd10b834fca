package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/service"
)

// batchBodies are request bodies of every kind: what clients send, and
// what the fast decoder must leave to encoding/json.
var batchBodies = []string{
	`{"Items":[{"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab","Plaintext":"aGVsbG8=","EncryptionContext":{"a":"b","c":""},"EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}],"GrantTokens":["t1","t2"],"DryRun":false}`,
	`{"Items":[{"CiphertextBlob":"S0QBAA==","EncryptionContext":{},"KeyId":"alias/x","EncryptionAlgorithm":null}]}`,
	`{"Items":[{"KeyId":"k","KeySpec":"AES_256"},{"KeyId":"k","NumberOfBytes":64},{"KeyId":"k","NumberOfBytes":0,"EncryptionContext":null}]}`,
	" \n{ \"Items\" : [ { \"KeyId\" : \"k\" , \"NumberOfBytes\" : 2147483647 } ] , \"DryRun\" : true } \t\r\n",
	`{}`, `{"Items":null}`, `{"Items":[]}`, `{"Items":[{}]}`, `{"Items":[null]}`, `{"GrantTokens":[]}`, `{"DryRun":null}`,
	`{"Items":[{"KeyId":null,"Plaintext":null,"CiphertextBlob":null,"KeySpec":null,"NumberOfBytes":null}]}`,
	`{"Items":[{"Plaintext":""}]}`, `{"Items":[{"CiphertextBlob":""}]}`,
	// Escapes, Unicode, invalid UTF-8, control characters.
	`{"Items":[{"KeyId":"a\"b"}]}`, `{"Items":[{"KeyId":"a\\b"}]}`, `{"Items":[{"KeyId":"\u0041"}]}`,
	`{"Items":[{"KeyId":"é日本"}]}`, "{\"Items\":[{\"KeyId\":\"\xff\xfe\"}]}", "{\"Items\":[{\"KeyId\":\"a\tb\"}]}",
	"{\"Items\":[{\"KeyId\":\"a\x7fb\"}]}", `{"Items":[{"EncryptionContext":{"k\"":"v"}}]}`,
	`{"Items":[{"EncryptionContext":{"é":"ü","<>&":"'"}}]}`,
	// Base64 edge cases.
	`{"Items":[{"Plaintext":"aGVsbG8"}]}`, `{"Items":[{"Plaintext":"aGVs bG8="}]}`, `{"Items":[{"Plaintext":"a\nGVsbG8="}]}`,
	"{\"Items\":[{\"Plaintext\":\"aGVs\nbG8=\"}]}", `{"Items":[{"Plaintext":"aGVsbG8=="}]}`, `{"Items":[{"Plaintext":"!!"}]}`,
	`{"Items":[{"Plaintext":"aGVsbG8=\u003d"}]}`, `{"Items":[{"CiphertextBlob":"////"}]}`, `{"Items":[{"Plaintext":"-_-_"}]}`,
	// Members: duplicates, other cases, unknown ones, wrong types.
	`{"Items":[{"KeyId":"a","KeyId":"b"}]}`, `{"Items":[],"Items":[{"KeyId":"a"}]}`,
	`{"Items":[{"EncryptionContext":{"a":"1","a":"2"}}]}`, `{"items":[{"keyid":"a"}]}`, `{"Items":[{"KEYID":"a"}]}`,
	`{"Items":[{"KeyId":"a","Other":1}]}`, `{"Other":{"x":[1,2]},"Items":[]}`, `{"Items":[{"KeyId":1}]}`,
	`{"Items":{"KeyId":"a"}}`, `{"Items":"x"}`, `{"GrantTokens":"x"}`, `{"GrantTokens":[1]}`, `{"DryRun":"true"}`,
	`{"Items":[{"EncryptionContext":{"a":1}}]}`, `{"Items":[{"EncryptionContext":[]}]}`,
	// Numbers.
	`{"Items":[{"NumberOfBytes":01}]}`, `{"Items":[{"NumberOfBytes":-1}]}`, `{"Items":[{"NumberOfBytes":-0}]}`,
	`{"Items":[{"NumberOfBytes":1e3}]}`, `{"Items":[{"NumberOfBytes":1.0}]}`, `{"Items":[{"NumberOfBytes":2147483648}]}`,
	`{"Items":[{"NumberOfBytes":99999999999999999999}]}`, `{"Items":[{"NumberOfBytes":"1"}]}`, `{"Items":[{"NumberOfBytes":7 }]}`,
	`{"Items":[{"NumberOfBytes":7x}]}`,
	// Not JSON, or more than one value.
	``, ` `, `null`, `[]`, `{`, `{"Items":[`, `{"Items":[{"KeyId":"a"}]`, `{"Items":[{"KeyId":"a"},]}`, `{"Items":[,]}`,
	`{"Items":[]} {}`, `{"Items":[]}x`, `{"Items":[{"KeyId":"a"}]}}`, `{,}`, `{"Items" []}`, `{"Items":[{"KeyId":"a" "Plaintext":""}]}`,
	`{"Items":[{"KeyId":"a}]}`, `{"DryRun":tru}`, `{"DryRun":nul}`, `{"Items":nullx}`,
}

// checkFastDecode requires decodeBatchFast to decode body exactly as
// encoding/json does whenever it accepts it; it reports whether it did.
func checkFastDecode(t testing.TB, body []byte) bool {
	t.Helper()
	accepted := false
	for _, newIn := range []func() any{
		func() any { return new(service.BatchEncryptInput) },
		func() any { return new(service.BatchDecryptInput) },
		func() any { return new(service.BatchGenerateDataKeyInput) },
	} {
		fast, ref := newIn(), newIn()
		if !decodeBatchFast(body, fast) {
			continue
		}
		accepted = true
		if err := json.Unmarshal(body, ref); err != nil {
			t.Fatalf("fast decoder accepted %q (as %T), encoding/json: %v", body, fast, err)
		}
		if !reflect.DeepEqual(fast, ref) {
			t.Fatalf("%q as %T:\nfast %+v\njson %+v", body, fast, fast, ref)
		}
	}
	return accepted
}

func TestBatchFastDecodeMatchesJSON(t *testing.T) {
	accepted := 0
	for _, b := range batchBodies {
		if checkFastDecode(t, []byte(b)) {
			accepted++
		}
	}
	// The plain forms are taken by the fast path (else it would be dead
	// code and the decoding as slow as before).
	for _, b := range batchBodies[:14] {
		mixed := strings.Contains(b, `"CiphertextBlob":null,"KeySpec"`) // members of several operations
		if !checkFastDecode(t, []byte(b)) && b != `{"Items":[null]}` && !mixed {
			t.Errorf("fast decoder declined the plain body %q", b)
		}
	}
	if accepted < 15 {
		t.Errorf("only %d bodies taken by the fast path", accepted)
	}
	// A large body of 4 KiB plaintexts.
	var sb strings.Builder
	sb.WriteString(`{"Items":[`)
	for i := range 1000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"KeyId":"k","Plaintext":"` + strings.Repeat("QUJD", 1365) + `QUI=","EncryptionContext":{"i":"` + strings.Repeat("x", i%7) + `"}}`)
	}
	sb.WriteString(`]}`)
	large := sb.String()
	if !checkFastDecode(t, []byte(large)) {
		t.Error("fast decoder declined the large body")
	}
	// One bad item among many: decoded in parallel, declined as a whole.
	bad := strings.Replace(large, `QUI=","EncryptionContext":{"i":"xxx"}`, `QU!=","EncryptionContext":{"i":"xxx"}`, 1)
	if bad == large {
		t.Fatal("no item replaced")
	}
	if decodeBatchFast([]byte(bad), new(service.BatchEncryptInput)) {
		t.Error("fast decoder accepted invalid base64")
	}
	if err := json.Unmarshal([]byte(bad), new(service.BatchEncryptInput)); err == nil {
		t.Error("encoding/json accepted invalid base64")
	}
}

func FuzzBatchFastDecode(f *testing.F) {
	for _, b := range batchBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFastDecode(t, body)
	})
}

func TestAppendBatchOutputMatchesJSON(t *testing.T) {
	strs := []string{"", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		"SYMMETRIC_DEFAULT", "a\"b\\c", "<&>", "é\u2028", "\x00\x1f\x7f", "\xff"}
	blobs := [][]byte{nil, {}, {0}, []byte("0123456789abcdef0123456789abcdef"), make([]byte, 4096+80)}
	n := 0
	for _, s := range strs {
		for _, b := range blobs {
			for _, out := range []any{
				&service.EncryptOutput{CiphertextBlob: b, KeyId: s, EncryptionAlgorithm: s},
				&service.DecryptOutput{KeyId: s, Plaintext: b, EncryptionAlgorithm: s, KeyMaterialId: s},
				&service.GenerateDataKeyOutput{CiphertextBlob: b, Plaintext: b, KeyId: s, KeyMaterialId: s},
				&service.GenerateDataKeyOutput{CiphertextBlob: b, KeyId: s},
			} {
				want, err := json.Marshal(out)
				if err != nil {
					t.Fatal(err)
				}
				got, ok := appendBatchOutput([]byte("prefix"), out)
				if !ok || string(got) != "prefix"+string(want) {
					t.Fatalf("%+v:\n got %s\nwant %s", out, got, want)
				}
				n++
			}
		}
	}
	if _, ok := appendBatchOutput(nil, &service.Empty{}); ok {
		t.Error("unknown output type accepted")
	}
	t.Logf("%d outputs compared", n)
}
