package api

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func FuzzParseAuthorization(f *testing.F) {
	f.Add(validAuthz)
	f.Add("AWS4-HMAC-SHA256 Credential=A/20200229/eu-west-1/kms/aws4_request,SignedHeaders=host,Signature=" + strings.Repeat("0", 64))
	f.Add("AWS4-HMAC-SHA256   Credential=AKID/20130524/us-east-1/kms/aws4_request ,\tSignedHeaders=a;host;b , Signature=" + strings.Repeat("f", 64))
	f.Add("AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=")
	f.Add("AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=;;, Signature=,,,")
	f.Add("Basic abc")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseAuthorization(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "IncompleteSignatureException: ") {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		formatted := h.String()
		h2, err := ParseAuthorization(formatted)
		if err != nil {
			t.Fatalf("re-parse of %q failed: %v", formatted, err)
		}
		if !reflect.DeepEqual(h, h2) || h2.String() != formatted {
			t.Fatalf("re-format not consistent:\n%+v\n%+v", h, h2)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	quiet := slog.New(slog.DiscardHandler) // logs would grow without bound over a fuzz run
	e := newEnv(f, func(c *Config) { c.Logger, c.Auth = quiet, &DevAuthenticator{Logger: quiet} })
	ops := e.h.Operations()
	slices.Sort(ops)
	seeds := []string{
		``, `{}`, `null`, `[]`, `{"KeyId":"k"}`, `{"KeyId":null}`, `{"KeyId":5}`,
		`{"KeyId":"k","Plaintext":"aGk=","EncryptionContext":{"a":"b"},"GrantTokens":["t"]}`,
		`{"CiphertextBlob":"AAAA","DestinationKeyId":"k"}`, `{"CiphertextBlob":"!!"}`,
		`{"NumberOfBytes":1024,"KeySpec":"AES_256"}`, `{"NumberOfBytes":-1e400}`,
		`{"AliasName":"alias/ok","TargetKeyId":"k"}`, `{"AliasName":"\u00e9\ud800"}`,
		`{"KeyId":"k","Tags":[{"TagKey":"a","TagValue":"b"},null,{}]}`, `{"KeyId":"k","TagKeys":[null,1]}`,
		`{"Tags":[[[[[]]]]]}`, `{"Limit":0,"Marker":""}`, `{"Description":"` + strings.Repeat("x", 9000) + `"}`,
		`{"KeyId":"k"} trailing`, `{"a":{"b":{"c":[1,2,{"d":null}]}}}`,
	}
	for i, s := range seeds {
		for j := range ops {
			if (i+j)%3 == 0 {
				f.Add(uint8(j), []byte(s))
			}
		}
	}
	f.Fuzz(func(t *testing.T, opIndex uint8, body []byte) {
		op := ops[int(opIndex)%len(ops)]
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
		for k, v := range signedHeaders(TargetPrefix + op) {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: status %d body %s", op, body, rec.Code, rec.Body.Bytes())
		}
		r := decodeResult(t, rec.Code, rec.Header(), rec.Body.Bytes())
		if r.status != 200 && r.errType != "SerializationException" && r.errType != "ValidationException" {
			t.Fatalf("%s %q: unexpected %d %s", op, body, r.status, r.errType)
		}
		if headerValue(rec.Header(), HeaderRequestID) == "" || rec.Header().Get(HeaderServedBy) != testNode {
			t.Fatal("missing common headers")
		}
	})
}
