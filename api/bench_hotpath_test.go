package api_test

// BenchmarkHotPathGenerateDataKey runs GenerateDataKey through the node kmsd
// builds in cmd/kmsd (real api handler with SigV4 verification against a
// credentials file, real service, real single-node Raft on BoltDB, the
// audit writer on a temp dir, Prometheus metrics, an info-level request log
// to a file) with 32 concurrent callers, as bench/cmd/load -c 32 does. The
// requests are built and signed by the AWS SDK for Go v2 once, before the
// timer starts (signatures stay valid for the clock-skew window and the
// server keeps no replay cache), so a CPU profile of the "handler"
// sub-benchmarks is server work only:
//
//	go test -run '^$' -bench HotPath -benchtime 20000x -cpuprofile cpu.out ./api/
//	go tool pprof -top -cum api.test cpu.out
//
// Sub-benchmarks:
//   - handler/audit=fsync|nosync|off: Handler.ServeHTTP called directly;
//     audit as kmsd runs it by default (fsync before answering), without
//     fsync (-audit-fsync=false), or without an audit log.
//   - loopback/audit=fsync: the same node behind a real net/http server on
//     loopback, driven by a keep-alive http.Client replaying the signed
//     requests: adds net/http and TCP on both sides (the client's CPU is in
//     the figures too).
//
// Besides ns/op (wall time per request with 32 in flight) each reports
// cpu-µs/op: the process's user+system CPU (getrusage) over the timed loop
// divided by b.N: the CPU a request costs, Raft, GC and fsync included.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsd/kmsd/api"
	"github.com/kmsd/kmsd/audit"
	"github.com/kmsd/kmsd/cluster"
	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/fsm"
	"github.com/kmsd/kmsd/metrics"
	"github.com/kmsd/kmsd/service"
)

const (
	hotRegion    = "us-east-1"
	hotAccount   = "111122223333"
	hotAccessKey = "AKIDHOTPATHBENCH01"
	hotSecret    = "hotpathbenchsecretkeyhotpathbench000000"
	// hotCallers is the number of concurrent requests, as load -c 32.
	hotCallers = 32
	// hotSigned is how many distinct signed requests are replayed.
	hotSigned = 256
)

var hotCredentials = `{
  "account_id": "` + hotAccount + `",
  "credentials": [{
    "access_key_id": "` + hotAccessKey + `",
    "secret_access_key": "` + hotSecret + `",
    "arn": "arn:aws:iam::` + hotAccount + `:user/demo",
    "policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
  }]
}`

// hotNode is one running node of the benchmark.
type hotNode struct {
	handler *api.Handler
	srv     *httptest.Server
	signed  []signedRequest
	stop    func()
}

// signedRequest is a request exactly as the SDK sent it.
type signedRequest struct {
	host   string
	header http.Header
	body   []byte
}

// request rebuilds r as a server-side request (a fresh body and header map
// per call: the handler sets r.Body).
func (s signedRequest) request() *http.Request {
	return &http.Request{
		Method: http.MethodPost, URL: &url.URL{Path: "/"}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: s.header.Clone(), Body: io.NopCloser(bytes.NewReader(s.body)),
		ContentLength: int64(len(s.body)), Host: s.host, RemoteAddr: "127.0.0.1:40000", RequestURI: "/",
	}
}

// errCaptured stops the SDK after signing: captureClient keeps the request.
var errCaptured = errors.New("captured")

type captureClient struct {
	mu  sync.Mutex
	got []signedRequest
}

func (c *captureClient) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	// As a server sees it: Host out of the URL, Content-Length a header.
	h := r.Header.Clone()
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.got = append(c.got, signedRequest{host: r.URL.Host, header: h, body: body})
	c.mu.Unlock()
	return nil, errCaptured
}

