package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kmsd/kmsd/service"
)

// Authenticator turns a request into a caller. body is the full request body
// (needed to verify the payload hash). Failures are returned as
// *service.Error of an api kind (ErrMissingAuthToken, ErrIncompleteSignature,
// ErrInvalidSignature, ErrUnrecognizedClient, service.ErrAccessDenied...);
// any other error is answered as a 500.
type Authenticator interface {
	Authenticate(r *http.Request, body []byte) (service.Caller, error)
}

// SigV4Algorithm is the only signing algorithm accepted.
const SigV4Algorithm = "AWS4-HMAC-SHA256"

// amzDateLayout is the X-Amz-Date format (ISO 8601 basic, UTC).
const amzDateLayout = "20060102T150405Z"

// DefaultAccountID is used by DevAuthenticator when AccountID is empty.
const DefaultAccountID = "111122223333"

// SigV4Header is a parsed SigV4 Authorization header:
//
//	AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=h1;h2, Signature=hex
type SigV4Header struct {
	AccessKeyID   string
	Date          string // credential scope date, YYYYMMDD
	Region        string
	Service       string
	SignedHeaders []string // lower case, in the order sent
	Signature     string   // 64 lower-case hex digits
}

// Scope returns the credential scope DATE/REGION/SERVICE/aws4_request.
func (h SigV4Header) Scope() string {
	return h.Date + "/" + h.Region + "/" + h.Service + "/aws4_request"
}

// String formats the header canonically; ParseAuthorization(h.String())
// returns h.
func (h SigV4Header) String() string {
	return SigV4Algorithm + " Credential=" + h.AccessKeyID + "/" + h.Scope() +
		", SignedHeaders=" + strings.Join(h.SignedHeaders, ";") +
		", Signature=" + h.Signature
}

func incompleteSig(msg string) error { return apiError(ErrIncompleteSignature, msg) }

// ParseAuthorization parses a SigV4 Authorization header. It checks form
// only (not the signature, the service name, or the date's freshness).
// Errors are *service.Error of kind ErrIncompleteSignature; their messages
// never echo the header.
func ParseAuthorization(s string) (SigV4Header, error) {
	var h SigV4Header
	alg, rest, ok := strings.Cut(s, " ")
	if !ok || alg != SigV4Algorithm {
		return h, incompleteSig("Authorization header must use the " + SigV4Algorithm + " algorithm")
	}
	var haveCred, haveSH, haveSig bool
	for part := range strings.SplitSeq(rest, ",") {
		part = strings.Trim(part, " \t")
		key, val, ok := strings.Cut(part, "=")
		if !ok {
			return h, incompleteSig("Authorization header component is not of the form Key=Value")
		}
		switch key {
		case "Credential":
			if haveCred {
				return h, incompleteSig("Authorization header repeats Credential")
			}
			haveCred = true
			if err := parseCredential(val, &h); err != nil {
				return h, err
			}
		case "SignedHeaders":
			if haveSH {
				return h, incompleteSig("Authorization header repeats SignedHeaders")
			}
			haveSH = true
			if err := parseSignedHeaders(val, &h); err != nil {
				return h, err
			}
		case "Signature":
			if haveSig {
				return h, incompleteSig("Authorization header repeats Signature")
			}
			haveSig = true
			if len(val) != 64 || !allBytes(val, isLowerHex) {
				return h, incompleteSig("Signature must be 64 lower-case hexadecimal digits")
			}
			h.Signature = val
		default:
			return h, incompleteSig("Authorization header has an unknown component; expected Credential, SignedHeaders and Signature")
		}
	}
	switch {
	case !haveCred:
		return h, incompleteSig("Authorization header requires 'Credential' parameter")
	case !haveSH:
		return h, incompleteSig("Authorization header requires 'SignedHeaders' parameter")
	case !haveSig:
		return h, incompleteSig("Authorization header requires 'Signature' parameter")
	}
	return h, nil
}

func parseCredential(v string, h *SigV4Header) error {
	// Split on '/' into exactly five parts, without allocating a slice.
	var p [5]string
	rest := v
	for i := range 4 {
		var ok bool
		if p[i], rest, ok = strings.Cut(rest, "/"); !ok {
			return incompleteSig("Credential must have the form ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request")
		}
	}
	if strings.IndexByte(rest, '/') >= 0 {
		return incompleteSig("Credential must have the form ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request")
	}
	p[4] = rest
	if len(p[0]) == 0 || len(p[0]) > 128 || !allBytes(p[0], isWordByte) {
		return incompleteSig("Credential has a malformed access key id")
	}
	if len(p[1]) != 8 || !allBytes(p[1], isDigit) {
		return incompleteSig("Credential date must be YYYYMMDD")
	}
	if _, err := time.Parse("20060102", p[1]); err != nil {
		return incompleteSig("Credential date must be YYYYMMDD")
	}
	if len(p[2]) == 0 || len(p[2]) > 64 || !allBytes(p[2], isScopeByte) {
		return incompleteSig("Credential has a malformed region")
	}
	if len(p[3]) == 0 || len(p[3]) > 64 || !allBytes(p[3], isScopeByte) {
		return incompleteSig("Credential has a malformed service")
	}
	if p[4] != "aws4_request" {
		return incompleteSig("Credential must end with aws4_request")
	}
	h.AccessKeyID, h.Date, h.Region, h.Service = p[0], p[1], p[2], p[3]
	return nil
}

