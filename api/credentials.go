package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/kmsd/kmsd/service"
)

// CredentialsFile is the content of a -credentials-file: the SigV4
// principals kmsd accepts.
//
//	{"account_id": "111122223333",
//	 "credentials": [{"access_key_id": "AKID...", "secret_access_key": "...",
//	                  "arn": "arn:aws:iam::111122223333:user/alice",
//	                  "policy": {...optional IAM identity policy...}}]}
type CredentialsFile struct {
	AccountID   string       `json:"account_id"`
	Credentials []Credential `json:"credentials"`
}

// Credential is one principal. Its String, GoString and LogValue methods
// redact the secret, so that printing or logging one never leaks it.
type Credential struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	ARN             string `json:"arn"`
	// Policy is the principal's IAM identity policy, kept raw (nil when
	// absent or null) for the policy evaluator.
	Policy json.RawMessage `json:"policy,omitempty"`
}

const redacted = "[REDACTED]"

func (c Credential) String() string {
	return fmt.Sprintf("{AccessKeyID:%s SecretAccessKey:%s ARN:%s}", c.AccessKeyID, redacted, c.ARN)
}

// GoString implements fmt.GoStringer (%#v).
func (c Credential) GoString() string {
	return fmt.Sprintf("api.Credential{AccessKeyID:%q, SecretAccessKey:%q, ARN:%q}", c.AccessKeyID, redacted, c.ARN)
}

// LogValue implements slog.LogValuer.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("access_key_id", c.AccessKeyID), slog.String("arn", c.ARN))
}

// LogValue implements slog.LogValuer: the account and the access key ids.
func (cf CredentialsFile) LogValue() slog.Value {
	ids := make([]string, len(cf.Credentials))
	for i, c := range cf.Credentials {
		ids[i] = c.AccessKeyID
	}
	return slog.GroupValue(slog.String("account_id", cf.AccountID), slog.Any("access_key_ids", ids))
}

// maxCredentialsFileBytes bounds what LoadCredentialsFile reads.
const maxCredentialsFileBytes = 16 << 20

// LoadCredentialsFile reads and parses a credentials file.
func LoadCredentialsFile(path string) (*CredentialsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCredentialsFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	defer clear(b)
	if len(b) > maxCredentialsFileBytes {
		return nil, fmt.Errorf("credentials file %s: larger than %d bytes", path, maxCredentialsFileBytes)
	}
	cf, err := ParseCredentials(b)
	if err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return cf, nil
}

// ParseCredentials parses and checks the JSON of a credentials file:
// unknown members are refused (a misspelt member would otherwise be
// silently ignored), the account id is 12 digits, every access key id is
// unique and of the form the Authorization header allows, every secret is
// non-empty, every ARN is an IAM or STS principal of that account, and a
// policy, if any, is a JSON object. Error messages never contain a secret.
func ParseCredentials(b []byte) (*CredentialsFile, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var cf CredentialsFile
	if err := dec.Decode(&cf); err != nil {
		return nil, fmt.Errorf("not a valid credentials document: %w", sanitizeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not a valid credentials document: data after the JSON object")
	}
	if err := cf.validate(); err != nil {
		return nil, err
	}
	return &cf, nil
}

// sanitizeJSONError keeps the kind and position of a decoding error but
// drops anything quoted from the input (a syntax error never quotes it; a
// type error names the field, not the value).
func sanitizeJSONError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("JSON syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		kind, _, _ := strings.Cut(te.Value, " ") // "number 5" would quote the value
		return fmt.Errorf("member %q: expected %s, found a JSON %s", te.Field, te.Type, kind)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of JSON input")
	}
	// Unknown fields and the like: the message names a member, not a value.
	return err
}

func (cf *CredentialsFile) validate() error {
	if len(cf.AccountID) != 12 || !allBytes(cf.AccountID, isDigit) {
		return errors.New("account_id must be 12 digits")
	}
	seen := make(map[string]bool, len(cf.Credentials))
	for i := range cf.Credentials {
		c := &cf.Credentials[i]
		where := fmt.Sprintf("credentials[%d]", i)
		if len(c.AccessKeyID) == 0 || len(c.AccessKeyID) > 128 || !allBytes(c.AccessKeyID, isWordByte) {
			return fmt.Errorf("%s: access_key_id must be 1 to 128 letters, digits or underscores", where)
		}
		where += " (" + c.AccessKeyID + ")"
		if seen[c.AccessKeyID] {
			return fmt.Errorf("%s: duplicate access_key_id", where)
		}
		seen[c.AccessKeyID] = true
		if c.SecretAccessKey == "" {
			return fmt.Errorf("%s: secret_access_key is empty", where)
		}
		if err := checkPrincipalARN(c.ARN, cf.AccountID); err != nil {
			return fmt.Errorf("%s: arn: %w", where, err)
		}
		if p := bytes.TrimSpace(c.Policy); len(p) == 0 || bytes.Equal(p, []byte("null")) {
			c.Policy = nil
		} else if p[0] != '{' {
			return fmt.Errorf("%s: policy must be a JSON object", where)
		} else if err := service.ValidateIdentityPolicy(p); err != nil {
			// A policy the evaluator cannot read would allow nothing,
			// silently: refuse the file instead.
			return fmt.Errorf("%s: policy: %w", where, err)
		} else {
			c.Policy = append(json.RawMessage(nil), p...)
		}
	}
	return nil
}

// checkPrincipalARN accepts arn:PARTITION:iam::ACCOUNT:RESOURCE and
// arn:PARTITION:sts::ACCOUNT:RESOURCE with ACCOUNT the file's account.
func checkPrincipalARN(arn, account string) error {
	p := strings.SplitN(arn, ":", 6)
	switch {
	case len(p) != 6 || p[0] != "arn" || p[1] == "":
		return errors.New("must have the form arn:aws:iam::ACCOUNT:user/NAME")
	case p[2] != "iam" && p[2] != "sts":
		return errors.New("must name an IAM or STS principal (arn:aws:iam::...)")
	case p[3] != "":
		return errors.New("an IAM principal ARN has no region")
	case p[4] != account:
		return fmt.Errorf("account %q is not the file's account_id %s", p[4], account)
	case p[5] == "":
		return errors.New("has no resource (user/NAME, role/NAME or root)")
	}
	for i := 0; i < len(arn); i++ {
		if arn[i] < 0x21 || arn[i] == 0x7f {
			return errors.New("contains a space or control character")
		}
	}
	return nil
}
