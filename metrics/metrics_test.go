package metrics

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeSource is a Source with settable values.
type fakeSource struct {
	mu          sync.Mutex
	state       string
	applied     uint64
	commit      uint64
	lastContact time.Duration
	forwarded   atomic.Uint64
	reads       atomic.Int64 // RaftState calls
}

func (f *fakeSource) set(state string, applied, commit uint64, lastContact time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state, f.applied, f.commit, f.lastContact = state, applied, commit, lastContact
}

func (f *fakeSource) RaftState() string {
	f.reads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *fakeSource) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

func (f *fakeSource) CommitIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.commit
}

func (f *fakeSource) LastContact() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastContact
}

func (f *fakeSource) Forwarded() uint64 { return f.forwarded.Load() }

var _ Source = (*fakeSource)(nil)

func newMetrics(t *testing.T, cfg Config) *Metrics {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// scrape GETs m.Handler() and returns the text exposition.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	return string(b)
}

// wantLines fails for every line of want missing from the exposition body.
func wantLines(t *testing.T, body string, want ...string) {
	t.Helper()
	have := map[string]bool{}
	for l := range strings.Lines(body) {
		have[strings.TrimSuffix(l, "\n")] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("missing line %q", w)
		}
	}
}

func TestScrape(t *testing.T) {
	src := &fakeSource{}
	src.set("Follower", 41, 42, 1500*time.Millisecond)
	src.forwarded.Store(7)
	m := newMetrics(t, Config{NodeID: "n1", Region: "eu-west-1", Source: src})

	m.ObserveRequest("Encrypt", "ok", 3*time.Millisecond)
	m.ObserveRequest("Encrypt", "ok", 20*time.Millisecond)
	m.ObserveRequest("Encrypt", "NotFoundException", 200*time.Microsecond)
	m.ObserveRequest("unknown", "UnknownOperationException", 50*time.Microsecond)
	m.ObserveApply(700 * time.Microsecond)
	m.ObserveApply(2 * time.Second)

	// ser names a series as the text format spells it: labels sorted,
	// with node_id and region, and a histogram's le last.
	ser := func(name string, kv ...string) string {
		labels := map[string]string{"node_id": "n1", "region": "eu-west-1"}
		for i := 0; i < len(kv); i += 2 {
			labels[kv[i]] = kv[i+1]
		}
		le, hasLE := labels["le"]
		delete(labels, "le")
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(labels)) {
			parts = append(parts, k+`="`+labels[k]+`"`)
		}
		if hasLE {
			parts = append(parts, `le="`+le+`"`)
		}
		return name + "{" + strings.Join(parts, ",") + "}"
	}
	body := scrape(t, m)
	wantLines(t, body,
		"# TYPE kmsd_requests_total counter",
		ser("kmsd_requests_total", "operation", "Encrypt", "outcome", "ok")+" 2",
		ser("kmsd_requests_total", "operation", "Encrypt", "outcome", "NotFoundException")+" 1",
		ser("kmsd_requests_total", "operation", "unknown", "outcome", "UnknownOperationException")+" 1",

		"# TYPE kmsd_request_duration_seconds histogram",
		ser("kmsd_request_duration_seconds_bucket", "operation", "Encrypt", "le", "0.0001")+" 0",
		ser("kmsd_request_duration_seconds_bucket", "operation", "Encrypt", "le", "0.00025")+" 1",
		ser("kmsd_request_duration_seconds_bucket", "operation", "Encrypt", "le", "0.005")+" 2",
		ser("kmsd_request_duration_seconds_bucket", "operation", "Encrypt", "le", "0.025")+" 3",
		ser("kmsd_request_duration_seconds_bucket", "operation", "Encrypt", "le", "5")+" 3",
		ser("kmsd_request_duration_seconds_bucket", "operation", "Encrypt", "le", "+Inf")+" 3",
		ser("kmsd_request_duration_seconds_count", "operation", "Encrypt")+" 3",
		ser("kmsd_request_duration_seconds_sum", "operation", "Encrypt")+" 0.0232",
		ser("kmsd_request_duration_seconds_bucket", "operation", "unknown", "le", "0.0001")+" 1",

		"# TYPE kmsd_fsm_apply_duration_seconds histogram",
		ser("kmsd_fsm_apply_duration_seconds_bucket", "le", "0.0005")+" 0",
		ser("kmsd_fsm_apply_duration_seconds_bucket", "le", "0.001")+" 1",
		ser("kmsd_fsm_apply_duration_seconds_bucket", "le", "1")+" 1",
		ser("kmsd_fsm_apply_duration_seconds_bucket", "le", "2.5")+" 2",
		ser("kmsd_fsm_apply_duration_seconds_count")+" 2",
		ser("kmsd_fsm_apply_duration_seconds_sum")+" 2.0007",

		"# TYPE kmsd_raft_state gauge",
		ser("kmsd_raft_state", "state", "Leader")+" 0",
		ser("kmsd_raft_state", "state", "Follower")+" 1",
		ser("kmsd_raft_state", "state", "Candidate")+" 0",
		ser("kmsd_raft_state", "state", "Shutdown")+" 0",
		"# TYPE kmsd_raft_applied_index gauge",
		ser("kmsd_raft_applied_index")+" 41",
		"# TYPE kmsd_raft_commit_index gauge",
		ser("kmsd_raft_commit_index")+" 42",
		"# TYPE kmsd_raft_last_contact_seconds gauge",
		ser("kmsd_raft_last_contact_seconds")+" 1.5",
		"# TYPE kmsd_forwarded_requests_total counter",
		ser("kmsd_forwarded_requests_total")+" 7",
	)
	// The Go and process collectors are there, with the const labels.
	for _, series := range []string{ser("go_goroutines"), ser("go_memstats_alloc_bytes"), ser("process_cpu_seconds_total")} {
		if !strings.Contains(body, "\n"+series+" ") {
			t.Errorf("no %s series", series)
		}
	}
	// Every sample carries the const labels.
	for line := range strings.Lines(body) {
		if !strings.HasPrefix(line, "#") && (!strings.Contains(line, `node_id="n1"`) || !strings.Contains(line, `region="eu-west-1"`)) {
			t.Errorf("sample without const labels: %q", line)
		}
	}

	// Source values are read at scrape time.
	src.set("Leader", 100, 100, 0)
	src.forwarded.Add(3)
	wantLines(t, scrape(t, m),
		ser("kmsd_raft_state", "state", "Leader")+" 1",
		ser("kmsd_raft_state", "state", "Follower")+" 0",
		ser("kmsd_raft_applied_index")+" 100",
		ser("kmsd_raft_commit_index")+" 100",
		ser("kmsd_raft_last_contact_seconds")+" 0",
		ser("kmsd_forwarded_requests_total")+" 10",
	)
}

