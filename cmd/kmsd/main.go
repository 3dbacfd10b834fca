// Command kmsd runs one node of a kmsd region: the AWS KMS API over HTTP,
// backed by a Raft-replicated state machine.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kmsd/kmsd/api"
	"github.com/kmsd/kmsd/audit"
	"github.com/kmsd/kmsd/cluster"
	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/fsm"
	"github.com/kmsd/kmsd/metrics"
	"github.com/kmsd/kmsd/service"
)

func main() {
	// Everything kmsd writes (Raft log, snapshots, keys) is for its owner only.
	syscall.Umask(0o077)
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "kmsd:", err)
		os.Exit(2)
	}
	log := newLogger(cfg)
	tuneGC(log)
	// SIGTERM: leave the cluster (the leader removes this node from the
	// Raft configuration: decommissioning, scaling down). SIGINT (Ctrl-C):
	// stop but stay a member, so a restart resumes; stopping a whole
	// cluster this way keeps its configuration intact. This follows
	// Consul's defaults for servers (skip_leave_on_interrupt).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		cfg.leaveOnStop.Store(s == syscall.SIGTERM)
		cancel()
		signal.Stop(sigs)
	}()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("kmsd stopped", "err", err)
		os.Exit(1)
	}
}

func newLogger(cfg *Config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(h).With("node", cfg.NodeID)
}

// run starts the node and blocks until ctx is cancelled, then stops it.
// defaultGCPercent replaces Go's GOGC=100. kmsd's live heap is small
// (key metadata and wrapped material) and its garbage is per-request
// (bodies, JSON, audit records), so collecting less often is cheap in
// memory and measured 20-28% less CPU per GenerateDataKey in the api
// hot-path benchmark. GOGC in the environment still wins.
const defaultGCPercent = 400

func tuneGC(log *slog.Logger) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	debug.SetGCPercent(defaultGCPercent)
	log.Debug("gc", "gogc", defaultGCPercent)
}

