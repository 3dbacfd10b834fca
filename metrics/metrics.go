// Package metrics owns kmsd's Prometheus metrics: their names, labels and
// buckets, the registry they live in, and the GET /metrics handler.
//
// A *Metrics has its own prometheus.Registry (the global default registry is
// never used), holding the Go runtime and process collectors and:
//
//	kmsd_requests_total{operation,outcome}       counter    KMS requests answered (ObserveRequest)
//	kmsd_request_duration_seconds{operation}     histogram  KMS request latency (ObserveRequest)
//	kmsd_fsm_apply_duration_seconds              histogram  FSM apply latency (ObserveApply)
//	kmsd_raft_state{state}                       gauge      1 for the node's Raft state, 0 for the others
//	kmsd_raft_applied_index                      gauge      last log index applied to the FSM
//	kmsd_raft_commit_index                       gauge      last committed log index
//	kmsd_raft_last_contact_seconds               gauge      time since the last contact with the leader
//	kmsd_forwarded_requests_total                counter    proposals forwarded to the leader
//	kmsd_key_requests_total{key_id,operation}    counter    requests per key and operation (ObserveKeyRequest)
//
// The kmsd_raft_* and kmsd_forwarded_* series are read from Config.Source at
// scrape time and are absent when it is nil. Every series, the Go and
// process ones included, carries the const labels node_id and region when
// Config sets them.
//
// Label values must be bounded: the operation and outcome given to
// ObserveRequest come from api.Config.Observe, which only ever passes
// TrentService operation names (or "unknown") and AWS exception names.
// kmsd_key_requests_total's key_id label is bounded by MaxKeyIDs: requests
// for keys beyond the first MaxKeyIDs distinct ids are counted under
// key_id="other".
package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes the names of kmsd's own metrics.
const Namespace = "kmsd"

// RaftStates are the values of kmsd_raft_state's state label, as
// hashicorp/raft's RaftState.String spells them. A Source reporting any
// other state sets all of them to 0.
var RaftStates = []string{"Leader", "Follower", "Candidate", "Shutdown"}

// DurationBuckets are the histogram buckets, in seconds, of the latency
// metrics: 100µs to 5s.
var DurationBuckets = []float64{
	0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5,
	1, 2.5, 5,
}

// MaxKeyIDs bounds the distinct key_id values of kmsd_key_requests_total;
// requests for further keys are counted under OtherKeyID.
const MaxKeyIDs = 10000

// OtherKeyID is the key_id label of requests for keys beyond MaxKeyIDs.
const OtherKeyID = "other"

// Source reports a node's Raft and forwarding state. It is read on every
// scrape, possibly concurrently, so its methods must be cheap and safe for
// concurrent use.
type Source interface {
	// RaftState is the node's Raft state: one of RaftStates.
	RaftState() string
	// AppliedIndex is the last log index applied to the FSM.
	AppliedIndex() uint64
	// CommitIndex is the last committed log index.
	CommitIndex() uint64
	// LastContact is how long ago the node last heard from the leader
	// (0 on the leader itself).
	LastContact() time.Duration
	// Forwarded is the number of requests forwarded to the leader since
	// the node started (monotonic).
	Forwarded() uint64
}

// Config configures a Metrics.
type Config struct {
	NodeID string // const label node_id on every series ("" = no label)
	Region string // const label region on every series ("" = no label)
	Source Source // nil: no kmsd_raft_* and kmsd_forwarded_* series
	// CPUFeatures are the crypto-relevant CPU features (name -> present),
	// exported as kmsd_cpu_feature{feature} 1 or 0.
	CPUFeatures map[string]bool
}

// Metrics holds kmsd's metrics. Its methods are safe for concurrent use and
// the Observe methods are no-ops on a nil *Metrics.
type Metrics struct {
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	applyDuration   prometheus.Histogram
	keyRequests     *prometheus.CounterVec
	handler         http.Handler

	keyMu     sync.Mutex
	keyIDs    map[string]struct{} // key_id values in use, at most maxKeyIDs
	maxKeyIDs int
	// keyCounters maps a keyOp whose key id has its own series to that
	// series, so that a request on a known key costs one lookup:
	// WithLabelValues hashes both labels and takes the vector's lock, and
	// keyLabel takes keyMu, for every item of a batch. At most maxKeyIDs
	// key ids times the (bounded) operations.
	keyCounters sync.Map
}

// keyOp is a key_requests_total series: a key id and an operation.
type keyOp struct{ keyID, operation string }

