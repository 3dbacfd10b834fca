// Package load is kmsd's load generator: it drives a set of kmsd (or any
// AWS KMS compatible) endpoints with the AWS SDK for Go v2, or with
// hand-built SigV4-signed requests (Config.Client "raw"), under a weighted
// operation mix and a fixed concurrency, and measures throughput, latency
// percentiles, errors by type, and the CPU the servers (from each node's
// /metrics process_cpu_seconds_total) and the client itself spent per
// operation. The command is bench/cmd/load; bench/README.md explains the
// numbers.
package load

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/kmsd/kmsd/kmsdclient"
)

// Config is one load run.
type Config struct {
	Endpoints       []string      // base URLs, e.g. http://127.0.0.1:8080
	Region          string        // default us-east-1
	AccessKeyID     string        // SigV4 credentials (required)
	SecretAccessKey string        //
	SessionToken    string        // optional
	Mix             Mix           // required
	Concurrency     int           // workers; worker i uses endpoint i mod len(Endpoints)
	Duration        time.Duration // measured window
	Warmup          time.Duration // load before the measured window, not counted
	KeyID           string        // "" = create a key during setup
	Timeout         time.Duration // per request; default 10s
	PlaintextSize   int           // bytes per Encrypt; default 32
	Progress        io.Writer     // a line per second while running; nil = quiet
	// BatchSize is the number of items per request of the batch ops
	// (BatchGenerateDataKey, ...); default and at most kmsdclient.MaxItems.
	BatchSize int
	// Client is how requests are sent: ClientSDK (default) or ClientRaw.
	// Setup (CreateKey, DescribeKey, the setup ciphertexts) always uses
	// the SDK.
	Client string
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

func summarize(h *Histogram) Latency {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return Latency{
		Mean: ms(h.Mean()), P50: ms(h.Quantile(0.50)), P95: ms(h.Quantile(0.95)),
		P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)), Max: ms(h.Max()),
	}
}

// OpResult is one operation's figures over the measured window. Latency
// covers successful requests only. Items are what the requests produced
// (data keys, ciphertexts, plaintexts): one per successful single-operation
// request, one per successful item of a batch request (items of failed
// requests count nowhere; items that failed alone count as ItemErrors).
type OpResult struct {
	OK               uint64            `json:"ok"`
	Errors           uint64            `json:"errors"`
	Throughput       float64           `json:"ok_per_second"`
	Latency          Latency           `json:"latency"`
	ErrorsByType     map[string]uint64 `json:"errors_by_type,omitempty"`
	Items            uint64            `json:"items_ok"`
	ItemErrors       uint64            `json:"item_errors,omitempty"`
	ItemsPerSecond   float64           `json:"items_per_second"`
	ItemErrorsByType map[string]uint64 `json:"item_errors_by_type,omitempty"`
}

// EndpointResult counts one endpoint's requests over the measured window.
type EndpointResult struct {
	Endpoint string `json:"endpoint"`
	OK       uint64 `json:"ok"`
	Errors   uint64 `json:"errors"`
}

// NodeCPUDelta is one node's CPU over the measured window.
type NodeCPUDelta struct {
	Endpoint string  `json:"endpoint"`
	NodeID   string  `json:"node_id,omitempty"`
	Seconds  float64 `json:"cpu_seconds"`
	Cores    float64 `json:"cores"` // Seconds / wall seconds between the scrapes
	Error    string  `json:"error,omitempty"`
}

// ServerCPU is the servers' CPU over the measured window. Known is false
// when any node's /metrics could not be read at both ends of the window
// (the per-op figure would otherwise undercount); Nodes still lists what
// was read.
type ServerCPU struct {
	Known        bool           `json:"known"`
	Seconds      float64        `json:"cpu_seconds,omitempty"`
	Cores        float64        `json:"cores,omitempty"`
	MicrosPerOp  float64        `json:"cpu_us_per_op,omitempty"`   // per request, errors included
	MicrosPerItm float64        `json:"cpu_us_per_item,omitempty"` // per item produced (see OpResult)
	Nodes        []NodeCPUDelta `json:"nodes"`
	UnknownCause string         `json:"unknown_cause,omitempty"`
}