func run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	if cfg.Dev && cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "kmsd-dev-")
		if err != nil {
			return err
		}
		cfg.DataDir = dir
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// Authentication first: a bad credentials file stops kmsd before it
	// joins anything.
	auth, reloadAuth, err := newAuthenticator(cfg, log.With("component", "auth"))
	if err != nil {
		return err
	}
	// Request quotas (nil with -quota off); a bad -quota-file stops kmsd here too.
	quota, err := api.QuotaLimiterFor(cfg.Quota, cfg.QuotaFile)
	if err != nil {
		return fmt.Errorf("-quota-file: %w", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // before anything can send one
	defer signal.Stop(hup)
	cpu := crypto.CPUFeatures()
	log.Info("cpu crypto features", "brand", cpu.Brand, "aesni", cpu.AESNI, "pclmulqdq", cpu.PCLMULQDQ,
		"vaes", cpu.VAES, "vpclmulqdq", cpu.VPCLMULQD, "avx2", cpu.AVX2, "avx512f", cpu.AVX512F, "sha_ni", cpu.SHANI)
	if !cpu.AESNI {
		if cfg.RequireAESNI {
			return errors.New("-require-aesni: this CPU has no AES-NI")
		}
		log.Warn("no AES-NI: AES runs in constant-time software, several times slower")
	}
	rootKey, err := loadRootKey(cfg, log)
	if err != nil {
		return err
	}

	tlsCfg, clusterTLS, reloadCert, err := loadTLS(cfg, log)
	if err != nil {
		return err
	}
	go reloadOnSignal(ctx, hup, func() {
		reloadAuth()
		if reloadCert == nil {
			return
		}
		if err := reloadCert(); err != nil {
			log.Error("SIGHUP: certificate not reloaded; the current one stays", "err", err)
			return
		}
		log.Info("SIGHUP: certificate reloaded", "cert", cfg.TLSCert)
	}, log)

	if cfg.DebugPprofAddr != "" {
		stopPprof, err := serveDebugPprof(cfg.DebugPprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	state := fsm.New()
	src := &metricsSource{}
	mets, err := metrics.New(metrics.Config{NodeID: cfg.NodeID, Region: cfg.Region, Source: src,
		CPUFeatures: crypto.CPUFeatures().Flags()})
	if err != nil {
		return err
	}
	node, err := cluster.New(cluster.Config{
		ObserveApply: mets.ObserveApply,
		NodeID:       cfg.NodeID,
		DataDir:      cfg.DataDir,
		RaftAddr:     cfg.RaftAddr,
		// With more than one expected node, gossip bootstraps the cluster
		// once that many nodes see each other.
		Bootstrap:         cfg.Dev || cfg.BootstrapExpect == 1,
		SnapshotThreshold: cfg.SnapshotThreshold,
		SnapshotInterval:  cfg.SnapshotInterval,
		TrailingLogs:      cfg.TrailingLogs,
		TLS:               clusterTLS,
		Logger:            log.With("component", "raft"),
	}, state)
	if err != nil {
		return fmt.Errorf("raft: %w", err)
	}
	defer node.Shutdown()

	var members *cluster.Membership
	if !cfg.Dev {
		gossipKey := rootKey.DeriveSecret("gossip-encryption")
		members, err = cluster.StartMembership(ctx, cluster.MembershipConfig{
			NodeID:          cfg.NodeID,
			Region:          cfg.Region,
			RaftAddr:        node.RaftAddr(),
			HTTPAddr:        cfg.HTTPAddr,
			GossipAddr:      cfg.GossipAddr,
			Join:            cfg.Join,
			BootstrapExpect: cfg.BootstrapExpect,
			SecretKey:       gossipKey.Bytes(),
			Logger:          log.With("component", "gossip"),
		}, node)
		gossipKey.Zero()
		if err != nil {
			return fmt.Errorf("gossip: %w", err)
		}
		defer members.Shutdown()
	}
	var leaderHTTP func(string) (string, bool)
	if members != nil {
		leaderHTTP = members.HTTPAddr
	}
	fwdSecret := rootKey.DeriveSecret("node-forwarding")
	// Peers serve what this node serves: https with -tls-cert. With
	// -cluster-tls-ca the forwarder presents this node's certificate and
	// trusts only the cluster CA, and /internal/ requires a client
	// certificate; without it, peers' certificates are verified against
	// the system roots.
	scheme, fwdClient := "http", (*http.Client)(nil)
	if tlsCfg != nil {
		scheme = "https"
	}
	if clusterTLS != nil {
		fwdClient = clusterTLS.HTTPClient(15 * time.Second)
	}
	forwarder, err := cluster.NewForwarder(cluster.ForwarderConfig{
		Node:              node,
		Scheme:            scheme,
		Client:            fwdClient,
		RequireClientCert: clusterTLS != nil,
		LeaderHTTPAddr:    leaderHTTP,
		Caller: func(ctx context.Context) string {
			if ri, ok := service.RequestInfoFrom(ctx); ok {
				return ri.Caller.ARN
			}
			return ""
		},
		OnLeave: func(id string) {
			if members != nil {
				members.MarkLeaving(id)
			}
		},
		Secret: fwdSecret.Bytes(),
		Logger: log.With("component", "forward"),
	})
	fwdSecret.Zero()
	if err != nil {
		return err
	}
	src.node, src.fwd = node, forwarder

	svc, err := service.New(service.Config{
		Region:    cfg.Region,
		AccountID: cfg.AccountID,
		FSM:       state,
		Proposer:  forwarder,
		RootKey:   rootKey,
		Logger:    log.With("component", "service"),
		OnKeyUse:  mets.ObserveKeyRequest,

		CiphertextFormat: byte(cfg.CiphertextFormat),
	})
	if err != nil {
		return err
	}
	defer svc.Close()

	auditLog, err := openAudit(cfg, log.With("component", "audit"))
	if err != nil {
		return err
	}
	defer func() {
		// After the HTTP server has stopped: the final digest marks the
		// file as closed cleanly.
		if err := auditLog.Close(); err != nil {
			log.Error("audit close", "err", err)
		}
	}()

	// Serve KMS operations only once this node's state holds everything
	// committed before it started: after a restart the log is replayed only
	// when the leader commits in its term, and a new node needs a snapshot.
	var ready atomic.Bool
	go waitUntilCaughtUp(ctx, forwarder, &ready, log)

	handler, err := api.NewHandler(api.Config{
		Quota:   quota,
		Ready:   ready.Load,
		Observe: mets.ObserveRequest,
		KMS:     svc,
		// Every answered KMS request is recorded before it is answered.
		Audit:         auditLog,
		AuditFailOpen: cfg.AuditFailOpen,
		Auth:          auth,
		Logger:        log.With("component", "api"),
		NodeID:        cfg.NodeID,
	})
	if err != nil {
		return err
	}
	handler.Handle("POST /internal/", forwarder.Handler())
	registerNodeEndpoints(handler, node, state, members, &ready, cfg)
	handler.Handle("GET /metrics", mets.Handler())

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         tlsCfg,
	}
	serveErr := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			serveErr <- srv.ServeTLS(ln, "", "") // certificates are in TLSConfig
			return
		}
		serveErr <- srv.Serve(ln)
	}()

	if cfg.Dev {
		waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := node.WaitForLeader(waitCtx); err != nil {
			log.Warn("no leader yet", "err", err)
		}
		cancel()
	}

	mctx, stopMaintenance := context.WithCancel(ctx)
	defer stopMaintenance()
	go svc.RunMaintenance(mctx, cfg.MaintenanceTick)

	endpoint := scheme + "://" + ln.Addr().String()
	log.Info("kmsd ready", "endpoint", endpoint, "region", cfg.Region, "data_dir", cfg.DataDir, "raft_addr", node.RaftAddr())
	if cfg.Dev {
		creds := "any SigV4 credentials are accepted"
		if cfg.CredentialsFile != "" {
			creds = "SigV4 signatures are verified against " + cfg.CredentialsFile
		}
		fmt.Fprintf(os.Stderr, "\nkmsd -dev is serving the AWS KMS API at %s (region %s; %s)\n  aws --endpoint-url %s --region %s kms create-key\n\n", endpoint, cfg.Region, creds, endpoint, cfg.Region)
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("http: %w", err)
	}
	log.Info("shutting down")
	if members != nil && cfg.leaveOnStop.Load() {
		// SIGTERM leaves the cluster: the leader removes this node.
		if err := members.Leave(5*time.Second, forwarder.Leave); err != nil {
			log.Warn("gossip leave", "err", err)
		}
	}
	shutCtx, cancelShut := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelShut()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	return nil
}

