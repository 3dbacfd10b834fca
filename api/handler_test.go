package api

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kmsd/kmsd/service"
)

func jsonUnmarshalStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func checkCommonHeaders(t *testing.T, r result) {
	t.Helper()
	if id := headerValue(r.header, HeaderRequestID); !uuidV4.MatchString(id) {
		t.Errorf("x-amzn-RequestId %q is not a UUID v4", id)
	}
	if got := r.header.Get(HeaderServedBy); got != testNode {
		t.Errorf("X-Kmsd-Served-By = %q", got)
	}
	if got := r.header.Get("Content-Type"); r.status != http.StatusOK || headerValue(r.header, HeaderErrorType) != "" {
		if got != ContentTypeJSON {
			t.Errorf("error Content-Type = %q", got)
		}
	}
}

func TestRoutingAndAuth(t *testing.T) {
	e := newEnv(t, nil)
	e.h.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	without := func(target string, drop ...string) map[string]string {
		h := signedHeaders(target)
		for _, d := range drop {
			delete(h, d)
		}
		return h
	}
	with := func(target, k, v string) map[string]string {
		h := signedHeaders(target)
		h[k] = v
		return h
	}
	const gr = "TrentService.GenerateRandom"
	tests := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		status  int
		errType string
		msgRe   string
	}{
		{"unknown op", "POST", "/", signedHeaders("TrentService.Frobnicate"), 400, "UnknownOperationException", `Frobnicate`},
		{"wrong service prefix", "POST", "/", signedHeaders("KMS.GenerateRandom"), 400, "UnknownOperationException", ``},
		{"missing target", "POST", "/", without(gr, HeaderTarget), 400, "UnknownOperationException", `Missing X-Amz-Target`},
		{"GET /", "GET", "/", signedHeaders(gr), 404, "UnknownOperationException", `GET /`},
		{"POST /other", "POST", "/other", signedHeaders(gr), 404, "UnknownOperationException", `/other`},
		{"PUT /", "PUT", "/", signedHeaders(gr), 404, "UnknownOperationException", ``},
		{"POST /healthz (method not registered)", "POST", "/healthz", signedHeaders(gr), 404, "UnknownOperationException", ``},
		{"missing auth", "POST", "/", without(gr, "Authorization"), 400, "MissingAuthenticationTokenException", `^Missing Authentication Token$`},
		{"missing auth, unknown op", "POST", "/", without("TrentService.Nope", "Authorization"), 400, "MissingAuthenticationTokenException", ``},
		{"malformed auth", "POST", "/", with(gr, "Authorization", "AWS4-HMAC-SHA256 garbage"), 400, "IncompleteSignatureException", `Key=Value`},
		{"wrong algorithm", "POST", "/", with(gr, "Authorization", "Bearer abc"), 400, "IncompleteSignatureException", `algorithm`},
		{"service not kms", "POST", "/", with(gr, "Authorization", strings.Replace(validAuthz, "/kms/", "/s3/", 1)), 400, "IncompleteSignatureException", `'kms'`},
		{"missing signature", "POST", "/", with(gr, "Authorization", strings.Split(validAuthz, ", Signature=")[0]), 400, "IncompleteSignatureException", `Signature`},
		{"missing X-Amz-Date", "POST", "/", without(gr, "X-Amz-Date"), 400, "IncompleteSignatureException", `X-Amz-Date`},
		{"bad X-Amz-Date", "POST", "/", with(gr, "X-Amz-Date", "yesterday"), 400, "IncompleteSignatureException", `X-Amz-Date`},
		{"unsupported content type", "POST", "/", with(gr, "Content-Type", "text/plain"), 400, "SerializationException", `Content-Type`},
		{"application/json accepted", "POST", "/", with(gr, "Content-Type", "application/json; charset=utf-8"), 200, "", ``},
		{"no content type accepted", "POST", "/", without(gr, "Content-Type"), 200, "", ``},
		{"healthz", "GET", "/healthz", nil, 200, "", ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.Calls())
			r := e.call(t, tc.method, tc.path, tc.headers, "")
			checkCommonHeaders(t, r)
			if r.status != tc.status || r.errType != tc.errType {
				t.Fatalf("got %d %q (%s), want %d %q", r.status, r.errType, r.message, tc.status, tc.errType)
			}
			if !regexp.MustCompile(tc.msgRe).MatchString(r.message) {
				t.Errorf("message %q does not match %q", r.message, tc.msgRe)
			}
			reached := len(e.fake.Calls()) > before
			if wantReach := tc.status == 200 && tc.path == "/"; reached != wantReach {
				t.Errorf("service reached = %v, want %v", reached, wantReach)
			}
		})
	}
}