// ClientCPU is this process's CPU over the measured window.
type ClientCPU struct {
	Known       bool    `json:"known"`
	Seconds     float64 `json:"cpu_seconds"`
	Cores       float64 `json:"cores"`
	MicrosPerOp float64 `json:"cpu_us_per_op"`
}

// Second is one second of the timeline (warm-up included).
type Second struct {
	T         float64 `json:"t"` // seconds since the start of the load, at the end of the interval
	Phase     string  `json:"phase"`
	OK        uint64  `json:"ok"`
	Errors    uint64  `json:"errors"`
	OKPerSec  float64 `json:"ok_per_second"`
	ItemsPS   float64 `json:"items_per_second"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	Intervals float64 `json:"interval_s"`
}

// Result is a finished run.
type Result struct {
	Endpoints       []string             `json:"endpoints"`
	Client          string               `json:"client"` // ClientSDK or ClientRaw
	Mix             string               `json:"mix"`
	Concurrency     int                  `json:"concurrency"`
	Warmup          string               `json:"warmup"`
	Duration        string               `json:"duration"`
	KeyID           string               `json:"key_id"`
	KeyCreated      bool                 `json:"key_created"`
	Start           time.Time            `json:"start"`
	MeasuredSeconds float64              `json:"measured_seconds"`
	Interrupted     bool                 `json:"interrupted,omitempty"`
	OK              uint64               `json:"ok"`
	Errors          uint64               `json:"errors"`
	Throughput      float64              `json:"ok_per_second"`
	BatchSize       int                  `json:"batch_size,omitempty"` // items per batch request, when the mix has batch ops
	Items           uint64               `json:"items_ok"`
	ItemsPerSecond  float64              `json:"items_per_second"`
	Latency         Latency              `json:"latency"`
	Ops             map[string]*OpResult `json:"ops"`
	ErrorsByType    map[string]uint64    `json:"errors_by_type"`
	ErrorExamples   map[string]string    `json:"error_examples,omitempty"`
	PerEndpoint     []EndpointResult     `json:"per_endpoint"`
	ServerCPU       ServerCPU            `json:"server_cpu"`
	ClientCPU       ClientCPU            `json:"client_cpu"`
	Timeline        []Second             `json:"timeline"`
}

const (
	phaseWarmup = iota
	phaseMeasure
	phaseDone
)

var phaseNames = [...]string{"warmup", "measure", "done"}

type opStats struct {
	hist       Histogram
	ok         uint64
	errors     uint64
	byType     map[string]uint64
	items      uint64
	itemErrors uint64
	itemByType map[string]uint64
}

// recorder collects every completed request under one mutex (a few µs of
// lock time per thousand requests: not a bottleneck at kmsd's rates).
type recorder struct {
	mu        sync.Mutex
	phase     int
	ops       map[string]*opStats
	all       Histogram
	byType    map[string]uint64
	examples  map[string]string
	endpoints []EndpointResult

	sec      Histogram
	secOK    uint64
	secErr   uint64
	secItems uint64
	lastT    float64
	totalOK  uint64
	totalEr  uint64
	line     []Second
}

func newRecorder(endpoints []string, mix Mix) *recorder {
	r := &recorder{ops: map[string]*opStats{}, byType: map[string]uint64{}, examples: map[string]string{}}
	for _, e := range mix {
		r.ops[e.Op] = &opStats{byType: map[string]uint64{}, itemByType: map[string]uint64{}}
	}
	for _, ep := range endpoints {
		r.endpoints = append(r.endpoints, EndpointResult{Endpoint: ep})
	}
	return r
}

// record counts one request; out is what it produced (zero on error).
func (r *recorder) record(op string, ep int, d time.Duration, err error, out outcome) {
	var kind string
	if err != nil {
		kind = ClassifyError(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.phase == phaseDone {
		return
	}
	if err != nil {
		r.secErr++
		r.totalEr++
	} else {
		r.sec.Record(d)
		r.secOK++
		r.secItems += out.items
		r.totalOK++
	}
	if r.phase != phaseMeasure {
		return
	}
	s := r.ops[op]
	if err != nil {
		s.errors++
		s.byType[kind]++
		r.byType[kind]++
		r.endpoints[ep].Errors++
		if _, ok := r.examples[kind]; !ok {
			msg := err.Error()
			if len(msg) > 300 {
				msg = msg[:300] + "..."
			}
			r.examples[kind] = msg
		}
		return
	}
	s.ok++
	s.items += out.items
	s.itemErrors += out.itemErrors
	for k, n := range out.itemErrorTypes {
		s.itemByType[k] += n
	}
	s.hist.Record(d)
	r.all.Record(d)
	r.endpoints[ep].OK++
}

func (r *recorder) setPhase(p int) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
}

// rotate closes the current second at t (seconds since start), labelled
// with the phase its midpoint fell in (warm-up ends at warmup seconds).
func (r *recorder) rotate(t, warmup float64) Second {
	r.mu.Lock()
	defer r.mu.Unlock()
	iv := t - r.lastT
	phase := phaseMeasure
	if (r.lastT+t)/2 < warmup {
		phase = phaseWarmup
	}
	s := Second{T: t, Phase: phaseNames[phase], OK: r.secOK, Errors: r.secErr, Intervals: iv,
		P50: float64(r.sec.Quantile(0.5)) / 1e6, P99: float64(r.sec.Quantile(0.99)) / 1e6}
	if iv > 0 {
		s.OKPerSec = float64(r.secOK) / iv
		s.ItemsPS = float64(r.secItems) / iv
	}
	r.line = append(r.line, s)
	r.sec = Histogram{}
	r.secOK, r.secErr, r.secItems = 0, 0, 0
	r.lastT = t
	return s
}

// ClassifyError names an error for the errors-by-type table: the AWS error
// code (e.g. ThrottlingException, KMSInternalException) when the server
// answered, else the transport failure.
func ClassifyError(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() != "" {
		return ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return fmt.Sprintf("HTTP%d", re.HTTPStatusCode())
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "Timeout"
	case errors.Is(err, context.Canceled):
		return "Canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "ConnectionRefused"
	case errors.Is(err, syscall.ECONNRESET):
		return "ConnectionReset"
	case errors.Is(err, syscall.EPIPE):
		return "BrokenPipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "Timeout"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return "NetError"
	}
	return "OtherError"
}

// target is one endpoint's clients.
type target struct {
	url    string
	client *kms.Client
	batch  *kmsdclient.Client
	// Raw mode: the URL requests are posted to, and the HTTP client the
	// SDK clients share.
	rawURL string
	hc     kmsdclient.HTTPClient
}

func (c *Config) defaults() error {
	if len(c.Endpoints) == 0 {
		return errors.New("no endpoints")
	}
	for i, e := range c.Endpoints {
		e = strings.TrimRight(strings.TrimSpace(e), "/")
		if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
			return fmt.Errorf("endpoint %q: want http://host:port or https://host:port", e)
		}
		c.Endpoints[i] = e
	}
	if len(c.Mix) == 0 {
		return errors.New("empty mix")
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return errors.New("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or pass -access-key and -secret-key (kmsd -dev accepts any, e.g. AWS_ACCESS_KEY_ID=dev AWS_SECRET_ACCESS_KEY=dev)")
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.Duration <= 0 {
		return errors.New("duration must be positive")
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.PlaintextSize <= 0 {
		c.PlaintextSize = 32
	}
	if c.BatchSize <= 0 {
		c.BatchSize = kmsdclient.MaxItems
	}
	if c.BatchSize > kmsdclient.MaxItems {
		return fmt.Errorf("batch size %d: kmsd takes at most %d items per request", c.BatchSize, kmsdclient.MaxItems)
	}
	switch c.Client {
	case "":
		c.Client = ClientSDK
	case ClientSDK, ClientRaw:
	default:
		return fmt.Errorf("client %q: want %s or %s", c.Client, ClientSDK, ClientRaw)
	}
	return nil
}

// NewHTTPClient is the SDK's buildable client with keep-alives and an idle
// pool large enough that each of concurrency workers keeps its connection.
func NewHTTPClient(concurrency int, timeout time.Duration) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithTimeout(timeout).
		WithTransportOptions(func(tr *http.Transport) {
			tr.DisableKeepAlives = false
			tr.MaxIdleConns = 2*concurrency + 16
			tr.MaxIdleConnsPerHost = concurrency + 8
			tr.MaxConnsPerHost = 0
			tr.IdleConnTimeout = 90 * time.Second
		})
}

func newTargets(cfg *Config) ([]target, error) {
	hc := NewHTTPClient(cfg.Concurrency, cfg.Timeout)
	creds := credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)
	var ts []target
	for _, ep := range cfg.Endpoints {
		bc, err := kmsdclient.New(kmsdclient.Options{Endpoint: ep, Region: cfg.Region, Credentials: creds,
			HTTPClient: hc, MaxAttempts: 1})
		if err != nil {
			return nil, err
		}
		ts = append(ts, target{url: ep, rawURL: ep + "/", hc: hc, batch: bc, client: kms.New(kms.Options{
			Region:       cfg.Region,
			BaseEndpoint: aws.String(ep),
			Credentials:  creds,
			HTTPClient:   hc,
			// One attempt: errors are counted, not retried away.
			RetryMaxAttempts: 1,
		})})
	}
	return ts, nil
}

// workload is what the workers share: the key, ciphertexts to decrypt, and
// the (read-only) items of the batch ops.
type workload struct {
	keyID       string
	ciphertexts [][]byte
	plaintext   []byte

	dataKeyItems []kmsdclient.DataKeyItem
	encryptItems []kmsdclient.EncryptItem
	decryptItems []kmsdclient.DecryptItem
}

// outcome is what one successful request produced.
type outcome struct {
	items          uint64            // data keys, ciphertexts or plaintexts
	itemErrors     uint64            // batch items that failed alone
	itemErrorTypes map[string]uint64 // their AWS error codes
}

// countItems tallies a batch response's per-item errors.
func countItems(n int, itemErr func(i int) *kmsdclient.ItemError) outcome {
	var o outcome
	for i := range n {
		if e := itemErr(i); e != nil {
			o.itemErrors++
			if o.itemErrorTypes == nil {
				o.itemErrorTypes = map[string]uint64{}
			}
			o.itemErrorTypes[e.Code]++
			continue
		}
		o.items++
	}
	return o
}

func (w *workload) do(ctx context.Context, t *target, op string, r *mrand.Rand) (outcome, error) {
	c := t.client
	var err error
	switch op {
	case "BatchGenerateDataKey":
		out, err := t.batch.BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: w.dataKeyItems})
		if err != nil {
			return outcome{}, err
		}
		return countItems(len(out.Results), func(i int) *kmsdclient.ItemError { return out.Results[i].Error }), nil
	case "BatchGenerateDataKeyWithoutPlaintext":
		out, err := t.batch.BatchGenerateDataKeyWithoutPlaintext(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: w.dataKeyItems})
		if err != nil {
			return outcome{}, err
		}
		return countItems(len(out.Results), func(i int) *kmsdclient.ItemError { return out.Results[i].Error }), nil
	case "BatchEncrypt":
		out, err := t.batch.BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{Items: w.encryptItems})
		if err != nil {
			return outcome{}, err
		}
		return countItems(len(out.Results), func(i int) *kmsdclient.ItemError { return out.Results[i].Error }), nil
	case "BatchDecrypt":
		out, err := t.batch.BatchDecrypt(ctx, &kmsdclient.BatchDecryptInput{Items: w.decryptItems})
		if err != nil {
			return outcome{}, err
		}
		return countItems(len(out.Results), func(i int) *kmsdclient.ItemError { return out.Results[i].Error }), nil
	}
	switch op {
	case "GenerateDataKey":
		_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &w.keyID, KeySpec: types.DataKeySpecAes256})
	case "GenerateDataKeyWithoutPlaintext":
		_, err = c.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: &w.keyID, KeySpec: types.DataKeySpecAes256})
	case "Encrypt":
		_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: &w.keyID, Plaintext: w.plaintext})
	case "Decrypt":
		_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: w.ciphertexts[r.IntN(len(w.ciphertexts))]})
	case "ReEncrypt":
		_, err = c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: w.ciphertexts[r.IntN(len(w.ciphertexts))], DestinationKeyId: &w.keyID})
	case "DescribeKey":
		_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &w.keyID})
	case "CreateKey":
		_, err = c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("kmsd bench load (CreateKey op)")})
	default:
		err = fmt.Errorf("unknown op %s", op)
	}
	if err != nil {
		return outcome{}, err
	}
	return outcome{items: 1}, nil
}

// setup creates the key (unless given), waits until every endpoint sees it,
// and encrypts the ciphertexts Decrypt and ReEncrypt need.
func setup(ctx context.Context, cfg *Config, ts []target) (*workload, bool, error) {
	w := &workload{keyID: cfg.KeyID, plaintext: make([]byte, cfg.PlaintextSize)}
	if _, err := rand.Read(w.plaintext); err != nil {
		return nil, false, err
	}
	created := false
	if w.keyID == "" {
		var lastErr error
		for _, t := range ts {
			cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			out, err := t.client.CreateKey(cctx, &kms.CreateKeyInput{Description: aws.String("kmsd bench load " + time.Now().UTC().Format(time.RFC3339))})
			cancel()
			if err == nil {
				w.keyID = aws.ToString(out.KeyMetadata.KeyId)
				created = true
				break
			}
			lastErr = fmt.Errorf("CreateKey on %s: %w", t.url, err)
		}
		if w.keyID == "" {
			return nil, false, lastErr
		}
	}
	// Every endpoint must know the key before the clock starts (a follower
	// may apply the CreateKey a little after the leader answered).
	deadline := time.Now().Add(15 * time.Second)
	for _, t := range ts {
		for {
			cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			_, err := t.client.DescribeKey(cctx, &kms.DescribeKeyInput{KeyId: &w.keyID})
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return nil, created, fmt.Errorf("key %s on %s: %w", w.keyID, t.url, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if cfg.Mix.Has("Decrypt") || cfg.Mix.Has("ReEncrypt") || cfg.Mix.Has("BatchDecrypt") {
		for i := 0; i < 32; i++ {
			pt := make([]byte, cfg.PlaintextSize)
			rand.Read(pt)
			t := ts[i%len(ts)]
			cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			out, err := t.client.Encrypt(cctx, &kms.EncryptInput{KeyId: &w.keyID, Plaintext: pt})
			cancel()
			if err != nil {
				return nil, created, fmt.Errorf("setup Encrypt on %s: %w", t.url, err)
			}
			w.ciphertexts = append(w.ciphertexts, out.CiphertextBlob)
		}
	}
	if cfg.Mix.HasBatch() {
		n := cfg.BatchSize
		w.dataKeyItems = make([]kmsdclient.DataKeyItem, n)
		w.encryptItems = make([]kmsdclient.EncryptItem, n)
		for i := range n {
			w.dataKeyItems[i] = kmsdclient.DataKeyItem{KeyId: w.keyID, KeySpec: "AES_256"}
			w.encryptItems[i] = kmsdclient.EncryptItem{KeyId: w.keyID, Plaintext: w.plaintext}
		}
		if len(w.ciphertexts) > 0 {
			w.decryptItems = make([]kmsdclient.DecryptItem, n)
			for i := range n {
				w.decryptItems[i] = kmsdclient.DecryptItem{CiphertextBlob: w.ciphertexts[i%len(w.ciphertexts)]}
			}
		}
	}
	return w, created, nil
}

type cpuMark struct {
	nodes  []NodeCPU
	errs   []error
	client time.Duration
	hasCli bool
	at     time.Time
}

func markCPU(ctx context.Context, hc *http.Client, endpoints []string) cpuMark {
	m := cpuMark{nodes: make([]NodeCPU, len(endpoints)), errs: make([]error, len(endpoints))}
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.nodes[i], m.errs[i] = ScrapeCPU(ctx, hc, ep)
		}()
	}
	wg.Wait()
	m.client, m.hasCli = ProcessCPU()
	m.at = time.Now()
	return m
}

// Run sets up, applies the load for Warmup+Duration, and returns the
// figures of the measured window. Cancelling ctx ends the run early (the
// result then covers the measured time so far, Interrupted set).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ts, err := newTargets(&cfg)
	if err != nil {
		return nil, err
	}
	wl, created, err := setup(ctx, &cfg, ts)
	if err != nil {
		return nil, err
	}
	var raw *rawWorkload
	if cfg.Client == ClientRaw {
		raw = newRawWorkload(&cfg, wl)
	}
	rec := newRecorder(cfg.Endpoints, cfg.Mix)
	metricsClient := &http.Client{Timeout: 5 * time.Second}

	var stop atomic.Bool
	var wg sync.WaitGroup
	pk := cfg.Mix.picker()
	start := time.Now()
	for i := 0; i < cfg.Concurrency; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), uint64(i)))
			ep := i % len(ts)
			tg := &ts[ep]
			do := wl.do
			if raw != nil {
				rw := &rawWorker{wl: raw}
				do = func(ctx context.Context, t *target, op string, r *mrand.Rand) (outcome, error) {
					return rw.do(ctx, t, op, r)
				}
			}
			for !stop.Load() {
				op := pk.pick(r)
				// Not derived from ctx: an interrupt lets requests in
				// flight finish rather than counting them as errors.
				rctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
				t0 := time.Now()
				out, err := do(rctx, tg, op, r)
				d := time.Since(t0)
				cancel()
				rec.record(op, ep, d, err, out)
			}
		}(i)
	}

	res := &Result{
		Endpoints: cfg.Endpoints, Client: cfg.Client, Mix: cfg.Mix.String(), Concurrency: cfg.Concurrency,
		Warmup: cfg.Warmup.String(), Duration: cfg.Duration.String(),
		KeyID: wl.keyID, KeyCreated: created, Start: start,
	}
	if cfg.Mix.HasBatch() {
		res.BatchSize = cfg.BatchSize
	}
	var begin, end cpuMark
	phase := phaseWarmup
	beginMeasure := func() {
		begin = markCPU(ctx, metricsClient, cfg.Endpoints)
		rec.setPhase(phaseMeasure)
		begin.at = time.Now()
		phase = phaseMeasure
	}
	warm := time.NewTimer(cfg.Warmup)
	if cfg.Warmup == 0 {
		warm.Stop()
		beginMeasure()
	}
	var endC <-chan time.Time
	if phase == phaseMeasure {
		endC = time.After(cfg.Duration)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	since := func() float64 { return time.Since(start).Seconds() }
loop:
	for {
		select {
		case <-tick.C:
			s := rec.rotate(since(), cfg.Warmup.Seconds())
			if cfg.Progress != nil {
				rec.mu.Lock()
				tok, terr := rec.totalOK, rec.totalEr
				rec.mu.Unlock()
				items := ""
				if cfg.Mix.HasBatch() {
					items = fmt.Sprintf("  %9.0f items/s", s.ItemsPS)
				}
				fmt.Fprintf(cfg.Progress, "[%5.1fs %-7s] %8.0f ok/s%s  p50 %7.2fms  p99 %7.2fms  errors %d  (total ok %d, errors %d)\n",
					s.T, s.Phase, s.OKPerSec, items, s.P50, s.P99, s.Errors, tok, terr)
			}
		case <-warm.C:
			beginMeasure()
			endC = time.After(cfg.Duration)
		case <-endC:
			break loop
		case <-ctx.Done():
			res.Interrupted = true
			break loop
		}
	}
	measured := phase == phaseMeasure
	endAt := time.Now()
	rec.setPhase(phaseDone)
	stop.Store(true)
	if t := since(); t-rec.lastT > 0.05 {
		rec.rotate(t, cfg.Warmup.Seconds())
	}
	if measured {
		end = markCPU(context.Background(), metricsClient, cfg.Endpoints)
	}
	wg.Wait()

	res.Timeline = rec.line
	if !measured {
		return res, nil
	}
	window := endAt.Sub(begin.at).Seconds()
	res.MeasuredSeconds = window
	res.Ops = map[string]*OpResult{}
	for op, s := range rec.ops {
		o := &OpResult{OK: s.ok, Errors: s.errors, Latency: summarize(&s.hist), ErrorsByType: s.byType,
			Items: s.items, ItemErrors: s.itemErrors, ItemErrorsByType: s.itemByType}
		if window > 0 {
			o.Throughput = float64(s.ok) / window
			o.ItemsPerSecond = float64(s.items) / window
		}
		if len(o.ErrorsByType) == 0 {
			o.ErrorsByType = nil
		}
		if len(o.ItemErrorsByType) == 0 {
			o.ItemErrorsByType = nil
		}
		res.Ops[op] = o
		res.OK += s.ok
		res.Errors += s.errors
		res.Items += s.items
	}
	if window > 0 {
		res.Throughput = float64(res.OK) / window
		res.ItemsPerSecond = float64(res.Items) / window
	}
	res.Latency = summarize(&rec.all)
	res.ErrorsByType = rec.byType
	if len(rec.examples) > 0 {
		res.ErrorExamples = rec.examples
	}
	res.PerEndpoint = rec.endpoints
	requests := float64(res.OK + res.Errors)

	// Server CPU: the sum over nodes, deduplicated by node id (two URLs
	// may reach the same node).
	sc := ServerCPU{Known: true}
	seen := map[string]bool{}
	for i, ep := range cfg.Endpoints {
		n := NodeCPUDelta{Endpoint: ep, NodeID: begin.nodes[i].NodeID}
		switch {
		case begin.errs[i] != nil:
			n.Error = begin.errs[i].Error()
		case end.errs[i] != nil:
			n.Error = end.errs[i].Error()
		}
		if n.Error != "" {
			sc.Known = false
			if sc.UnknownCause == "" {
				sc.UnknownCause = ep + ": " + n.Error
			}
			sc.Nodes = append(sc.Nodes, n)
			continue
		}
		n.Seconds = end.nodes[i].Seconds - begin.nodes[i].Seconds
		if dt := end.nodes[i].At.Sub(begin.nodes[i].At).Seconds(); dt > 0 {
			n.Cores = n.Seconds / dt
		}
		sc.Nodes = append(sc.Nodes, n)
		key := n.NodeID
		if key == "" {
			key = ep
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		sc.Seconds += n.Seconds
		sc.Cores += n.Cores
	}
	if sc.Known && requests > 0 {
		sc.MicrosPerOp = sc.Seconds / requests * 1e6
	}
	if sc.Known && res.Items > 0 {
		sc.MicrosPerItm = sc.Seconds / float64(res.Items) * 1e6
	}
	if !sc.Known {
		sc.Seconds, sc.Cores = 0, 0
	}
	res.ServerCPU = sc

	if begin.hasCli && end.hasCli {
		d := (end.client - begin.client).Seconds()
		res.ClientCPU = ClientCPU{Known: true, Seconds: d}
		if dt := end.at.Sub(begin.at).Seconds(); dt > 0 {
			res.ClientCPU.Cores = d / dt
		}
		if requests > 0 {
			res.ClientCPU.MicrosPerOp = d / requests * 1e6
		}
	}
	return res, nil
}