func sdkClient(endpoint string, hc kms.HTTPClient) *kms.Client {
	return kms.New(kms.Options{
		Region:           hotRegion,
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider(hotAccessKey, hotSecret, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       hc,
	})
}

// startHotNode starts a node wired as cmd/kmsd wires one (run in main.go),
// auditMode being "fsync", "nosync" or "off".
func startHotNode(b *testing.B, auditMode string) *hotNode {
	b.Helper()
	dir := b.TempDir()
	logFile, err := os.Create(filepath.Join(dir, "kmsd.log"))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", "n1")
	raw := make([]byte, crypto.KeySize)
	if _, err := rand.Read(raw); err != nil {
		b.Fatal(err)
	}
	rk, err := crypto.NewRootKey(raw)
	if err != nil {
		b.Fatal(err)
	}
	mets, err := metrics.New(metrics.Config{NodeID: "n1", Region: hotRegion})
	if err != nil {
		b.Fatal(err)
	}
	state := fsm.New()
	node, err := cluster.New(cluster.Config{
		ObserveApply: mets.ObserveApply,
		NodeID:       "n1", DataDir: filepath.Join(dir, "data"), RaftAddr: "127.0.0.1:0", Bootstrap: true,
		Logger: log.With("component", "raft"),
	}, state)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := node.WaitForLeader(ctx); err != nil {
		b.Fatal(err)
	}
	if err := node.Barrier(ctx); err != nil {
		b.Fatal(err)
	}
	fwd, err := cluster.NewForwarder(cluster.ForwarderConfig{Node: node,
		Secret: rk.DeriveSecret("node-forwarding").Bytes(), Logger: log.With("component", "forward")})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := service.New(service.Config{Region: hotRegion, AccountID: hotAccount, FSM: state, Proposer: fwd,
		RootKey: rk, Logger: log.With("component", "service"), OnKeyUse: mets.ObserveKeyRequest})
	if err != nil {
		b.Fatal(err)
	}
	creds, err := api.ParseCredentials([]byte(hotCredentials))
	if err != nil {
		b.Fatal(err)
	}
	auth, err := api.NewSigV4Authenticator(api.SigV4Config{Region: hotRegion, AccountID: hotAccount,
		Credentials: creds, Logger: log.With("component", "auth")})
	if err != nil {
		b.Fatal(err)
	}
	cfg := api.Config{Observe: mets.ObserveRequest, KMS: svc, Auth: auth, Logger: log.With("component", "api"), NodeID: "n1"}
	var auditLog *audit.Writer
	if auditMode != "off" {
		auditLog, err = audit.Open(audit.Options{Dir: filepath.Join(dir, "audit"), NodeID: "n1", Region: hotRegion,
			AccountID: hotAccount, NoSync: auditMode == "nosync", Logger: log.With("component", "audit")})
		if err != nil {
			b.Fatal(err)
		}
		cfg.Audit = auditLog
	}
	h, err := api.NewHandler(cfg)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	n := &hotNode{handler: h, srv: srv}
	n.stop = func() {
		srv.Close()
		svc.Close()
		if auditLog != nil {
			if err := auditLog.Close(); err != nil {
				b.Error(err)
			}
		}
		if err := node.Shutdown(); err != nil {
			b.Error(err)
		}
		logFile.Close()
	}

	// A key, created over HTTP as the load generator does, then hotSigned
	// GenerateDataKey requests as the SDK signs them.
	key, err := sdkClient(srv.URL, srv.Client()).CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		n.stop()
		b.Fatal(err)
	}
	cc := &captureClient{}
	capture := sdkClient(srv.URL, cc)
	for range hotSigned {
		_, err := capture.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: key.KeyMetadata.KeyId, KeySpec: types.DataKeySpecAes256})
		if !errors.Is(err, errCaptured) {
			n.stop()
			b.Fatalf("capturing a signed request: %v", err)
		}
	}
	n.signed = cc.got
	// One real round trip checks that a replayed request is accepted.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, n.signed[0].request())
	if rec.Code != http.StatusOK {
		n.stop()
		b.Fatalf("replayed request: %d %s", rec.Code, rec.Body)
	}
	return n
}

// discardWriter is a minimal http.ResponseWriter.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runParallel runs do with hotCallers goroutines and reports CPU per op.
func runParallel(b *testing.B, do func(i int) error) {
	b.Helper()
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((hotCallers + procs - 1) / procs)
	var failed sync.Once
	var mu sync.Mutex
	next := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		i := next
		next++
		mu.Unlock()
		for pb.Next() {
			if err := do(i); err != nil {
				failed.Do(func() { b.Error(err) })
				return
			}
			i += hotCallers
		}
	})
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

func BenchmarkHotPathGenerateDataKey(b *testing.B) {
	nodes := map[string]*hotNode{}
	b.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	node := func(b *testing.B, mode string) *hotNode {
		if n, ok := nodes[mode]; ok {
			return n
		}
		n := startHotNode(b, mode)
		nodes[mode] = n
		return n
	}
	for _, mode := range []string{"fsync", "nosync", "off"} {
		b.Run("handler/audit="+mode, func(b *testing.B) {
			n := node(b, mode)
			runParallel(b, func(i int) error {
				w := &discardWriter{h: http.Header{}}
				n.handler.ServeHTTP(w, n.signed[i%len(n.signed)].request())
				if w.status != http.StatusOK {
					return fmt.Errorf("status %d", w.status)
				}
				return nil
			})
		})
	}
	b.Run("loopback/audit=fsync", func(b *testing.B) {
		n := node(b, "fsync")
		tr := &http.Transport{MaxIdleConnsPerHost: hotCallers + 8}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		runParallel(b, func(i int) error {
			s := n.signed[i%len(n.signed)]
			req, err := http.NewRequest(http.MethodPost, n.srv.URL+"/", bytes.NewReader(s.body))
			if err != nil {
				return err
			}
			for k, v := range s.header {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	})
}