func TestSerialization(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name, op, body string
		ok             bool
		msgRe          string
	}{
		{"empty body", "GenerateRandom", "", true, ""},
		{"whitespace body", "ListKeys", " \n", true, ""},
		{"empty object", "ListKeys", "{}", true, ""},
		{"unknown fields ignored", "ListKeys", `{"Limit":5,"FutureField":{"x":[1,2]}}`, true, ""},
		{"null is absent", "ListKeys", `{"Limit":null,"Marker":null}`, true, ""},
		{"malformed", "ListKeys", `{"Limit":`, false, `Malformed JSON`},
		{"not json", "ListKeys", `hello`, false, `JSON object`},
		{"top-level array", "ListKeys", `[]`, false, `JSON object`},
		{"top-level null", "ListKeys", `null`, false, `JSON object`},
		{"top-level string", "ListKeys", `"x"`, false, `JSON object`},
		{"trailing data", "ListKeys", `{} {}`, false, `Malformed JSON`},
		{"trailing garbage", "ListKeys", `{"Limit":5}x`, false, `Malformed JSON`},
		{"string for number", "ListKeys", `{"Limit":"5"}`, false, `JSON string into Integer at 'Limit'`},
		{"float for int", "GenerateRandom", `{"NumberOfBytes":1.5}`, false, `Integer`},
		{"int overflow", "GenerateRandom", `{"NumberOfBytes":99999999999}`, false, `Integer`},
		{"number for string", "DescribeKey", `{"KeyId":5}`, false, `JSON number into String at 'KeyId'`},
		{"object for list", "TagResource", `{"KeyId":"k","Tags":{}}`, false, `List`},
		{"number in tag", "TagResource", `{"KeyId":"k","Tags":[{"TagKey":1,"TagValue":"v"}]}`, false, `String`},
		{"bool for string", "DescribeKey", `{"KeyId":true}`, false, `String`},
		{"bad base64", "Encrypt", `{"KeyId":"k","Plaintext":"!!!notbase64"}`, false, `base64`},
		{"url base64 rejected", "Encrypt", `{"KeyId":"k","Plaintext":"-_-_"}`, false, `base64`},
		{"number for blob", "Decrypt", `{"CiphertextBlob":12}`, false, `Blob`},
		{"control char in string", "DescribeKey", "{\"KeyId\":\"a\x01\"}", false, `Malformed JSON`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.Calls())
			r := e.op(t, tc.op, tc.body)
			checkCommonHeaders(t, r)
			reached := len(e.fake.Calls()) > before
			if tc.ok {
				if r.status != 200 || !reached {
					t.Fatalf("got %d %s %q, reached=%v", r.status, r.errType, r.message, reached)
				}
				return
			}
			if r.status != 400 || r.errType != "SerializationException" {
				t.Fatalf("got %d %s %q", r.status, r.errType, r.message)
			}
			if reached {
				t.Error("bad request reached the service")
			}
			if !regexp.MustCompile(tc.msgRe).MatchString(r.message) {
				t.Errorf("message %q does not match %q", r.message, tc.msgRe)
			}
		})
	}
}