func TestRaftState(t *testing.T) {
	tests := []struct {
		state string
		want  map[string]float64
	}{
		{"Leader", map[string]float64{"Leader": 1}},
		{"Follower", map[string]float64{"Follower": 1}},
		{"Candidate", map[string]float64{"Candidate": 1}},
		{"Shutdown", map[string]float64{"Shutdown": 1}},
		{"Unknown", map[string]float64{}},
		{"", map[string]float64{}},
	}
	for _, tc := range tests {
		t.Run(tc.state, func(t *testing.T) {
			src := &fakeSource{}
			src.set(tc.state, 0, 0, 0)
			m := newMetrics(t, Config{NodeID: "n1", Source: src})
			var want strings.Builder
			want.WriteString("# HELP kmsd_raft_state Raft state of the node: 1 for the current state, 0 for the others.\n# TYPE kmsd_raft_state gauge\n")
			for _, s := range []string{"Candidate", "Follower", "Leader", "Shutdown"} { // sorted, as gathered
				v := "0"
				if tc.want[s] == 1 {
					v = "1"
				}
				want.WriteString(`kmsd_raft_state{node_id="n1",state="` + s + `"} ` + v + "\n")
			}
			if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want.String()), "kmsd_raft_state"); err != nil {
				t.Error(err)
			}
			if n := src.reads.Load(); n != 1 {
				t.Errorf("RaftState read %d times in one gather, want 1", n)
			}
		})
	}
}

