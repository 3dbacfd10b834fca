package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsd/kmsd/service"
)

// DefaultMaxClockSkew is how far X-Amz-Date may be from the server's clock,
// either way, as in AWS.
const DefaultMaxClockSkew = 15 * time.Minute

// Messages as AWS words them.
const (
	msgUnrecognizedClient = "The security token included in the request is invalid."
	msgSignatureMismatch  = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

// SigV4Config configures a SigV4Authenticator.
type SigV4Config struct {
	// Region is this node's region; the credential scope must name it.
	Region string
	// AccountID, if set, is the account every credentials file must be for
	// (kmsd's -account-id): a file for another account is refused.
	AccountID string
	// File is the credentials file, read by NewSigV4Authenticator and
	// re-read by Reload. Credentials, if set, is used instead for the
	// first load (tests).
	File        string
	Credentials *CredentialsFile
	// MaxClockSkew defaults to DefaultMaxClockSkew.
	MaxClockSkew time.Duration
	// Now defaults to time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// SigV4Authenticator verifies AWS Signature Version 4 on every request
// against the principals of a credentials file, which Reload replaces
// atomically. The caller is the principal the access key id belongs to.
type SigV4Authenticator struct {
	region  string
	account string
	file    string
	skew    time.Duration
	now     func() time.Time
	log     *slog.Logger

	reloadMu sync.Mutex // serialises Reload
	set      atomic.Pointer[credentialSet]
}

// credentialSet is one loaded credentials file with its signing-key cache
// (so a reload drops the keys derived from replaced secrets).
type credentialSet struct {
	accountID string
	byID      map[string]*Credential

	mu   sync.Mutex
	keys map[signingKeyID]*signingKey
}

// signingKey is a derived SigV4 signing key with a pool of HMACs keyed
// with it: hmac.New costs two SHA-256 block computations and an
// allocation per request, while a keyed HMAC's Reset returns it to its
// keyed state. A hash.Hash is not safe for concurrent use, hence the pool.
type signingKey struct {
	key  []byte
	macs sync.Pool // of hash.Hash, hmac.New(sha256.New, key)
}

func newSigningKey(key []byte) *signingKey {
	k := &signingKey{key: key}
	k.macs.New = func() any { return hmac.New(sha256.New, key) }
	return k
}

type signingKeyID struct{ accessKeyID, date, region string }

// maxCachedSigningKeys bounds the cache; it is cleared when full. Only
// known access keys and dates within the clock skew reach it, so in
// practice it holds about (credentials x 2) keys.
const maxCachedSigningKeys = 4096

// NewSigV4Authenticator loads the credentials and returns the
// authenticator.
func NewSigV4Authenticator(cfg SigV4Config) (*SigV4Authenticator, error) {
	if cfg.Region == "" {
		return nil, errors.New("api: SigV4Config.Region is empty")
	}
	a := &SigV4Authenticator{
		region:  cfg.Region,
		account: cfg.AccountID,
		file:    cfg.File,
		skew:    cfg.MaxClockSkew,
		now:     cfg.Now,
		log:     cfg.Logger,
	}
	if a.skew <= 0 {
		a.skew = DefaultMaxClockSkew
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	cf := cfg.Credentials
	if cf == nil {
		if cfg.File == "" {
			return nil, errors.New("api: SigV4Config needs File or Credentials")
		}
		var err error
		if cf, err = LoadCredentialsFile(cfg.File); err != nil {
			return nil, err
		}
	}
	set, err := a.newSet(cf)
	if err != nil {
		return nil, err
	}
	a.set.Store(set)
	ids := set.ids()
	a.log.Info("SigV4 authentication enabled", "file", cfg.File, "region", a.region,
		"account_id", set.accountID, "credentials", len(ids), "access_key_ids", ids)
	if len(ids) == 0 {
		a.log.Warn("the credentials file lists no credentials: every request will be refused", "file", cfg.File)
	}
	return a, nil
}

func (a *SigV4Authenticator) newSet(cf *CredentialsFile) (*credentialSet, error) {
	if err := cf.validate(); err != nil {
		return nil, err
	}
	if a.account != "" && cf.AccountID != a.account {
		return nil, fmt.Errorf("credentials are for account %s but this region serves account %s (-account-id)", cf.AccountID, a.account)
	}
	s := &credentialSet{accountID: cf.AccountID, byID: make(map[string]*Credential, len(cf.Credentials))}
	for i := range cf.Credentials {
		c := cf.Credentials[i]
		s.byID[c.AccessKeyID] = &c
	}
	return s, nil
}

func (s *credentialSet) ids() []string {
	ids := make([]string, 0, len(s.byID))
	for id := range s.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Reload re-reads the credentials file. On error (unreadable or invalid
// file) the current credentials stay in force; the error is logged and
// returned. On success it logs which access key ids were added, removed or
// changed.
func (a *SigV4Authenticator) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if a.file == "" {
		return errors.New("api: no credentials file to reload")
	}
	cf, err := LoadCredentialsFile(a.file)
	var set *credentialSet
	if err == nil {
		set, err = a.newSet(cf)
	}
	if err != nil {
		a.log.Error("credentials reload failed; keeping the previous credentials", "file", a.file, "err", err)
		return err
	}
	old := a.set.Swap(set)
	var added, removed, changed []string
	for id, c := range set.byID {
		switch o, ok := old.byID[id]; {
		case !ok:
			added = append(added, id)
		case o.SecretAccessKey != c.SecretAccessKey || o.ARN != c.ARN || string(o.Policy) != string(c.Policy):
			changed = append(changed, id)
		}
	}
	for id := range old.byID {
		if _, ok := set.byID[id]; !ok {
			removed = append(removed, id)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	slices.Sort(changed)
	a.log.Info("credentials reloaded", "file", a.file, "account_id", set.accountID, "credentials", len(set.byID),
		"added", added, "removed", removed, "changed", changed)
	if len(set.byID) == 0 {
		a.log.Warn("the credentials file lists no credentials: every request will be refused", "file", a.file)
	}
	return nil
}

// Lookup returns the credential of an access key id (for the policy
// evaluator, which needs its Policy).
func (a *SigV4Authenticator) Lookup(accessKeyID string) (Credential, bool) {
	c, ok := a.set.Load().byID[accessKeyID]
	if !ok {
		return Credential{}, false
	}
	return *c, true
}

// Authenticate implements Authenticator.
func (a *SigV4Authenticator) Authenticate(r *http.Request, body []byte) (service.Caller, error) {
	caller, akid, err := a.verify(r, body)
	if err != nil {
		var se *service.Error
		if errors.As(err, &se) {
			level := slog.LevelInfo
			if akid == "" { // no or malformed Authorization: nothing to attribute
				level = slog.LevelDebug
			}
			a.log.Log(r.Context(), level, "request authentication failed", "access_key_id", akid,
				"error_type", se.Kind.Error(), "reason", se.Message, "source", r.RemoteAddr)
		}
	}
	return caller, err
}

func invalidSig(msg string) error { return apiError(ErrInvalidSignature, msg) }

func (a *SigV4Authenticator) verify(r *http.Request, body []byte) (service.Caller, string, error) {
	h, t, err := parseSignedRequest(r)
	if err != nil {
		return service.Caller{}, "", err
	}
	akid := h.AccessKeyID
	amzDate := r.Header.Get("X-Amz-Date")
	// Credential scope: the date is X-Amz-Date's, the region ours (service
	// and terminator are checked by parseSignedRequest).
	var dateBuf [8]byte
	if d := t.AppendFormat(dateBuf[:0], "20060102"); h.Date != string(d) {
		return service.Caller{}, akid, invalidSig("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '" +
			h.Date + "' != '" + string(d) + "', from '" + t.Format(amzDateLayout) + "'.")
	}
	if h.Region != a.region {
		return service.Caller{}, akid, invalidSig("Credential should be scoped to a valid region, not '" + h.Region + "'.")
	}
	// Clock skew, either way. This also bounds the replay of a captured
	// request to the skew window.
	now := a.now().UTC()
	if early := now.Add(-a.skew); t.Before(early) {
		return service.Caller{}, akid, invalidSig(fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %s.)",
			t.Format(amzDateLayout), early.Format(amzDateLayout), now.Format(amzDateLayout), skewText(a.skew)))
	}
	if late := now.Add(a.skew); t.After(late) {
		return service.Caller{}, akid, invalidSig(fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + %s.)",
			t.Format(amzDateLayout), late.Format(amzDateLayout), now.Format(amzDateLayout), skewText(a.skew)))
	}
	// Temporary credentials are not issued here.
	if _, ok := r.Header["X-Amz-Security-Token"]; ok {
		return service.Caller{}, akid, apiError(ErrUnrecognizedClient, msgUnrecognizedClient)
	}
	set := a.set.Load()
	cred, ok := set.byID[akid]
	if !ok {
		return service.Caller{}, akid, apiError(ErrUnrecognizedClient, msgUnrecognizedClient)
	}
	// Payload: always the hash of the body received. X-Amz-Content-Sha256,
	// when sent, must agree with it; KMS does not take unsigned payloads.
	sum := sha256.Sum256(body)
	var payloadHash [2 * sha256.Size]byte
	hex.Encode(payloadHash[:], sum[:])
	if vals, ok := r.Header["X-Amz-Content-Sha256"]; ok {
		v := ""
		if len(vals) == 1 {
			v = strings.TrimSpace(vals[0])
		}
		switch {
		case v == "UNSIGNED-PAYLOAD" || strings.HasPrefix(v, "STREAMING-"):
			return service.Caller{}, akid, invalidSig("This service requires a signed payload: x-amz-content-sha256 must be the SHA-256 of the body, not UNSIGNED-PAYLOAD or a streaming payload.")
		case !strings.EqualFold(v, string(payloadHash[:])):
			return service.Caller{}, akid, invalidSig("The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
	}
	bp := canonicalBufs.Get().(*[]byte)
	creq, err := appendCanonicalRequest((*bp)[:0], r, h.SignedHeaders, payloadHash[:])
	crSum := sha256.Sum256(creq)
	if cap(creq) <= maxPooledCanonicalBytes {
		*bp = creq[:0]
		canonicalBufs.Put(bp)
	}
	if err != nil {
		return service.Caller{}, akid, invalidSig(msgSignatureMismatch)
	}
	// The string to sign is written into the HMAC piece by piece:
	// AWS4-HMAC-SHA256 \n X-Amz-Date \n scope \n hex(SHA-256(canonical request)).
	var crHex [2 * sha256.Size]byte
	hex.Encode(crHex[:], crSum[:])
	key := set.signingKey(cred, h.Date, h.Region, h.Service)
	mac := key.macs.Get().(hash.Hash)
	mac.Reset()
	var sts [256]byte
	b := append(sts[:0], SigV4Algorithm+"\n"...)
	b = append(b, amzDate...)
	b = append(b, '\n')
	b = append(b, h.Date...)
	b = append(b, '/')
	b = append(b, h.Region...)
	b = append(b, '/')
	b = append(b, h.Service...)
	b = append(b, "/aws4_request\n"...)
	b = append(b, crHex[:]...)
	mac.Write(b)
	var macSum [sha256.Size]byte
	var want [2 * sha256.Size]byte
	hex.Encode(want[:], mac.Sum(macSum[:0]))
	key.macs.Put(mac)
	if !hmac.Equal(want[:], []byte(h.Signature)) {
		return service.Caller{}, akid, invalidSig(msgSignatureMismatch)
	}
	return service.Caller{AccessKeyID: akid, ARN: cred.ARN, AccountID: set.accountID, Policy: string(cred.Policy)}, akid, nil
}

// canonicalBufs holds the buffers canonical requests are built in.
var canonicalBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledCanonicalBytes bounds the canonical-request buffers kept for
// reuse (a client chooses the size of its headers).
const maxPooledCanonicalBytes = 16 << 10

func skewText(d time.Duration) string {
	if d%time.Minute == 0 {
		return strconv.FormatInt(int64(d/time.Minute), 10) + " min"
	}
	return d.String()
}

// signingKey returns HMAC chain AWS4+secret → date → region → service →
// aws4_request, cached per (access key id, date, region). The service is
// always kms here (checked before), so it is not part of the cache key.
func (s *credentialSet) signingKey(c *Credential, date, region, svc string) *signingKey {
	id := signingKeyID{c.AccessKeyID, date, region}
	s.mu.Lock()
	k, ok := s.keys[id]
	s.mu.Unlock()
	if ok {
		return k
	}
	k = newSigningKey(deriveSigningKey(c.SecretAccessKey, date, region, svc))
	s.mu.Lock()
	if s.keys == nil || len(s.keys) >= maxCachedSigningKeys {
		s.keys = make(map[signingKeyID]*signingKey)
	}
	s.keys[id] = k
	s.mu.Unlock()
	return k
}

func deriveSigningKey(secret, date, region, svc string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, svc)
	return hmacSHA256(k, "aws4_request")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// appendCanonicalRequest appends to b the SigV4 canonical request of r as
// the client saw it: method, path (URI-encoded again, as for every service
// but S3), sorted query, the signed headers in the order listed, and the
// payload hash.
func appendCanonicalRequest(b []byte, r *http.Request, signed []string, payloadHash []byte) ([]byte, error) {
	b = append(b, r.Method...)
	b = append(b, '\n')
	path := r.URL.EscapedPath()
	if r.URL.Opaque != "" || path == "" {
		path = "/"
	}
	b = appendURIEncoded(b, path, true)
	b = append(b, '\n')
	q, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return b, err
	}
	b = append(b, q...)
	b = append(b, '\n')
	for _, name := range signed {
		b = append(b, name...)
		b = append(b, ':')
		b = appendCanonicalHeaderValue(b, r, name)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	for i, name := range signed {
		if i > 0 {
			b = append(b, ';')
		}
		b = append(b, name...)
	}
	b = append(b, '\n')
	b = append(b, payloadHash...)
	return b, nil
}

func canonicalQuery(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return "", err
	}
	type kv struct{ k, v string }
	params := make([]kv, 0, len(vals))
	for k, vs := range vals {
		ek := uriEncode(k, false)
		for _, v := range vs {
			params = append(params, kv{ek, uriEncode(v, false)})
		}
	}
	sort.Slice(params, func(i, j int) bool {
		if params[i].k != params[j].k {
			return params[i].k < params[j].k
		}
		return params[i].v < params[j].v
	})
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String(), nil
}

// appendCanonicalHeaderValue appends the value of a signed header: its
// values joined by commas, each trimmed with inner runs of spaces
// collapsed. Go moves Host out of the header map, and may Content-Length.
func appendCanonicalHeaderValue(b []byte, r *http.Request, name string) []byte {
	if name == "host" {
		return appendCollapsed(b, strings.TrimSpace(r.Host))
	}
	src := r.Header.Values(name)
	if len(src) == 0 && name == "content-length" && r.ContentLength >= 0 {
		return strconv.AppendInt(b, r.ContentLength, 10)
	}
	for i, v := range src {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCollapsed(b, strings.TrimSpace(v))
	}
	return b
}

// appendCollapsed appends s with inner runs of spaces collapsed to one.
func appendCollapsed(b []byte, s string) []byte {
	prevSpace := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' && prevSpace {
			continue
		}
		prevSpace = c == ' '
		b = append(b, c)
	}
	return b
}

// uriEncode percent-encodes every byte but the unreserved characters
// (A-Z a-z 0-9 - _ . ~) and, if keepSlash, '/'. Hex digits are upper case.
func uriEncode(s string, keepSlash bool) string {
	return string(appendURIEncoded(make([]byte, 0, len(s)), s, keepSlash))
}

// appendURIEncoded appends uriEncode(s, keepSlash) to b.
func appendURIEncoded(b []byte, s string, keepSlash bool) []byte {
	const hexUpper = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') ||
			c == '-' || c == '_' || c == '.' || c == '~' || (keepSlash && c == '/') {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexUpper[c>>4], hexUpper[c&15])
	}
	return b
}
