package load

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/kmsd/kmsd/internal/testserver"
)

func TestHistogramPercentiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram not zero")
	}
	// 1ms .. 10000ms, one sample each.
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5000 * time.Millisecond}, {0.95, 9500 * time.Millisecond}, {0.99, 9900 * time.Millisecond}, {0.999, 9990 * time.Millisecond}, {0.0001, time.Millisecond}} {
		got := h.Quantile(c.q)
		if rel := math.Abs(float64(got-c.want)) / float64(c.want); rel > 1.0/128 {
			t.Errorf("q%v = %v, want %v ±0.8%% (off by %.2f%%)", c.q, got, c.want, rel*100)
		}
	}
	if h.Min() != time.Millisecond || h.Max() != 10*time.Second || h.Quantile(1) != 10*time.Second || h.Quantile(0) != time.Millisecond {
		t.Errorf("min %v max %v", h.Min(), h.Max())
	}
	if h.Mean() != 5000500*time.Microsecond {
		t.Errorf("mean %v", h.Mean())
	}
	if h.Count() != 10000 {
		t.Errorf("count %d", h.Count())
	}

	// Small values are exact; one outlier shows at p99.9 but not p99.
	var s Histogram
	for i := 0; i < 999; i++ {
		s.Record(100)
	}
	s.Record(time.Second)
	if s.Quantile(0.5) != 100 || s.Quantile(0.99) != 100 || s.Quantile(0.9999) != time.Second {
		t.Errorf("p50 %v p99 %v p99.99 %v", s.Quantile(0.5), s.Quantile(0.99), s.Quantile(0.9999))
	}

	// Merge equals recording everything in one.
	var a, b, all Histogram
	r := mrand.New(mrand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		d := time.Duration(r.ExpFloat64() * float64(3*time.Millisecond))
		all.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("merged q%v %v != %v", q, a.Quantile(q), all.Quantile(q))
		}
	}
	// Every bucket's midpoint maps back to the bucket.
	for i := 0; i < 128*40; i++ {
		if got := bucketOf(bucketValue(i)); got != i {
			t.Fatalf("bucketOf(bucketValue(%d)) = %d", i, got)
		}
	}
}

