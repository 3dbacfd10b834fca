// Package testserver starts a real single-node kmsd in-process for tests:
// real Raft on BoltDB in a temp dir, the real service and HTTP handler on
// loopback, and an AWS SDK for Go v2 KMS client pointed at it. Only tests
// import it.
package testserver

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/api"
	"github.com/kmsd/kmsd/cluster"
	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/fsm"
	"github.com/kmsd/kmsd/internal/sdkhttp"
	"github.com/kmsd/kmsd/service"
)

// Region and AccountID of every test server.
const (
	Region    = "us-east-1"
	AccountID = "111122223333"
)

// Clock is a settable clock for the service; it starts at the real time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Server is a running in-process kmsd node.
type Server struct {
	URL     string
	Client  *kms.Client
	FSM     *fsm.FSM
	Service *service.Service
	Node    *cluster.Node
	DataDir string
	RootKey *crypto.RootKey
	Clock   *Clock

	t       testing.TB
	rootRaw []byte
	// authFor, if set, builds the authenticator (auth.go); nil means the
	// dev authenticator (every caller is the account root).
	authFor func(log *slog.Logger) api.Authenticator
	// configure, if set, adjusts the service configuration (StartWith).
	configure func(*service.Config)
	http      *httptest.Server
	stopped   bool
}

// Start starts a node on a fresh temp dir.
func Start(t testing.TB) *Server {
	t.Helper()
	raw := make([]byte, crypto.KeySize)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, DataDir: t.TempDir(), rootRaw: raw, Clock: &Clock{t: time.Now()}}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// StartWith is Start with configure applied to the service configuration
// before the service is built (on every restart too), for hooks such as
// service.Config.OnKeyUse.
func StartWith(t testing.TB, configure func(*service.Config)) *Server {
	t.Helper()
	raw := make([]byte, crypto.KeySize)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, DataDir: t.TempDir(), rootRaw: raw, Clock: &Clock{t: time.Now()}, configure: configure}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// Logger returns a slog.Logger that writes to t.Log until the test ends.
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

func (s *Server) start() {
	t := s.t
	t.Helper()
	log := Logger(t)
	rk, err := crypto.NewRootKey(s.rootRaw)
	if err != nil {
		t.Fatal(err)
	}
	s.RootKey = rk
	s.FSM = fsm.New()
	s.Node, err = cluster.New(cluster.Config{
		NodeID:    "n1",
		DataDir:   s.DataDir,
		RaftAddr:  "127.0.0.1:0",
		Bootstrap: true,
		Logger:    log.With("component", "raft"),
	}, s.FSM)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Node.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	// After a restart the log is replayed only once the leader commits in
	// its new term: serve only after that, as kmsd does.
	if err := s.Node.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	fwd, err := cluster.NewForwarder(cluster.ForwarderConfig{
		Node:   s.Node,
		Secret: rk.DeriveSecret("node-forwarding").Bytes(),
		Logger: log.With("component", "forward"),
	})
	if err != nil {
		t.Fatal(err)
	}
	scfg := service.Config{
		Region:    Region,
		AccountID: AccountID,
		FSM:       s.FSM,
		Proposer:  fwd,
		RootKey:   rk,
		Logger:    log.With("component", "service"),
		Now:       s.Clock.Now,
	}
	if s.configure != nil {
		s.configure(&scfg)
	}
	s.Service, err = service.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.NewHandler(api.Config{
		KMS:    s.Service,
		Auth:   s.authenticator(log),
		Logger: log.With("component", "api"),
		NodeID: "n1",
	})
	if err != nil {
		t.Fatal(err)
	}
	s.http = httptest.NewServer(h)
	s.URL = s.http.URL
	s.Client = NewClient(s.URL)
	s.stopped = false
}

// NewClient returns an AWS SDK KMS client for endpoint with test credentials.
func NewClient(endpoint string) *kms.Client {
	return kms.New(kms.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""),
		// Tests assert on first answers; the SDK must not retry them away.
		RetryMaxAttempts: 1,
		HTTPClient:       sdkhttp.OwnBody(nil),
	})
}

// Stop shuts the node down (idempotent).
func (s *Server) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.http.Close()
	s.Service.Close()
	if err := s.Node.Shutdown(); err != nil {
		s.t.Errorf("shutdown: %v", err)
	}
}

// Restart stops the node and starts it again on the same data dir and
// root key, as a process restart would.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}
