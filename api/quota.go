package api

import (
	"bytes"
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"time"
)

// Request quotas: per-principal token buckets, one per (principal, quota
// group), answered with ThrottlingException (HTTP 400), which the AWS SDKs
// retry with backoff. The groups and default rates follow AWS KMS's request
// quotas (https://docs.aws.amazon.com/kms/latest/developerguide/requests-per-second.html),
// with one difference: AWS counts per account and Region, kmsd per principal
// (IAM ARN, else access key id) and per node.

// Quota groups that several operations share. Every other operation is its
// own group, named after the operation (e.g. "CreateKey").
const (
	// QuotaCryptographic is the shared quota of the symmetric cryptographic
	// operations (AWS: "Cryptographic operations (symmetric) request rate").
	QuotaCryptographic = "Cryptographic"
	// QuotaCryptographicHMAC is the shared quota of GenerateMac/VerifyMac.
	QuotaCryptographicHMAC = "CryptographicHMAC"
	// QuotaCryptographicAsymmetric is the shared quota of the operations
	// that only asymmetric keys serve. AWS also charges Encrypt/Decrypt
	// with an asymmetric key here; kmsd does not know the key type before
	// the service call, so those count as QuotaCryptographic.
	QuotaCryptographicAsymmetric = "CryptographicAsymmetric"
)

// quotaGroups maps the operations that share a quota to their group.
var quotaGroups = map[string]string{
	"Encrypt":                             QuotaCryptographic,
	"Decrypt":                             QuotaCryptographic,
	"ReEncrypt":                           QuotaCryptographic,
	"GenerateDataKey":                     QuotaCryptographic,
	"GenerateDataKeyWithoutPlaintext":     QuotaCryptographic,
	"GenerateRandom":                      QuotaCryptographic,
	"GenerateMac":                         QuotaCryptographicHMAC,
	"VerifyMac":                           QuotaCryptographicHMAC,
	"Sign":                                QuotaCryptographicAsymmetric,
	"Verify":                              QuotaCryptographicAsymmetric,
	"GenerateDataKeyPair":                 QuotaCryptographicAsymmetric,
	"GenerateDataKeyPairWithoutPlaintext": QuotaCryptographicAsymmetric,
}

// QuotaGroup returns the quota group of operation op.
func QuotaGroup(op string) string {
	if g, ok := quotaGroups[op]; ok {
		return g
	}
	return op
}

// AWSQuotas returns AWS KMS's default request quotas (requests per second)
// by quota group. The shared symmetric cryptographic quota is AWS's base
// value (5,500; 10,000 to 100,000 in the larger Regions); the management
// operations keep AWS's low values (CreateKey 5, ListKeys 100, ...).
// Operations not listed are not limited.
func AWSQuotas() map[string]float64 {
	return map[string]float64{
		QuotaCryptographic:           5500,
		QuotaCryptographicHMAC:       2000,
		QuotaCryptographicAsymmetric: 500, // RSA keys; ECC keys have 300

		"CancelKeyDeletion":         5,
		"CreateAlias":               5,
		"CreateGrant":               50,
		"CreateKey":                 5,
		"DeleteAlias":               5,
		"DeleteImportedKeyMaterial": 5,
		"DescribeKey":               2000,
		"DisableKey":                5,
		"DisableKeyRotation":        5,
		"EnableKey":                 5,
		"EnableKeyRotation":         5,
		"GetKeyPolicy":              1000,
		"GetKeyRotationStatus":      1000,
		"GetParametersForImport":    1,
		"GetPublicKey":              2000,
		"ImportKeyMaterial":         5,
		"ListAliases":               100,
		"ListGrants":                100,
		"ListKeyPolicies":           100,
		"ListKeyRotations":          100,
		"ListKeys":                  100,
		"ListResourceTags":          100,
		"ListRetirableGrants":       100,
		"PutKeyPolicy":              5,
		"RetireGrant":               30,
		"RevokeGrant":               30,
		"RotateKeyOnDemand":         5,
		"ScheduleKeyDeletion":       5,
		"TagResource":               10,
		"UntagResource":             10,
		"UpdateAlias":               5,
		"UpdateKeyDescription":      5,
	}
}

// Quotas is a quota configuration: requests per second by quota group.
// A principal's rate for a group is Principals[principal][group] if set,
// else Default[group]; a group with no rate, or a rate <= 0, is not limited.
// Its JSON form is the -quota-file format:
//
//	{"default": {"Cryptographic": 50000, "CreateKey": 5},
//	 "principals": {"arn:aws:iam::111122223333:user/batch": {"CreateKey": 50}}}
//
// Principals are named by IAM ARN or by access key id (the ARN wins).
type Quotas struct {
	Default    map[string]float64            `json:"default"`
	Principals map[string]map[string]float64 `json:"principals"`
}

