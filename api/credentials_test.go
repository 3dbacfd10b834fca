package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/service"
)

const sampleCredentials = `{
  "account_id": "111122223333",
  "credentials": [
    {"access_key_id": "AKIDALICE", "secret_access_key": "SUPERSECRETalice", "arn": "arn:aws:iam::111122223333:user/alice",
     "policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}},
    {"access_key_id": "AKIDBOB", "secret_access_key": "SUPERSECRETbob", "arn": "arn:aws:iam::111122223333:role/bob", "policy": null}
  ]
}`

func TestParseCredentials(t *testing.T) {
	cf, err := ParseCredentials([]byte(sampleCredentials))
	if err != nil {
		t.Fatal(err)
	}
	if cf.AccountID != "111122223333" || len(cf.Credentials) != 2 {
		t.Fatalf("%+v", cf)
	}
	a, b := cf.Credentials[0], cf.Credentials[1]
	if a.AccessKeyID != "AKIDALICE" || a.SecretAccessKey != "SUPERSECRETalice" || a.ARN != "arn:aws:iam::111122223333:user/alice" {
		t.Errorf("alice %+v", a)
	}
	var pol map[string]any
	if err := json.Unmarshal(a.Policy, &pol); err != nil || pol["Version"] != "2012-10-17" {
		t.Errorf("alice policy %s: %v", a.Policy, err)
	}
	if b.Policy != nil {
		t.Errorf("null policy kept as %s", b.Policy)
	}
	// Empty list: valid (every request refused).
	if _, err := ParseCredentials([]byte(`{"account_id":"111122223333","credentials":[]}`)); err != nil {
		t.Errorf("empty list: %v", err)
	}

	const secret = "SUPERSECRETzzz"
	cred := func(fields string) string {
		return `{"account_id":"111122223333","credentials":[{` + fields + `}]}`
	}
	ok := `"access_key_id":"AKID1","secret_access_key":"` + secret + `","arn":"arn:aws:iam::111122223333:user/x"`
	bad := map[string]string{
		"empty":             ``,
		"not json":          `{"account_id":"111122223333",` + secret,
		"trailing data":     cred(ok) + ` {}`,
		"array":             `[]`,
		"no account":        `{"credentials":[{` + ok + `}]}`,
		"short account":     `{"account_id":"1234","credentials":[]}`,
		"unknown top field": `{"account_id":"111122223333","credentials":[],"secret":"` + secret + `"}`,
		"misspelt secret":   cred(`"access_key_id":"AKID1","secret_acess_key":"` + secret + `","arn":"arn:aws:iam::111122223333:user/x"`),
		"numeric secret":    cred(`"access_key_id":"AKID1","secret_access_key":12345678901234,"arn":"arn:aws:iam::111122223333:user/x"`),
		"empty secret":      cred(`"access_key_id":"AKID1","secret_access_key":"","arn":"arn:aws:iam::111122223333:user/x"`),
		"empty key id":      cred(`"access_key_id":"","secret_access_key":"` + secret + `","arn":"arn:aws:iam::111122223333:user/x"`),
		"key id with slash": cred(`"access_key_id":"AK/ID","secret_access_key":"` + secret + `","arn":"arn:aws:iam::111122223333:user/x"`),
		"duplicate key id":  `{"account_id":"111122223333","credentials":[{` + ok + `},{` + ok + `}]}`,
		"no arn":            cred(`"access_key_id":"AKID1","secret_access_key":"` + secret + `"`),
		"arn other account": cred(`"access_key_id":"AKID1","secret_access_key":"` + secret + `","arn":"arn:aws:iam::999988887777:user/x"`),
		"arn not iam":       cred(`"access_key_id":"AKID1","secret_access_key":"` + secret + `","arn":"arn:aws:s3:::bucket"`),
		"arn with region":   cred(`"access_key_id":"AKID1","secret_access_key":"` + secret + `","arn":"arn:aws:iam:us-east-1:111122223333:user/x"`),
		"arn no resource":   cred(`"access_key_id":"AKID1","secret_access_key":"` + secret + `","arn":"arn:aws:iam::111122223333:"`),
		"arn with space":    cred(`"access_key_id":"AKID1","secret_access_key":"` + secret + `","arn":"arn:aws:iam::111122223333:user/a b"`),
		"policy not object": cred(ok + `,"policy":"Allow everything"`),
	}
	for name, doc := range bad {
		_, err := ParseCredentials([]byte(doc))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "12345678901234") {
			t.Errorf("%s: error reveals the secret: %v", name, err)
		}
	}
}

func TestCredentialRedaction(t *testing.T) {
	cf, err := ParseCredentials([]byte(sampleCredentials))
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Credentials[0]
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "cred", c, "file", cf, "value", *cf)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "cred", c, "ptr", &c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", cf), fmt.Sprintf("%+v", *cf), logs.String()} {
		if strings.Contains(s, "SUPERSECRET") {
			t.Errorf("secret revealed: %s", s)
		}
	}
	if !strings.Contains(fmt.Sprint(c), "AKIDALICE") {
		t.Errorf("access key id not shown: %s", c)
	}
}

func TestLoadCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.json")
	if _, err := LoadCredentialsFile(p); err == nil || !strings.Contains(err.Error(), "credentials file") {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(p, []byte(sampleCredentials), 0o600); err != nil {
		t.Fatal(err)
	}
	cf, err := LoadCredentialsFile(p)
	if err != nil || len(cf.Credentials) != 2 {
		t.Fatalf("%v %v", cf, err)
	}
	if err := os.WriteFile(p, []byte(`{"account_id":"1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredentialsFile(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("bad file: %v", err)
	}
}

func TestNewSigV4AuthenticatorChecks(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	cf := &CredentialsFile{AccountID: "111122223333"}
	if _, err := NewSigV4Authenticator(SigV4Config{Credentials: cf, Logger: quiet}); err == nil {
		t.Error("no region accepted")
	}
	if _, err := NewSigV4Authenticator(SigV4Config{Region: "us-east-1", Logger: quiet}); err == nil {
		t.Error("no credentials accepted")
	}
	if _, err := NewSigV4Authenticator(SigV4Config{Region: "us-east-1", AccountID: "444455556666", Credentials: cf, Logger: quiet}); err == nil ||
		!strings.Contains(err.Error(), "-account-id") {
		t.Errorf("account mismatch: %v", err)
	}
	if _, err := NewSigV4Authenticator(SigV4Config{Region: "us-east-1", File: filepath.Join(t.TempDir(), "nope"), Logger: quiet}); err == nil {
		t.Error("missing file accepted")
	}
}

func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte(sampleCredentials))
	f.Add([]byte(`{"account_id":"111122223333","credentials":[]}`))
	f.Add([]byte(`{"account_id":"111122223333","credentials":[{"access_key_id":"A","secret_access_key":"s","arn":"arn:aws:sts::111122223333:assumed-role/r/s","policy":{}}]}`))
	f.Add([]byte(`{"account_id":"111122223333","credentials":[{"access_key_id":"A","secret_access_key":"s","arn":"arn:aws:iam::111122223333:root","policy":[1]}]}`))
	f.Add([]byte(`{"account_id":null,"credentials":null}`))
	f.Add([]byte(`{"account_id":"111122223333","credentials":[{"access_key_id":"A","secret_access_key":"s","arn":"arn:aws:iam::111122223333:u"}]} x`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cf, err := ParseCredentials(b)
		if err != nil {
			return
		}
		// What is accepted is valid, and survives a round trip unchanged.
		seen := map[string]bool{}
		for _, c := range cf.Credentials {
			if c.AccessKeyID == "" || c.SecretAccessKey == "" || seen[c.AccessKeyID] {
				t.Fatalf("accepted %v", c)
			}
			seen[c.AccessKeyID] = true
			if c.Policy != nil && !json.Valid(c.Policy) {
				t.Fatalf("invalid policy kept: %q", c.Policy)
			}
		}
		again, err := json.Marshal(cf)
		if err != nil {
			t.Fatal(err)
		}
		cf2, err := ParseCredentials(again)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", again, err)
		}
		again2, _ := json.Marshal(cf2)
		if !bytes.Equal(again, again2) {
			t.Fatalf("round trip changed:\n%s\n%s", again, again2)
		}
	})
}

// TestIdentityPolicyValidated checks that an identity policy the evaluator
// could not read (a typo) stops a load or reload instead of silently
// allowing nothing.
func TestIdentityPolicyValidated(t *testing.T) {
	const secret = "SUPERSECRETpol"
	withPolicy := func(policy string) []byte {
		return []byte(`{"account_id":"111122223333","credentials":[{"access_key_id":"AKIDPOL","secret_access_key":"` + secret +
			`","arn":"arn:aws:iam::111122223333:user/pol","policy":` + policy + `}]}`)
	}
	const good = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}]}`
	if _, err := ParseCredentials(withPolicy(good)); err != nil {
		t.Fatalf("valid policy refused: %v", err)
	}
	typos := map[string]string{
		"misspelt Statement": `{"Version":"2012-10-17","Statment":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`,
		"misspelt Effect":    `{"Version":"2012-10-17","Statement":[{"Effect":"Alow","Action":"kms:*","Resource":"*"}]}`,
		"misspelt Action":    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Actions":"kms:*","Resource":"*"}]}`,
		"no Resource":        `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*"}]}`,
		"bad Version":        `{"Version":"2012-10-18","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`,
		"no statements":      `{"Version":"2012-10-17","Statement":[]}`,
		"with a Principal":   `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}`,
	}
	for name, policy := range typos {
		_, err := ParseCredentials(withPolicy(policy))
		if !errors.Is(err, service.ErrMalformedPolicy) {
			t.Errorf("%s: got %v, want a wrapped service.ErrMalformedPolicy", name, err)
			continue
		}
		if !strings.Contains(err.Error(), "credentials[0] (AKIDPOL): policy:") || !strings.Contains(err.Error(), "identity policy") {
			t.Errorf("%s: error does not say which credential's policy: %v", name, err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error reveals the secret: %v", name, err)
		}
	}

	// A reload with a typo keeps the credentials in force.
	p := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(p, withPolicy(good), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := NewSigV4Authenticator(SigV4Config{Region: "us-east-1", File: p, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, withPolicy(typos["misspelt Effect"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); !errors.Is(err, service.ErrMalformedPolicy) {
		t.Fatalf("reload with a typo: %v", err)
	}
	if c, ok := a.Lookup("AKIDPOL"); !ok || string(c.Policy) != good {
		t.Fatalf("previous credential not kept: %v %v", ok, c)
	}
}