func TestParseMix(t *testing.T) {
	m, err := ParseMix("GenerateDataKey=8, decrypt=1,Encrypt=1,CreateKey=0")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.String(); got != "GenerateDataKey=8,Decrypt=1,Encrypt=1" {
		t.Errorf("mix %q", got)
	}
	if m.Has("CreateKey") || !m.Has("Decrypt") {
		t.Error("Has")
	}
	if f := m.Fractions(); f["GenerateDataKey"] != 0.8 {
		t.Errorf("fractions %v", f)
	}
	if m, err := ParseMix("DescribeKey"); err != nil || m.String() != "DescribeKey=1" {
		t.Errorf("bare op: %v %v", m, err)
	}
	for _, bad := range []string{"", "CreateKey=0", "Nope=1", "Encrypt=-1", "Encrypt=x", "Encrypt=1,encrypt=2"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
	// The picker follows the weights.
	pk, _ := ParseMix("GenerateDataKey=8,Decrypt=1,Encrypt=1")
	r := mrand.New(mrand.NewPCG(3, 4))
	n := map[string]int{}
	const draws = 100000
	for i := 0; i < draws; i++ {
		n[pk.picker().pick(r)]++
	}
	for op, want := range pk.Fractions() {
		if got := float64(n[op]) / draws; math.Abs(got-want) > 0.01 {
			t.Errorf("%s drawn %.3f, want %.3f", op, got, want)
		}
	}
}

const exposition = `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total{node_id="n\"1",region="us-east-1"} 12.5
# HELP kmsd_requests_total KMS API requests answered.
# TYPE kmsd_requests_total counter
kmsd_requests_total{node_id="n\"1",operation="Decrypt",outcome="ok",region="us-east-1"} 42
go_goroutines{node_id="n\"1",region="us-east-1"} 17 1700000000000
up 1
weird{a="x,}y", b="\\"} +Inf
`

func TestParseSamples(t *testing.T) {
	s, err := ParseSamples(strings.NewReader(exposition), CPUMetric)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 1 || s[0].Value != 12.5 || s[0].Labels["node_id"] != `n"1` || s[0].Labels["region"] != "us-east-1" {
		t.Fatalf("samples %+v", s)
	}
	all, err := ParseSamples(strings.NewReader(exposition), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || all[2].Value != 17 || all[3].Name != "up" || all[4].Labels["a"] != "x,}y" || all[4].Labels["b"] != `\` || !math.IsInf(all[4].Value, 1) {
		t.Fatalf("all %+v", all)
	}
	for _, bad := range []string{"x{a=\"1\" 2\n", "x{a=1} 2\n", "x abc\n", "x\n"} {
		if _, err := ParseSamples(strings.NewReader(bad), ""); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestScrapeCPU(t *testing.T) {
	cpu := 3.0
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "process_cpu_seconds_total{node_id=\"a\",region=\"r\"} %g\n", cpu)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	got, err := ScrapeCPU(context.Background(), srv.Client(), srv.URL+"/")
	if err != nil || got.Seconds != 3 || got.NodeID != "a" || got.Region != "r" {
		t.Fatalf("%+v %v", got, err)
	}
	none := httptest.NewServer(http.NotFoundHandler())
	defer none.Close()
	if _, err := ScrapeCPU(context.Background(), none.Client(), none.URL); err == nil {
		t.Error("404 accepted")
	}
	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up 1\n") }))
	defer empty.Close()
	if _, err := ScrapeCPU(context.Background(), empty.Client(), empty.URL); err == nil {
		t.Error("exposition without the counter accepted")
	}
}

func TestClassifyError(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&smithy.GenericAPIError{Code: "ThrottlingException"}, "ThrottlingException"},
		{fmt.Errorf("op: %w", context.DeadlineExceeded), "Timeout"},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), "ConnectionRefused"},
		{fmt.Errorf("read: %w", io.EOF), "EOF"},
		{errors.New("?"), "OtherError"},
	} {
		if got := ClassifyError(c.err); got != c.want {
			t.Errorf("ClassifyError(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

// wellFormed decodes the whole document with encoding/xml.
func wellFormed(t *testing.T, doc []byte) (root string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG not well-formed: %v\n%s", err, doc)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				root = e.Name.Space + " " + e.Name.Local
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if depth != 0 {
		t.Fatalf("unbalanced SVG")
	}
	return root
}

func TestSVGWellFormed(t *testing.T) {
	r := &Result{Mix: `GenerateDataKey=8,<&"'>`, Concurrency: 4, Endpoints: []string{"http://a"}, Start: time.Now()}
	for i := 1; i <= 30; i++ {
		s := Second{T: float64(i), Intervals: 1, Phase: "measure", OK: 1000, OKPerSec: 1000, P50: 1, P99: 5}
		if i <= 5 {
			s.Phase = "warmup"
		}
		if i >= 12 && i <= 15 { // a failover gap
			s.OK, s.OKPerSec, s.P50, s.P99, s.Errors = 0, 0, 0, 0, 300
		}
		r.Timeline = append(r.Timeline, s)
	}
	var b bytes.Buffer
	if err := WriteSVG(&b, r); err != nil {
		t.Fatal(err)
	}
	if root := wellFormed(t, b.Bytes()); root != "http://www.w3.org/2000/svg svg" {
		t.Errorf("root %q", root)
	}
	if n := strings.Count(b.String(), "<polyline"); n != 4 { // ok, errors, p99 before and after the gap
		t.Errorf("%d polylines, want 4", n)
	}
	// Empty and single-point timelines are still well-formed.
	for _, tl := range [][]Second{nil, {{T: 0.5, Intervals: 0.5, OK: 1, OKPerSec: 2, P99: 1}}} {
		b.Reset()
		if err := WriteSVG(&b, &Result{Timeline: tl}); err != nil {
			t.Fatal(err)
		}
		wellFormed(t, b.Bytes())
	}
}

// TestRunAgainstNode runs the generator for about 2s against a real
// in-process node (whose handler has no /metrics: server CPU unknown).
func TestRunAgainstNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	srv := testserver.Start(t)
	mix, err := ParseMix("GenerateDataKey=8,Decrypt=1,Encrypt=1,CreateKey=1,ReEncrypt=1,DescribeKey=1,GenerateDataKeyWithoutPlaintext=1")
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res, err := Run(context.Background(), Config{
		Endpoints:   []string{srv.URL},
		Region:      testserver.Region,
		AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		Mix:         mix,
		Concurrency: 4,
		Warmup:      500 * time.Millisecond,
		Duration:    1500 * time.Millisecond,
		Progress:    &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	var rep bytes.Buffer
	WriteReport(&rep, res)
	t.Logf("progress:\n%s\nreport:\n%s", progress.String(), rep.String())
	if res.OK == 0 || res.Errors != 0 {
		t.Fatalf("ok %d errors %d %v", res.OK, res.Errors, res.ErrorExamples)
	}
	for _, e := range mix {
		if res.Ops[e.Op] == nil || res.Ops[e.Op].OK == 0 {
			t.Errorf("no successful %s", e.Op)
		}
	}
	if !res.KeyCreated || res.KeyID == "" {
		t.Error("no key created")
	}
	if res.MeasuredSeconds < 1.4 || res.MeasuredSeconds > 3 {
		t.Errorf("measured %.2fs", res.MeasuredSeconds)
	}
	if res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
		t.Errorf("latency %+v", res.Latency)
	}
	if res.ServerCPU.Known || res.ServerCPU.UnknownCause == "" || !strings.Contains(rep.String(), "server CPU: unknown") {
		t.Errorf("server CPU should be unknown: %+v", res.ServerCPU)
	}
	if !res.ClientCPU.Known || res.ClientCPU.Seconds <= 0 {
		t.Errorf("client CPU %+v", res.ClientCPU)
	}
	if len(res.Timeline) < 2 || !strings.Contains(progress.String(), "ok/s") {
		t.Errorf("timeline %+v", res.Timeline)
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
	var svg bytes.Buffer
	if err := WriteSVG(&svg, res); err != nil {
		t.Fatal(err)
	}
	wellFormed(t, svg.Bytes())

	// A given key is used as is, and server CPU is known when every
	// endpoint serves the counter: here a proxy in front of the node adds
	// a /metrics whose counter grows by 0.5s per scrape.
	u, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	var mu sync.Mutex
	cpu := 10.0
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			proxy.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		cpu += 0.5
		v := cpu
		mu.Unlock()
		fmt.Fprintf(w, "process_cpu_seconds_total{node_id=\"n1\",region=\"us-east-1\"} %g\n", v)
	}))
	defer front.Close()
	res2, err := Run(context.Background(), Config{
		Endpoints: []string{front.URL}, Region: testserver.Region,
		AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret",
		Mix: Mix{{Op: "Decrypt", Weight: 1}}, Concurrency: 2, Duration: 300 * time.Millisecond,
		KeyID: res.KeyID,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res2.KeyCreated || res2.KeyID != res.KeyID || res2.OK == 0 || res2.Errors != 0 {
		t.Errorf("second run: %+v", res2)
	}
	sc := res2.ServerCPU
	want := 0.5 / float64(res2.OK) * 1e6
	if !sc.Known || sc.Seconds != 0.5 || len(sc.Nodes) != 1 || sc.Nodes[0].NodeID != "n1" || math.Abs(sc.MicrosPerOp-want) > 1e-6 {
		t.Errorf("server CPU %+v, want 0.5s and %.1fus/op", sc, want)
	}
}
