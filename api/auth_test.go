package api

import (
	"errors"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/service"
)

func TestParseAuthorization(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	h, err := ParseAuthorization("AWS4-HMAC-SHA256  Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/kms/aws4_request ,SignedHeaders=host;range;x-amz-date,  Signature=" + sig)
	if err != nil {
		t.Fatal(err)
	}
	want := SigV4Header{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", Date: "20130524", Region: "us-east-1", Service: "kms",
		SignedHeaders: []string{"host", "range", "x-amz-date"}, Signature: sig}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %+v", h)
	}
	if s := h.String(); s != "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/kms/aws4_request, SignedHeaders=host;range;x-amz-date, Signature="+sig {
		t.Errorf("String() = %s", s)
	}
	if h.Scope() != "20130524/us-east-1/kms/aws4_request" {
		t.Errorf("Scope() = %s", h.Scope())
	}

	cred := "Credential=AKID/20130524/us-east-1/kms/aws4_request"
	sh := "SignedHeaders=host;x-amz-date"
	sg := "Signature=" + sig
	bad := map[string]string{
		"empty":             "",
		"algorithm only":    "AWS4-HMAC-SHA256",
		"wrong algorithm":   "AWS4-HMAC-SHA512 " + cred + ", " + sh + ", " + sg,
		"basic":             "Basic dXNlcjpwYXNz",
		"no equals":         "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature",
		"missing cred":      "AWS4-HMAC-SHA256 " + sh + ", " + sg,
		"missing sh":        "AWS4-HMAC-SHA256 " + cred + ", " + sg,
		"missing sig":       "AWS4-HMAC-SHA256 " + cred + ", " + sh,
		"dup cred":          "AWS4-HMAC-SHA256 " + cred + ", " + cred + ", " + sh + ", " + sg,
		"unknown component": "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + sg + ", Extra=1",
		"trailing comma":    "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + sg + ",",
		"short scope":       "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/kms, " + sh + ", " + sg,
		"empty akid":        "AWS4-HMAC-SHA256 Credential=/20130524/us-east-1/kms/aws4_request, " + sh + ", " + sg,
		"bad date":          "AWS4-HMAC-SHA256 Credential=AKID/20131324/us-east-1/kms/aws4_request, " + sh + ", " + sg,
		"bad terminator":    "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/kms/aws5_request, " + sh + ", " + sg,
		"upper region":      "AWS4-HMAC-SHA256 Credential=AKID/20130524/US-EAST-1/kms/aws4_request, " + sh + ", " + sg,
		"no host signed":    "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=x-amz-date, " + sg,
		"empty header name": "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;;x-amz-date, " + sg,
		"upper header name": "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=Host, " + sg,
		"short signature":   "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=abcd",
		"non-hex signature": "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=" + strings.Repeat("zz", 32),
	}
	for name, s := range bad {
		_, err := ParseAuthorization(s)
		if !errors.Is(err, ErrIncompleteSignature) {
			t.Errorf("%s: err = %v, want IncompleteSignature", name, err)
			continue
		}
		var se *service.Error
		if !errors.As(err, &se) || se.Message == "" {
			t.Errorf("%s: no message", name)
		}
		if strings.Contains(se.Message, "dXNlcjpwYXNz") || strings.Contains(se.Message, sig) {
			t.Errorf("%s: message echoes the header: %s", name, se.Message)
		}
	}
}

func TestDevAuthenticatorLogsOncePerKey(t *testing.T) {
	logs := &syncBuffer{}
	a := &DevAuthenticator{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for i := 0; i < 5; i++ {
		for _, id := range []string{"AKIDONE", "AKIDTWO"} {
			r := httptest.NewRequest("POST", "/", nil)
			r.Header.Set("Authorization", strings.Replace(validAuthz, "AKIDEXAMPLE", id, 1))
			r.Header.Set("X-Amz-Date", validDate)
			c, err := a.Authenticate(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c != (service.Caller{AccessKeyID: id, ARN: "arn:aws:iam::" + DefaultAccountID + ":root", AccountID: DefaultAccountID}) {
				t.Fatalf("caller %+v", c)
			}
		}
	}
	out := logs.String()
	if strings.Count(out, "AKIDONE") != 1 || strings.Count(out, "AKIDTWO") != 1 {
		t.Errorf("want one log line per key id, got:\n%s", out)
	}
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Add("Authorization", validAuthz)
	r.Header.Add("Authorization", validAuthz)
	r.Header.Set("X-Amz-Date", validDate)
	if _, err := a.Authenticate(r, nil); !errors.Is(err, ErrIncompleteSignature) {
		t.Errorf("two Authorization headers: %v", err)
	}
}