// loadTLS reads -tls-cert/-tls-key (the API server's TLS configuration)
// and -cluster-tls-ca (mutual TLS between nodes). Both are nil without
// -tls-cert: plain HTTP, which outside -dev the configuration allows only
// with -insecure-plain-http (said loudly here, once). reloadCert (nil
// without TLS) reads the certificate and key files again, for SIGHUP:
// handshakes from then on present the new certificate (renewal without a
// restart); on error the current one stays.
func loadTLS(cfg *Config, log *slog.Logger) (tlsCfg *tls.Config, ct *cluster.ClusterTLS, reloadCert func() error, err error) {
	if cfg.TLSCert == "" {
		if !cfg.Dev {
			log.Warn("INSECURE: -insecure-plain-http: serving plain HTTP; requests, plaintexts and data keys cross the network unencrypted, " +
				"and nodes talk to each other unauthenticated at the transport level (tests and local demos only)")
		}
		return nil, nil, nil, nil
	}
	if cfg.ClusterTLSCA != "" {
		ct, err := cluster.LoadClusterTLS(cfg.TLSCert, cfg.TLSKey, cfg.ClusterTLSCA, cfg.ClusterTLSVerifyHostname)
		if err != nil {
			return nil, nil, nil, err
		}
		log.Info("tls: API over https; mutual TLS between nodes", "cert", cfg.TLSCert, "cluster_ca", cfg.ClusterTLSCA,
			"verify_hostname", cfg.ClusterTLSVerifyHostname)
		return ct.HTTPServerConfig(), ct, func() error { return ct.ReloadCertificate(cfg.TLSCert, cfg.TLSKey) }, nil
	}
	var current atomic.Pointer[tls.Certificate]
	load := func() error {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		current.Store(&cert)
		return nil
	}
	if err := load(); err != nil {
		return nil, nil, nil, err
	}
	if !cfg.Dev {
		log.Warn("INSECURE: -insecure-plain-http with -tls-cert and no -cluster-tls-ca: the API is served over https but Raft between nodes is plain TCP " +
			"(forwarding uses https, verifying peers against the system roots)")
	}
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current.Load(), nil }
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert}, nil, load, nil
}