func TestValidationMessages(t *testing.T) {
	e := newEnv(t, nil)
	long := strings.Repeat("é", 2049) // 2049 characters, 4098 bytes
	tests := []struct {
		name, op, body, want string
	}{
		{"null", "DescribeKey", `{}`,
			`1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null`},
		{"explicit null", "DescribeKey", `{"KeyId":null}`,
			`1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null`},
		{"min length", "DescribeKey", `{"KeyId":""}`,
			`1 validation error detected: Value '' at 'keyId' failed to satisfy constraint: Member must have length greater than or equal to 1`},
		{"max length counts characters", "DescribeKey", `{"KeyId":"` + long + `"}`,
			`1 validation error detected: Value '` + long + `' at 'keyId' failed to satisfy constraint: Member must have length less than or equal to 2048`},
		{"enum and value range", "GenerateDataKey", `{"KeyId":"k","KeySpec":"AES_512","NumberOfBytes":0}`,
			`2 validation errors detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: Member must have value greater than or equal to 1; ` +
				`Value 'AES_512' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]`},
		{"value max", "GenerateRandom", `{"NumberOfBytes":1025}`,
			`1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy constraint: Member must have value less than or equal to 1024`},
		{"sensitive omits value", "Encrypt", `{"KeyId":"k","Plaintext":""}`,
			`1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length greater than or equal to 1`},
		{"sensitive null", "Encrypt", `{"KeyId":"k"}`,
			`1 validation error detected: Value null at 'plaintext' failed to satisfy constraint: Member must not be null`},
		{"blob too long", "Encrypt", `{"KeyId":"k","Plaintext":"` + b64(4097) + `"}`,
			`1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096`},
		{"nested tags path", "TagResource", `{"KeyId":"k","Tags":[{"TagKey":"a","TagValue":"b"},{"TagKey":"","TagValue":null}]}`,
			`2 validation errors detected: Value '' at 'tags.2.member.tagKey' failed to satisfy constraint: Member must have length greater than or equal to 1; ` +
				`Value null at 'tags.2.member.tagValue' failed to satisfy constraint: Member must not be null`},
		{"nested tags in untagged list", "CreateKey", `{"Tags":[{"TagKey":"` + strings.Repeat("k", 129) + `","TagValue":""}]}`,
			`1 validation error detected: Value '` + strings.Repeat("k", 129) + `' at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128`},
		{"required list null", "TagResource", `{"KeyId":"k"}`,
			`1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null`},
		{"list length", "DescribeKey", `{"KeyId":"k","GrantTokens":["a","b","c","d","e","f","g","h","i","j","k"]}`,
			`1 validation error detected: Value '[a, b, c, d, e, f, g, h, i, j, k]' at 'grantTokens' failed to satisfy constraint: Member must have length less than or equal to 10`},
		{"pattern", "DeleteAlias", `{"AliasName":"alias/bad name"}`,
			`1 validation error detected: Value 'alias/bad name' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$`},
		{"empty alias: length and pattern", "CreateAlias", `{"AliasName":"","TargetKeyId":"k"}`,
			`2 validation errors detected: Value '' at 'aliasName' failed to satisfy constraint: Member must have length greater than or equal to 1; ` +
				`Value '' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$`},
		{"many in field order", "ReEncrypt", `{"SourceKeyId":"","DestinationEncryptionAlgorithm":"X","GrantTokens":[]}`,
			`4 validation errors detected: Value null at 'ciphertextBlob' failed to satisfy constraint: Member must not be null; ` +
				`Value '' at 'sourceKeyId' failed to satisfy constraint: Member must have length greater than or equal to 1; ` +
				`Value null at 'destinationKeyId' failed to satisfy constraint: Member must not be null; ` +
				`Value 'X' at 'destinationEncryptionAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.Calls())
			r := e.op(t, tc.op, tc.body)
			if r.status != 400 || r.errType != "ValidationException" {
				t.Fatalf("got %d %s %q", r.status, r.errType, r.message)
			}
			if r.message != tc.want {
				t.Errorf("message\n got: %s\nwant: %s", r.message, tc.want)
			}
			if len(e.fake.Calls()) != before {
				t.Error("invalid request reached the service")
			}
		})
	}
	// Valid edge values pass.
	for _, body := range []string{
		`{"KeyId":"` + strings.Repeat("é", 2048) + `"}`,
		`{"KeyId":"k","GrantTokens":[]}`,
	} {
		if r := e.op(t, "DescribeKey", body); r.status != 200 {
			t.Errorf("%.40s: got %d %s", body, r.status, r.message)
		}
	}
	if r := e.op(t, "TagResource", `{"KeyId":"k","Tags":[]}`); r.status != 200 {
		t.Errorf("empty required list: got %d %s", r.status, r.message)
	}
}

func b64(n int) string {
	return base64Std(make([]byte, n))
}

func TestResponsesAndRequestInfo(t *testing.T) {
	e := newEnv(t, nil)
	seen := map[string]bool{}
	for _, op := range e.h.Operations() {
		body := map[string]string{
			"CreateKey": `{}`, "ListKeys": `{}`, "ListAliases": `{}`, "GenerateRandom": `{"NumberOfBytes":3}`,
			"Encrypt": `{"KeyId":"k","Plaintext":"aGk="}`, "Decrypt": `{"CiphertextBlob":"Y3Q6aGk="}`,
			"ReEncrypt":            `{"CiphertextBlob":"AQ==","DestinationKeyId":"k"}`,
			"UpdateKeyDescription": `{"KeyId":"k","Description":""}`,
			"CreateAlias":          `{"AliasName":"alias/a","TargetKeyId":"k"}`, "UpdateAlias": `{"AliasName":"alias/a","TargetKeyId":"k"}`,
			"DeleteAlias": `{"AliasName":"alias/a"}`, "TagResource": `{"KeyId":"k","Tags":[{"TagKey":"a","TagValue":""}]}`,
			"UntagResource": `{"KeyId":"k","TagKeys":["a"]}`,
		}[op]
		if body == "" {
			body = `{"KeyId":"k"}`
		}
		r := e.call(t, "POST", "/", map[string]string{
			"Authorization": validAuthz, "X-Amz-Date": validDate, "Content-Type": ContentTypeJSON,
			HeaderTarget: TargetPrefix + op, "User-Agent": "test-agent/1.0",
		}, body)
		checkCommonHeaders(t, r)
		if r.status != 200 {
			t.Fatalf("%s: got %d %s %s", op, r.status, r.errType, r.message)
		}
		if ct := r.header.Get("Content-Type"); ct != ContentTypeJSON {
			t.Errorf("%s: Content-Type %q", op, ct)
		}
		var obj map[string]any
		if err := json.Unmarshal(r.body, &obj); err != nil {
			t.Errorf("%s: body %q is not an object: %v", op, r.body, err)
		}
		id := headerValue(r.header, HeaderRequestID)
		if seen[id] {
			t.Errorf("request id %s repeated", id)
		}
		seen[id] = true
		info, _ := e.fake.last()
		want := service.RequestInfo{
			RequestID: id, SourceIP: "127.0.0.1", UserAgent: "test-agent/1.0",
			Caller: service.Caller{AccessKeyID: "AKIDEXAMPLE", ARN: "arn:aws:iam::111122223333:root", AccountID: "111122223333"},
		}
		if info != want {
			t.Errorf("%s: RequestInfo = %+v, want %+v", op, info, want)
		}
	}
	if len(seen) != 21 {
		t.Errorf("served %d operations, want 21", len(seen))
	}

	// Encoding: nil output -> {}, blobs base64, timestamps epoch seconds.
	if r := e.op(t, "DisableKey", `{"KeyId":"k"}`); string(r.body) != "{}" {
		t.Errorf("nil output body = %q", r.body)
	}
	if r := e.op(t, "GenerateRandom", `{"NumberOfBytes":3}`); string(r.body) != `{"Plaintext":"/wAQ"}` {
		t.Errorf("GenerateRandom body = %s", r.body)
	}
	r := e.op(t, "ScheduleKeyDeletion", `{"KeyId":"k"}`)
	if !bytes.Contains(r.body, []byte(`"DeletionDate":1741064767.89`)) {
		t.Errorf("timestamp encoding: %s", r.body)
	}
	// Decoded input reaches the service intact.
	e.op(t, "Encrypt", `{"KeyId":"alias/x","Plaintext":"aGk=","EncryptionContext":{"a":"b"}}`)
	_, in := e.fake.last()
	enc := in.(*service.EncryptInput)
	if *enc.KeyId != "alias/x" || string(enc.Plaintext) != "hi" || enc.EncryptionContext["a"] != "b" {
		t.Errorf("decoded input %+v", enc)
	}
}

func TestServiceErrors(t *testing.T) {
	e := newEnv(t, nil)
	for _, row := range errorTable {
		if !slices.Contains([]error{ErrNoRoute}, row.kind) && row.name != row.kind.Error() {
			t.Errorf("table name %q != kind %q", row.name, row.kind.Error())
		}
	}
	type tcase struct {
		name    string
		err     error
		status  int
		errType string
		message string
	}
	var tests []tcase
	for _, row := range errorTable {
		if !isServiceKind(row.kind) {
			continue
		}
		want := 400
		switch row.kind {
		case service.ErrInternal, service.ErrKeyUnavailable:
			want = 500
		case service.ErrDependencyTimeout:
			want = 503
		case service.ErrDryRun:
			want = 412
		}
		tests = append(tests, tcase{row.name, &service.Error{Kind: row.kind, Message: "msg for " + row.name}, want, row.name, "msg for " + row.name})
	}
	if len(tests) != 25 {
		t.Fatalf("table covers %d service kinds, want 25", len(tests))
	}
	tests = append(tests,
		tcase{"wrapped service error", fmt.Errorf("ctx: %w", &service.Error{Kind: service.ErrNotFound, Message: "Key 'x' does not exist"}), 400, "NotFoundException", "Key 'x' does not exist"},
		tcase{"validation from service", service.ValidationError("1 validation error detected: x"), 400, "ValidationException", "1 validation error detected: x"},
		tcase{"bare kind", fmt.Errorf("secret-ish detail: %w", service.ErrDisabled), 400, "DisabledException", ""},
		tcase{"non-service error", errors.New("disk /var/secret key=abc123 exploded"), 500, "KMSInternalException", "An internal error occurred."},
		tcase{"unknown kind in service.Error", &service.Error{Kind: errors.New("Weird"), Message: "secret"}, 500, "KMSInternalException", "An internal error occurred."},
	)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.fake.set(tc.err, nil)
			r := e.op(t, "DescribeKey", `{"KeyId":"k"}`)
			checkCommonHeaders(t, r)
			if r.status != tc.status || r.errType != tc.errType || r.message != tc.message {
				t.Errorf("got %d %s %q, want %d %s %q", r.status, r.errType, r.message, tc.status, tc.errType, tc.message)
			}
		})
	}
	e.fake.set(nil, nil)
	if logs := e.logs.String(); !strings.Contains(logs, "exploded") {
		t.Error("internal error cause not logged server-side")
	}
}

func isServiceKind(k error) bool {
	for _, s := range []error{service.ErrValidation, service.ErrNotFound, service.ErrInvalidArn, service.ErrAlreadyExists,
		service.ErrDisabled, service.ErrInvalidState, service.ErrInvalidCiphertext, service.ErrInvalidMac, service.ErrIncorrectKey,
		service.ErrInvalidKeyUsage, service.ErrInvalidAliasName, service.ErrInvalidMarker, service.ErrInvalidGrantToken,
		service.ErrLimitExceeded, service.ErrTag, service.ErrUnsupportedOp, service.ErrAccessDenied, service.ErrDryRun,
		service.ErrMalformedPolicy, service.ErrCustomKeyStore, service.ErrDependencyTimeout, service.ErrKeyUnavailable,
		service.ErrInternal, service.ErrInvalidSignature, service.ErrInvalidGrantID} {
		if k == s {
			return true
		}
	}
	return false
}

func TestPanicRecovered(t *testing.T) {
	e := newEnv(t, nil)
	e.h.Handle("GET /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("extra boom") }))
	e.fake.set(nil, "boom: secret value")
	r := e.op(t, "DescribeKey", `{"KeyId":"k"}`)
	checkCommonHeaders(t, r)
	if r.status != 500 || r.errType != "KMSInternalException" || r.message != "An internal error occurred." {
		t.Fatalf("got %d %s %q", r.status, r.errType, r.message)
	}
	if strings.Contains(string(r.body), "secret") || strings.Contains(string(r.body), "goroutine") {
		t.Errorf("panic leaked into body: %s", r.body)
	}
	if !strings.Contains(e.logs.String(), "goroutine") {
		t.Error("stack not logged")
	}
	e.fake.set(nil, nil)
	if r := e.op(t, "DescribeKey", `{"KeyId":"k"}`); r.status != 200 {
		t.Fatalf("next request: %d %s", r.status, r.message)
	}
	r = e.call(t, "GET", "/boom", nil, "")
	checkCommonHeaders(t, r)
	if r.status != 500 || r.errType != "KMSInternalException" {
		t.Fatalf("extra endpoint panic: %d %s", r.status, r.errType)
	}
	if r := e.op(t, "ListKeys", ``); r.status != 200 {
		t.Fatalf("after extra panic: %d", r.status)
	}
}

func TestNoBodiesLogged(t *testing.T) {
	e := newEnv(t, nil)
	// "c2VjcmV0LXBsYWludGV4dA==" is base64("secret-plaintext").
	e.op(t, "Encrypt", `{"KeyId":"k","Plaintext":"c2VjcmV0LXBsYWludGV4dA=="}`)
	e.op(t, "Encrypt", `{"KeyId":"k","Plaintext":"c2VjcmV0LXBsYWludGV4dA==", "EncryptionContext":"bad"}`)
	logs := e.logs.String()
	for _, s := range []string{"c2VjcmV0LXBsYWludGV4dA", "secret-plaintext", "Y3Q6c2Vj"} {
		if strings.Contains(logs, s) {
			t.Errorf("log contains body data %q", s)
		}
	}
	if !strings.Contains(logs, `"op":"Encrypt"`) || !strings.Contains(logs, `"error_type":"SerializationException"`) || !strings.Contains(logs, `"request_id"`) {
		t.Errorf("request log missing fields: %s", logs)
	}
}

// failingBody fails the test if the handler reads it at all.
type failingBody struct{ t *testing.T }

func (b failingBody) Read([]byte) (int, error) {
	b.t.Error("handler read an oversize body")
	return 0, io.ErrUnexpectedEOF
}
func (failingBody) Close() error { return nil }

func TestBodyLimits(t *testing.T) {
	t.Run("declared oversize, not read (direct)", func(t *testing.T) {
		e := newEnv(t, nil)
		req := httptest.NewRequest("POST", "/", nil)
		req.Body = failingBody{t}
		req.ContentLength = DefaultMaxBodyBytes + 1
		for k, v := range signedHeaders("TrentService.Encrypt") {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		r := decodeResult(t, rec.Code, rec.Header(), rec.Body.Bytes())
		checkCommonHeaders(t, r)
		if r.status != 413 || r.errType != "RequestEntityTooLargeException" {
			t.Fatalf("got %d %s", r.status, r.errType)
		}
		if len(e.fake.Calls()) != 0 {
			t.Error("reached service")
		}
	})
	t.Run("declared oversize, not read (loopback)", func(t *testing.T) {
		e := newEnv(t, nil)
		conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // guards a handler that would wait for the body
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nX-Amz-Target: TrentService.Encrypt\r\nAuthorization: %s\r\nX-Amz-Date: %s\r\n\r\n{\"KeyId\":",
			100<<20, validAuthz, validDate)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no response without the body: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		r := decodeResult(t, resp.StatusCode, resp.Header, b)
		checkCommonHeaders(t, r)
		if r.status != 413 || r.errType != "RequestEntityTooLargeException" || !resp.Close {
			t.Fatalf("got %d %s close=%v", r.status, r.errType, resp.Close)
		}
	})
	t.Run("chunked oversize", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 1024 })
		body := `{"KeyId":"k","Plaintext":"` + strings.Repeat("A", 2000) + `"}`
		req, _ := http.NewRequest("POST", e.srv.URL+"/", io.MultiReader(strings.NewReader(body))) // unknown length: chunked
		for k, v := range signedHeaders("TrentService.Encrypt") {
			req.Header.Set(k, v)
		}
		if req.ContentLength != 0 && req.ContentLength != -1 {
			t.Fatalf("request not chunked: %d", req.ContentLength)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(resp.TransferEncoding) != 0 {
			t.Logf("response TE %v", resp.TransferEncoding)
		}
		r := decodeResult(t, resp.StatusCode, resp.Header, b)
		if r.status != 413 || r.errType != "RequestEntityTooLargeException" {
			t.Fatalf("got %d %s", r.status, r.errType)
		}
		if len(e.fake.Calls()) != 0 {
			t.Error("reached service")
		}
		// At the limit is fine.
		ok := `{"KeyId":"k","Plaintext":"` + strings.Repeat("A", 992) + `"}` // 1020 bytes
		if r := e.op(t, "Encrypt", ok); r.status != 200 {
			t.Fatalf("body under the limit: %d %s", r.status, r.message)
		}
	})
}

func TestConfig(t *testing.T) {
	good := Config{KMS: &fakeKMS{}, Auth: &DevAuthenticator{}, NodeID: "n"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	var nilKMS *fakeKMS
	for name, c := range map[string]Config{
		"no KMS":    {Auth: &DevAuthenticator{}, NodeID: "n"},
		"nil ptr":   {KMS: nilKMS, Auth: &DevAuthenticator{}, NodeID: "n"},
		"no auth":   {KMS: &fakeKMS{}, NodeID: "n"},
		"no node":   {KMS: &fakeKMS{}, Auth: &DevAuthenticator{}},
		"bad node":  {KMS: &fakeKMS{}, Auth: &DevAuthenticator{}, NodeID: "a\nb"},
		"neg limit": {KMS: &fakeKMS{}, Auth: &DevAuthenticator{}, NodeID: "n", MaxBodyBytes: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted", name)
		}
		if _, err := NewHandler(c); err == nil {
			t.Errorf("%s: NewHandler accepted", name)
		}
	}
	h, err := NewHandler(good)
	if err != nil || h.maxBody != DefaultMaxBodyBytes || h.log == nil {
		t.Fatalf("defaults: %v %d", err, h.maxBody)
	}
}

func TestBadTags(t *testing.T) {
	type badEnum struct {
		N *int32 `kms:"enum=A|B"`
	}
	type badPattern struct {
		S *string `kms:"pattern=nope"`
	}
	type badOpt struct {
		S *string `kms:"requird"`
	}
	type badMin struct {
		B *bool `kms:"min=1"`
	}
	for _, v := range []any{badEnum{}, badPattern{}, badOpt{}, badMin{}} {
		if _, err := rulesFor(reflect.TypeOf(v)); err == nil {
			t.Errorf("%T: bad tag accepted", v)
		}
	}
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