func parseSignedHeaders(v string, h *SigV4Header) error {
	names := strings.Split(v, ";")
	hasHost := false
	for _, n := range names {
		if n == "" || !allBytes(n, isLowerTokenByte) {
			return incompleteSig("SignedHeaders must be a ';'-separated list of lower-case header names")
		}
		if n == "host" {
			hasHost = true
		}
	}
	if !hasHost {
		return incompleteSig("'Host' must be a 'SignedHeader' in the AWS Authorization")
	}
	h.SignedHeaders = names
	return nil
}

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool    { return '0' <= c && c <= '9' }
func isLowerHex(c byte) bool { return isDigit(c) || ('a' <= c && c <= 'f') }
func isWordByte(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || c == '_'
}
func isScopeByte(c byte) bool { return isDigit(c) || ('a' <= c && c <= 'z') || c == '-' }

// isLowerTokenByte reports an RFC 9110 token byte that is not upper case.
func isLowerTokenByte(c byte) bool {
	if isDigit(c) || ('a' <= c && c <= 'z') {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// parseSignedRequest does the checks every SigV4 authenticator needs before
// (or instead of) verifying the signature: the Authorization header is
// present and well formed, scoped to kms, and X-Amz-Date is present and
// well formed. It returns the parsed header and the request time.
func parseSignedRequest(r *http.Request) (SigV4Header, time.Time, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 || (len(vals) == 1 && vals[0] == "") {
		return SigV4Header{}, time.Time{}, apiError(ErrMissingAuthToken, "Missing Authentication Token")
	}
	if len(vals) > 1 {
		return SigV4Header{}, time.Time{}, incompleteSig("Request has more than one Authorization header")
	}
	h, err := ParseAuthorization(vals[0])
	if err != nil {
		return SigV4Header{}, time.Time{}, err
	}
	if h.Service != "kms" {
		return SigV4Header{}, time.Time{}, incompleteSig("Credential should be scoped to correct service: 'kms'")
	}
	d := r.Header.Get("X-Amz-Date")
	if d == "" {
		return SigV4Header{}, time.Time{}, incompleteSig("Authorization header requires existence of the 'X-Amz-Date' header")
	}
	t, err := time.Parse(amzDateLayout, d)
	if err != nil {
		return SigV4Header{}, time.Time{}, incompleteSig("X-Amz-Date must be in ISO 8601 basic format (YYYYMMDD'T'HHMMSS'Z')")
	}
	return h, t, nil
}

// maxLoggedKeyIDs bounds the memory DevAuthenticator spends remembering
// which access key ids it has logged (clients choose them freely).
const maxLoggedKeyIDs = 4096

// DevAuthenticator accepts any well-formed SigV4 Authorization header
// (scoped to the kms service, with X-Amz-Date) without checking the
// signature. The caller is the account root, arn:aws:iam::<AccountID>:root
// (AccountID defaults to DefaultAccountID). It logs each access key id at
// debug level once. Use it by pointer; the zero value is ready to use.
type DevAuthenticator struct {
	AccountID string
	Logger    *slog.Logger

	mu   sync.Mutex
	seen map[string]struct{}
}

// Authenticate implements Authenticator.
func (a *DevAuthenticator) Authenticate(r *http.Request, _ []byte) (service.Caller, error) {
	h, _, err := parseSignedRequest(r)
	if err != nil {
		return service.Caller{}, err
	}
	acct := a.AccountID
	if acct == "" {
		acct = DefaultAccountID
	}
	a.noteKeyID(r.Context(), h.AccessKeyID)
	return service.Caller{
		AccessKeyID: h.AccessKeyID,
		ARN:         "arn:aws:iam::" + acct + ":root",
		AccountID:   acct,
	}, nil
}

func (a *DevAuthenticator) noteKeyID(ctx context.Context, id string) {
	a.mu.Lock()
	_, seen := a.seen[id]
	first := !seen && len(a.seen) < maxLoggedKeyIDs
	if first {
		if a.seen == nil {
			a.seen = make(map[string]struct{})
		}
		a.seen[id] = struct{}{}
	}
	a.mu.Unlock()
	if first {
		lg := a.Logger
		if lg == nil {
			lg = slog.Default()
		}
		lg.DebugContext(ctx, "dev authenticator: accepting access key id without signature check", "access_key_id", id)
	}
}