// New builds the metrics of cfg in a new registry.
func New(cfg Config) (*Metrics, error) {
	labels := prometheus.Labels{}
	for name, v := range map[string]string{"node_id": cfg.NodeID, "region": cfg.Region} {
		if v == "" {
			continue
		}
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("metrics: Config label %s %q is not valid UTF-8", name, v)
		}
		labels[name] = v
	}
	src := cfg.Source
	if isNil(src) {
		src = nil
	}

	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "requests_total",
			Help:      "KMS API requests answered, by operation and outcome (ok or the AWS exception name).",
		}, []string{"operation", "outcome"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "request_duration_seconds",
			Help:      "Time to answer a KMS API request, from arrival to the end of the response write.",
			Buckets:   DurationBuckets,
		}, []string{"operation"}),
		applyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "fsm_apply_duration_seconds",
			Help:      "Time the FSM takes to apply one committed Raft log entry.",
			Buckets:   DurationBuckets,
		}),
		keyRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "key_requests_total",
			Help:      "KMS requests on a key that passed authorization, by key id and operation (key_id=\"" + OtherKeyID + "\" beyond the first " + fmt.Sprint(MaxKeyIDs) + " keys).",
		}, []string{"key_id", "operation"}),
		keyIDs:    map[string]struct{}{},
		maxKeyIDs: MaxKeyIDs,
	}
	r := prometheus.WrapRegistererWith(labels, m.reg)
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests,
		m.requestDuration,
		m.applyDuration,
		m.keyRequests,
	}
	if src != nil {
		cs = append(cs, newSourceCollector(src))
	}
	if len(cfg.CPUFeatures) > 0 {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "cpu_feature",
			Help:      "Whether the CPU has a feature that speeds up kmsd's cryptography (1) or not (0), as detected at start.",
		}, []string{"feature"})
		for name, on := range cfg.CPUFeatures {
			v := 0.0
			if on {
				v = 1
			}
			g.WithLabelValues(name).Set(v)
		}
		cs = append(cs, g)
	}
	var errs []error
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// Counts failed scrapes in the same registry.
		Registry: r,
	})
	return m, nil
}

// ObserveRequest records one answered KMS request. Its signature is that of
// api.Config.Observe, so m.ObserveRequest can be passed as that hook.
func (m *Metrics) ObserveRequest(operation, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(operation, outcome).Inc()
	m.requestDuration.WithLabelValues(operation).Observe(d.Seconds())
}

// ObserveKeyRequest counts one request on a key (usage metering). Its
// signature is that of service.Config.OnKeyUse. operation must come from a
// bounded set (the service passes KMS action names); keyID is bounded by
// MaxKeyIDs distinct values, after which further keys count as OtherKeyID.
func (m *Metrics) ObserveKeyRequest(keyID, operation string) {
	if m == nil {
		return
	}
	k := keyOp{keyID, operation}
	if c, ok := m.keyCounters.Load(k); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	label := m.keyLabel(keyID)
	c := m.keyRequests.WithLabelValues(label, operation)
	if label == keyID { // beyond the guard, key ids are not remembered
		m.keyCounters.Store(k, c)
	}
	c.Inc()
}

// keyLabel is the key_id label for keyID under the cardinality guard.
func (m *Metrics) keyLabel(keyID string) string {
	if !utf8.ValidString(keyID) || keyID == OtherKeyID {
		return OtherKeyID
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	if _, ok := m.keyIDs[keyID]; ok {
		return keyID
	}
	if len(m.keyIDs) >= m.maxKeyIDs {
		return OtherKeyID
	}
	m.keyIDs[keyID] = struct{}{}
	return keyID
}

// ObserveApply records the time the FSM took to apply one log entry.
func (m *Metrics) ObserveApply(d time.Duration) {
	if m == nil {
		return
	}
	m.applyDuration.Observe(d.Seconds())
}

// Handler serves the registry in the Prometheus exposition formats (for
// GET /metrics).
func (m *Metrics) Handler() http.Handler { return m.handler }

// Registry is the registry the metrics live in, for registering further
// collectors or gathering in tests. Collectors registered directly do not
// get the node_id and region labels.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// sourceCollector reads a Source once per scrape, so the Raft series of
// one scrape come from one reading.
type sourceCollector struct {
	src          Source
	state        *prometheus.Desc
	appliedIndex *prometheus.Desc
	commitIndex  *prometheus.Desc
	lastContact  *prometheus.Desc
	forwarded    *prometheus.Desc
}

func newSourceCollector(src Source) *sourceCollector {
	name := func(n string) string { return prometheus.BuildFQName(Namespace, "", n) }
	return &sourceCollector{
		src:          src,
		state:        prometheus.NewDesc(name("raft_state"), "Raft state of the node: 1 for the current state, 0 for the others.", []string{"state"}, nil),
		appliedIndex: prometheus.NewDesc(name("raft_applied_index"), "Last Raft log index applied to the FSM.", nil, nil),
		commitIndex:  prometheus.NewDesc(name("raft_commit_index"), "Last committed Raft log index.", nil, nil),
		lastContact:  prometheus.NewDesc(name("raft_last_contact_seconds"), "Time since the node last heard from the Raft leader (0 on the leader).", nil, nil),
		forwarded:    prometheus.NewDesc(name("forwarded_requests_total"), "Requests this node forwarded to the Raft leader.", nil, nil),
	}
}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.appliedIndex
	ch <- c.commitIndex
	ch <- c.lastContact
	ch <- c.forwarded
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	state := c.src.RaftState()
	for _, s := range RaftStates {
		v := 0.0
		if s == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, s)
	}
	ch <- prometheus.MustNewConstMetric(c.appliedIndex, prometheus.GaugeValue, float64(c.src.AppliedIndex()))
	ch <- prometheus.MustNewConstMetric(c.commitIndex, prometheus.GaugeValue, float64(c.src.CommitIndex()))
	ch <- prometheus.MustNewConstMetric(c.lastContact, prometheus.GaugeValue, c.src.LastContact().Seconds())
	ch <- prometheus.MustNewConstMetric(c.forwarded, prometheus.CounterValue, float64(c.src.Forwarded()))
}

// isNil reports whether v is nil or a nil pointer in an interface.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}