// openAudit opens this node's audit log in -audit-dir (default
// <data-dir>/audit).
func openAudit(cfg *Config, log *slog.Logger) (*audit.Writer, error) {
	dir := cfg.AuditDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "audit")
	}
	w, err := audit.Open(audit.Options{
		Dir:         dir,
		NodeID:      cfg.NodeID,
		Region:      cfg.Region,
		AccountID:   cfg.AccountID,
		DigestEvery: cfg.AuditDigestEvery,
		MaxBytes:    cfg.AuditMaxBytes,
		NoSync:      !cfg.AuditFsync,
		Logger:      log,
	})
	if err != nil {
		return nil, err
	}
	log.Info("audit log", "file", w.Path(), "key_id", audit.KeyID(w.PublicKey()),
		"public_key_file", filepath.Join(dir, audit.PubFile), "fail_open", cfg.AuditFailOpen, "fsync", cfg.AuditFsync)
	if cfg.AuditFailOpen {
		log.Warn("-audit-fail-open: requests are answered even when their audit record cannot be written")
	}
	return w, nil
}

// newAuthenticator picks how requests are authenticated: with a credentials
// file, SigV4 is verified (-dev included); without one, -dev and
// -insecure-no-auth accept any well-formed SigV4 request unverified (the
// config refuses a cluster with neither). reload re-reads the credentials
// file, keeping the old credentials if the new file is bad.
func newAuthenticator(cfg *Config, log *slog.Logger) (auth api.Authenticator, reload func(), err error) {
	if cfg.CredentialsFile != "" {
		a, err := api.NewSigV4Authenticator(api.SigV4Config{
			Region:    cfg.Region,
			AccountID: cfg.AccountID,
			File:      cfg.CredentialsFile,
			Logger:    log,
		})
		if err != nil {
			return nil, nil, err
		}
		if fi, err := os.Stat(cfg.CredentialsFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the credentials file holds secret keys but other users may read it (chmod 600 it)",
				"file", cfg.CredentialsFile, "mode", fi.Mode().Perm().String())
		}
		return a, func() { _ = a.Reload() }, nil // Reload logs its outcome
	}
	dev := &api.DevAuthenticator{AccountID: cfg.AccountID, Logger: log}
	noFile := func() { log.Info("SIGHUP: no -credentials-file to reload") }
	switch {
	case cfg.Dev:
		log.Warn("DEV MODE: no -credentials-file, so any well-formed SigV4 request is accepted without checking its signature")
		return dev, noFile, nil
	case cfg.InsecureNoAuth:
		log.Warn("INSECURE: -insecure-no-auth: any well-formed SigV4 request is accepted WITHOUT CHECKING ITS SIGNATURE and acts as the account root; " +
			"anyone who can reach this node can use and delete every key. Give -credentials-file for real use.")
		return dev, noFile, nil
	}
	return nil, nil, errors.New("-credentials-file is required outside -dev (or -insecure-no-auth)")
}

// reloadOnSignal calls reload on every signal (SIGHUP) until ctx ends.
func reloadOnSignal(ctx context.Context, hup <-chan os.Signal, reload func(), log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: reloading credentials and certificate")
			reload()
		}
	}
}