func TestObserveRequestCounts(t *testing.T) {
	m := newMetrics(t, Config{NodeID: "n1"})
	obs := []struct {
		operation, outcome string
		d                  time.Duration
	}{
		{"Decrypt", "ok", time.Millisecond},
		{"Decrypt", "ok", 2 * time.Millisecond},
		{"Decrypt", "AccessDeniedException", time.Millisecond},
		{"GenerateDataKey", "ok", time.Millisecond},
		{"GenerateDataKey", "DependencyTimeoutException", 5 * time.Second},
	}
	for _, o := range obs {
		m.ObserveRequest(o.operation, o.outcome, o.d)
	}
	counts := []struct {
		operation, outcome string
		want               float64
	}{
		{"Decrypt", "ok", 2},
		{"Decrypt", "AccessDeniedException", 1},
		{"GenerateDataKey", "ok", 1},
		{"GenerateDataKey", "DependencyTimeoutException", 1},
		{"Encrypt", "ok", 0},
	}
	for _, c := range counts {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.operation, c.outcome)); got != c.want {
			t.Errorf("requests{%s,%s} = %v, want %v", c.operation, c.outcome, got, c.want)
		}
	}
	// One histogram series per operation, one counter series per pair.
	if n := testutil.CollectAndCount(m.requestDuration); n != 2 {
		t.Errorf("%d duration series, want 2", n)
	}
	if n := testutil.CollectAndCount(m.requests, "kmsd_requests_total"); n != 5 {
		t.Errorf("%d request series, want 5 (including the one read above)", n)
	}
}

func TestNoSource(t *testing.T) {
	var typedNil *fakeSource
	for name, src := range map[string]Source{"nil": nil, "typed nil": typedNil} {
		t.Run(name, func(t *testing.T) {
			m := newMetrics(t, Config{Source: src})
			m.ObserveRequest("ListKeys", "ok", time.Millisecond)
			body := scrape(t, m)
			for _, absent := range []string{"kmsd_raft_", "kmsd_forwarded_requests_total", "node_id=", "region="} {
				if strings.Contains(body, absent) {
					t.Errorf("scrape contains %q without a Source / labels", absent)
				}
			}
			wantLines(t, body, `kmsd_requests_total{operation="ListKeys",outcome="ok"} 1`)
			if !strings.Contains(body, "\ngo_goroutines ") {
				t.Error("no go_goroutines")
			}
		})
	}
}

func TestLint(t *testing.T) {
	src := &fakeSource{}
	src.set("Leader", 1, 1, 0)
	m := newMetrics(t, Config{NodeID: "n1", Region: "r", Source: src})
	m.ObserveRequest("Encrypt", "ok", time.Millisecond)
	m.ObserveApply(time.Millisecond)
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "kmsd_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

func TestNew(t *testing.T) {
	if _, err := New(Config{NodeID: "bad\xff"}); err == nil {
		t.Error("invalid UTF-8 label accepted")
	}
	// Independent registries: two Metrics do not collide.
	a := newMetrics(t, Config{NodeID: "a"})
	b := newMetrics(t, Config{NodeID: "b"})
	a.ObserveApply(time.Millisecond)
	if got := testutil.CollectAndCount(b.applyDuration); got != 1 {
		t.Errorf("b has %d apply series", got)
	}
	if got := testutil.ToFloat64(a.requests.WithLabelValues("x", "ok")); got != 0 {
		t.Errorf("fresh counter = %v", got)
	}
	// The Observe methods are no-ops on a nil *Metrics.
	var nilM *Metrics
	nilM.ObserveRequest("Encrypt", "ok", time.Millisecond)
	nilM.ObserveApply(time.Millisecond)
}

// TestConcurrent exercises observation and scraping together under the race
// detector.
func TestConcurrent(t *testing.T) {
	src := &fakeSource{}
	src.set("Leader", 1, 1, 0)
	m := newMetrics(t, Config{NodeID: "n1", Source: src})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				m.ObserveRequest("Encrypt", "ok", time.Millisecond)
				m.ObserveApply(time.Microsecond)
				src.forwarded.Add(1)
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	if got := testutil.ToFloat64(m.requests.WithLabelValues("Encrypt", "ok")); got != workers*each {
		t.Errorf("requests = %v, want %d", got, workers*each)
	}
	wantLines(t, scrape(t, m), `kmsd_forwarded_requests_total{node_id="n1"} 1600`)
}

func TestCPUFeatureSeries(t *testing.T) {
	m, err := New(Config{NodeID: "n1", CPUFeatures: map[string]bool{"aesni": true, "vaes": false}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`kmsd_cpu_feature{feature="aesni",node_id="n1"} 1`,
		`kmsd_cpu_feature{feature="vaes",node_id="n1"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}
