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
	// Repeated and alternating values (optStr shares recent equal strings).
	`{"Items":[{"KeyId":"a","KeySpec":"AES_256"},{"KeyId":"b","KeySpec":"AES_256"},{"KeyId":"a","KeySpec":"AES_128"},{"KeyId":"c"},{"KeyId":"d"},{"KeyId":"e"},{"KeyId":"f"},{"KeyId":"a"},{"KeyId":"AES_256"},{"KeyId":"b","KeySpec":"b"},{"KeyId":null},{"KeyId":""},{"KeyId":""}]}`,
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

// checkAuditItemJSON requires the audit request/response encoders to match
// json.Marshal byte for byte.
func checkAuditItemJSON(t testing.TB, req auditRequestItem, resp auditResponseItem) {
	t.Helper()
	want, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.appendJSON([]byte("p")); string(got) != "p"+string(want) {
		t.Fatalf("request %+v:\n got %s\nwant %s", req, got[1:], want)
	}
	want, err = json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.appendJSON([]byte("p")); string(got) != "p"+string(want) {
		t.Fatalf("response %+v:\n got %s\nwant %s", resp, got[1:], want)
	}
}

func TestAuditItemJSONMatchesJSON(t *testing.T) {
	strs := []string{"", "1234abcd-12ab-34cd-56ef-1234567890ab", "alias/x", "a\"b\\c", "<&>", "é\u2028", "\x00\x1f\x7f", "\xff"}
	nums := []int32{0, 1, -1, 1024, 2147483647, -2147483648}
	bools := []bool{false, true}
	ctxs := []map[string]string{nil, {}, {"a": "b"}, {"z": "1", "a": "2", "m": "3", "\xff": "x", "<": ">"},
		{"k1": "", "k2": "v", "k3": "v", "k4": "v", "k5": "v", "k6": "v", "k7": "v", "k8": "v", "k9": "v", "k10": "v"}}
	n := 0
	for i, s := range strs {
		for j, c := range ctxs {
			req := auditRequestItem{EncryptionContext: c}
			if i%2 == 0 {
				req.KeyId, req.EncryptionAlgorithm = &s, &strs[(i+j)%len(strs)]
			}
			if j%2 == 0 {
				req.NumberOfBytes, req.KeySpec = &nums[(i+j)%len(nums)], &s
			}
			if (i+j)%3 != 0 {
				req.DryRun = &bools[(i+j)%2]
			}
			checkAuditItemJSON(t, req, auditResponseItem{KeyId: s, EncryptionAlgorithm: strs[(i+j)%len(strs)], KeyMaterialId: strs[j%len(strs)]})
			n++
		}
	}
	checkAuditItemJSON(t, auditRequestItem{}, auditResponseItem{})
	// The size hints cover the usual items (one allocation each).
	kid, spec := "1234abcd-12ab-34cd-56ef-1234567890ab", "AES_256"
	req := auditRequestItem{KeyId: &kid, KeySpec: &spec, EncryptionContext: map[string]string{"tenant": "42", "purpose": "batch"}}
	if b := req.appendJSON(make([]byte, 0, req.sizeHint())); len(b) > req.sizeHint() {
		t.Errorf("request size hint %d < %d", req.sizeHint(), len(b))
	}
	resp := auditResponseItem{KeyId: "arn:aws:kms:us-east-1:111122223333:key/" + kid, KeyMaterialId: strings.Repeat("ab", 32)}
	if b := resp.appendJSON(make([]byte, 0, resp.sizeHint())); len(b) > resp.sizeHint() {
		t.Errorf("response size hint %d < %d", resp.sizeHint(), len(b))
	}
	out := &service.GenerateDataKeyOutput{CiphertextBlob: make([]byte, 124), Plaintext: make([]byte, 32), KeyId: resp.KeyId, KeyMaterialId: resp.KeyMaterialId}
	if b, _ := appendBatchOutput(nil, out); len(b) > batchOutputSize(out) {
		t.Errorf("output size %d > hint %d", len(b), batchOutputSize(out))
	}
	t.Logf("%d items compared", n)
}

func FuzzAuditItemJSON(f *testing.F) {
	f.Add("k", "SYMMETRIC_DEFAULT", "a", "b", int32(32), true, "arn", "id")
	f.Add("\xff<", "", "\x00", "é", int32(-1), false, "", "\u2028")
	f.Fuzz(func(t *testing.T, kid, alg, ck, cv string, nb int32, dry bool, arn, mid string) {
		req := auditRequestItem{KeyId: &kid, EncryptionContext: map[string]string{ck: cv, cv: ck}, EncryptionAlgorithm: &alg,
			NumberOfBytes: &nb, KeySpec: &alg, DryRun: &dry}
		checkAuditItemJSON(t, req, auditResponseItem{KeyId: arn, EncryptionAlgorithm: alg, KeyMaterialId: mid})
		checkAuditItemJSON(t, auditRequestItem{EncryptionContext: map[string]string{kid: mid}}, auditResponseItem{KeyMaterialId: kid})
	})
}