// ParseQuotas decodes a quota file. Its "default" rates are laid over base
// (nil: none), so a file need only name the quotas it changes. Unknown
// members and groups that no operation uses are errors: a typo must not
// silently leave a quota unlimited.
func ParseQuotas(data []byte, base map[string]float64) (Quotas, error) {
	var q Quotas
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		return Quotas{}, fmt.Errorf("quota file: %w", err)
	}
	def := make(map[string]float64, len(base)+len(q.Default))
	for g, r := range base {
		def[g] = r
	}
	for g, r := range q.Default {
		def[g] = r
	}
	q.Default = def
	return q, q.Validate()
}

// LoadQuotaFile reads and parses a quota file (see ParseQuotas).
func LoadQuotaFile(path string, base map[string]float64) (Quotas, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Quotas{}, fmt.Errorf("quota file: %w", err)
	}
	return ParseQuotas(data, base)
}

// knownQuotaGroup reports whether some operation counts against group g.
func knownQuotaGroup(g string) bool {
	switch g {
	case QuotaCryptographic, QuotaCryptographicHMAC, QuotaCryptographicAsymmetric:
		return true
	}
	if _, shared := quotaGroups[g]; shared {
		return false // e.g. "Encrypt": counted under "Cryptographic"
	}
	_, ok := AWSQuotas()[g]
	return ok
}

// Validate reports unknown quota groups and rates that are not numbers.
func (q Quotas) Validate() error {
	var errs []error
	check := func(where string, m map[string]float64) {
		names := make([]string, 0, len(m))
		for g := range m {
			names = append(names, g)
		}
		sort.Strings(names)
		for _, g := range names {
			r := m[g]
			if !knownQuotaGroup(g) {
				hint := ""
				if sg, ok := quotaGroups[g]; ok {
					hint = fmt.Sprintf(" (%s counts against %q)", g, sg)
				}
				errs = append(errs, fmt.Errorf("quota file: %s: unknown quota group %q%s", where, g, hint))
			}
			if math.IsNaN(r) || math.IsInf(r, 0) {
				errs = append(errs, fmt.Errorf("quota file: %s: %q: rate must be a finite number", where, g))
			}
		}
	}
	check("default", q.Default)
	for p, m := range q.Principals {
		if p == "" {
			errs = append(errs, errors.New("quota file: principals: empty principal name"))
		}
		check("principals."+p, m)
	}
	return errors.Join(errs...)
}

// DefaultQuotaMaxPrincipals is QuotaLimiterConfig.MaxPrincipals when zero.
const DefaultQuotaMaxPrincipals = 10000

// quotaIdle is how long a principal's buckets are kept after its last
// request. Buckets refill completely within a second (burst = one second
// of rate), so dropping them after this long changes no answer.
const quotaIdle = time.Minute

// QuotaLimiterConfig configures a QuotaLimiter.
type QuotaLimiterConfig struct {
	Quotas Quotas
	// MaxPrincipals caps the principals whose buckets are tracked (0:
	// DefaultQuotaMaxPrincipals). Past it the least recently seen
	// principal's buckets are dropped (it starts again with full buckets).
	MaxPrincipals int
	// Now is the clock (nil: time.Now, whose readings are monotonic).
	Now func() time.Time
}

// QuotaLimiter decides whether a principal may make a request now. It is
// safe for concurrent use; memory is bounded by MaxPrincipals.
type QuotaLimiter struct {
	quotas Quotas
	max    int
	now    func() time.Time

	mu    sync.Mutex
	lru   *list.List // of *quotaPrincipal, most recently seen first
	index map[string]*list.Element
}

// quotaPrincipal is one principal's buckets.
type quotaPrincipal struct {
	name     string
	lastSeen time.Time
	buckets  map[string]*tokenBucket
}