// waitUntilCaughtUp retries a read barrier (through the leader) until one
// succeeds, then marks the node ready for good: from then on it lags the
// leader only by replication, like any follower.
func waitUntilCaughtUp(ctx context.Context, fwd *cluster.Forwarder, ready *atomic.Bool, log *slog.Logger) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fwd.ReadBarrier(bctx)
		cancel()
		if err == nil {
			ready.Store(true)
			log.Info("caught up with the cluster; serving KMS requests")
			return
		}
		log.Debug("not caught up yet", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// loadRootKey reads the region root key, or in -dev mode creates one in the
// data dir on first start.
func loadRootKey(cfg *Config, log *slog.Logger) (*crypto.RootKey, error) {
	path := cfg.RootKeyFile
	if path == "" && cfg.Dev {
		path = filepath.Join(cfg.DataDir, "dev-root-key")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			line, err := crypto.GenerateRootKeyFile(rand.Reader)
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(path, line, 0o600); err != nil {
				return nil, fmt.Errorf("dev root key: %w", err)
			}
		}
		log.Warn("DEV MODE: the region root key is stored next to the data it protects; never use -dev for real keys", "root_key_file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	rk, err := crypto.ParseRootKey(b)
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("root key %s: %w", path, err)
	}
	return rk, nil
}

// registerNodeEndpoints adds the health and status endpoints.
func registerNodeEndpoints(h *api.Handler, node *cluster.Node, state *fsm.FSM, members *cluster.Membership, ready *atomic.Bool, cfg *Config) {
	h.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	}))
	h.Handle("GET /readyz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, _ := node.LeaderID(); id == "" {
			http.Error(w, "no leader\n", http.StatusServiceUnavailable)
			return
		}
		if !ready.Load() {
			http.Error(w, "catching up\n", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	}))
	h.Handle("GET /v1/status", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := node.Status()
		status := map[string]any{
			"node_id":         cfg.NodeID,
			"region":          cfg.Region,
			"http_addr":       cfg.HTTPAddr,
			"raft_addr":       st.RaftAddr,
			"state":           st.State,
			"leader_id":       st.LeaderID,
			"term":            st.Term,
			"applied_index":   st.AppliedIndex,
			"commit_index":    st.CommitIndex,
			"last_log_index":  st.LastLogIndex,
			"peers":           st.Peers,
			"crypto_features": crypto.CPUFeatures(),
		}
		if !st.LastContact.IsZero() {
			status["last_contact_ms"] = time.Since(st.LastContact).Milliseconds()
		}
		// The hash of the replicated state lets operators and chaos tests
		// check that replicas agree (compare at equal applied indexes).
		if sum, err := state.StateHash(); err == nil {
			status["state_hash"] = hex.EncodeToString(sum[:])
		}
		if members != nil {
			status["members"] = members.Members()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(status)
	}))
}

// metricsSource reads the node's Raft figures for /metrics at scrape time.
// Its fields are set before the HTTP server starts.
type metricsSource struct {
	node *cluster.Node
	fwd  *cluster.Forwarder
}

func (s *metricsSource) RaftState() string    { return s.node.Status().State }
func (s *metricsSource) AppliedIndex() uint64 { return s.node.AppliedIndex() }
func (s *metricsSource) CommitIndex() uint64  { return s.node.Status().CommitIndex }
func (s *metricsSource) Forwarded() uint64    { return s.fwd.Forwarded() }
func (s *metricsSource) LastContact() time.Duration {
	if lc := s.node.Status().LastContact; !lc.IsZero() {
		return time.Since(lc)
	}
	return 0
}

// serveDebugPprof serves net/http/pprof on addr (checked to be loopback by
// the configuration), on a mux and listener of its own so that the API
// never exposes it. stop closes the listener.
func serveDebugPprof(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-debug-pprof-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug pprof server stopped", "err", err)
		}
	}()
	log.Warn("serving net/http/pprof without authentication (-debug-pprof-addr)", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