// tokenBucket holds up to burst tokens, refilled continuously at rate per
// second; a request takes one.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// NewQuotaLimiter returns a limiter for cfg.
func NewQuotaLimiter(cfg QuotaLimiterConfig) (*QuotaLimiter, error) {
	if err := cfg.Quotas.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxPrincipals < 0 {
		return nil, fmt.Errorf("api: QuotaLimiterConfig.MaxPrincipals %d is negative", cfg.MaxPrincipals)
	}
	l := &QuotaLimiter{quotas: cfg.Quotas, max: cfg.MaxPrincipals, now: cfg.Now,
		lru: list.New(), index: make(map[string]*list.Element)}
	if l.max == 0 {
		l.max = DefaultQuotaMaxPrincipals
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// rate returns principal's rate for group (<= 0: unlimited).
func (l *QuotaLimiter) rate(principal, group string) float64 {
	if m, ok := l.quotas.Principals[principal]; ok {
		if r, ok := m[group]; ok {
			return r
		}
	}
	return l.quotas.Default[group]
}

// burst is the bucket size for rate: one second of requests, at least one.
func burst(rate float64) float64 { return math.Max(1, rate) }

// Allow reports whether principal may make a request of operation op now,
// taking a token if so. names are the principal's names, most specific
// first (IAM ARN, access key id): the first one the quota configuration
// lists decides the rates and keys the buckets; if it lists none, the
// first non-empty name keys them.
func (l *QuotaLimiter) Allow(op string, names ...string) bool {
	return l.AllowN(op, 1, names...) == 1
}

// AllowN is Allow for n requests of op at once (the items of a batch): it
// takes as many of the n tokens as the principal's bucket holds and
// returns how many it took, n when op is not limited for the principal.
func (l *QuotaLimiter) AllowN(op string, n int, names ...string) int {
	if n <= 0 {
		return 0
	}
	key, principal := "", ""
	for _, n := range names {
		if n == "" {
			continue
		}
		if key == "" {
			key = n
		}
		if _, ok := l.quotas.Principals[n]; ok && principal == "" {
			principal = n
		}
	}
	if key == "" {
		return n // unauthenticated: no principal to charge
	}
	if principal != "" {
		key = principal // a listed name has its own budget
	}
	group := QuotaGroup(op)
	rate := l.rate(principal, group)
	if rate <= 0 {
		return n
	}
	now := l.now()

	l.mu.Lock()
	defer l.mu.Unlock()
	l.evictIdle(now)
	var p *quotaPrincipal
	if e, ok := l.index[key]; ok {
		l.lru.MoveToFront(e)
		p = e.Value.(*quotaPrincipal)
	} else {
		for l.lru.Len() >= l.max {
			l.removeElement(l.lru.Back())
		}
		p = &quotaPrincipal{name: key, buckets: make(map[string]*tokenBucket, 1)}
		l.index[key] = l.lru.PushFront(p)
	}
	p.lastSeen = now
	b := p.buckets[group]
	if b == nil {
		b = &tokenBucket{tokens: burst(rate), last: now}
		p.buckets[group] = b
	}
	return b.take(rate, now, n)
}

// take refills b up to now and takes up to n whole tokens; it returns how
// many it took.
func (b *tokenBucket) take(rate float64, now time.Time, n int) int {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(burst(rate), b.tokens+el.Seconds()*rate)
		b.last = now
	}
	took := int(math.Min(float64(n), math.Floor(b.tokens)))
	b.tokens -= float64(took)
	return took
}

// evictIdle drops principals unseen for quotaIdle (a few per call, from the
// least recently seen end, so the cost stays amortised O(1)).
func (l *QuotaLimiter) evictIdle(now time.Time) {
	for range 4 {
		e := l.lru.Back()
		if e == nil || now.Sub(e.Value.(*quotaPrincipal).lastSeen) < quotaIdle {
			return
		}
		l.removeElement(e)
	}
}

func (l *QuotaLimiter) removeElement(e *list.Element) {
	p := l.lru.Remove(e).(*quotaPrincipal)
	delete(l.index, p.name)
}

// Tracked returns the number of principals whose buckets are held.
func (l *QuotaLimiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// throttleMessage is AWS KMS's ThrottlingException message.
const throttleMessage = "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."

func errThrottled() error { return apiError(ErrThrottling, throttleMessage) }

// QuotaLimiterFor builds the limiter of kmsd's -quota and -quota-file
// flags: nil (no quotas) for mode "off"; for "aws", AWSQuotas with file's
// rates (if file is not "") laid over them.
func QuotaLimiterFor(mode, file string) (*QuotaLimiter, error) {
	switch mode {
	case "off":
		if file != "" {
			return nil, errors.New("quota file given with quotas off")
		}
		return nil, nil
	case "aws":
	default:
		return nil, fmt.Errorf("quota mode %q: want off or aws", mode)
	}
	q := Quotas{Default: AWSQuotas()}
	if file != "" {
		var err error
		if q, err = LoadQuotaFile(file, q.Default); err != nil {
			return nil, err
		}
	}
	return NewQuotaLimiter(QuotaLimiterConfig{Quotas: q})
}
