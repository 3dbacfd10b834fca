package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kmsd/kmsd/audit"
	"github.com/kmsd/kmsd/cluster"
	"github.com/kmsd/kmsd/crypto"
)

// Config is everything kmsd is started with.
type Config struct {
	Dev             bool
	NodeID          string
	Region          string
	AccountID       string
	DataDir         string
	HTTPAddr        string
	RaftAddr        string
	GossipAddr      string
	Join            []string
	BootstrapExpect int
	RootKeyFile     string
	CredentialsFile string
	AuditDir        string
	// Audit trail (see package audit).
	AuditDigestEvery int
	AuditMaxBytes    int64
	AuditFailOpen    bool
	AuditFsync       bool
	InsecureNoAuth   bool
	// TLS: the API (and the /internal/ endpoints on the same server) over
	// https with TLSCert/TLSKey; with ClusterTLSCA, mutual TLS between
	// nodes (Raft and forwarding), the same certificate being the node's
	// identity.
	TLSCert                  string
	TLSKey                   string
	ClusterTLSCA             string
	ClusterTLSVerifyHostname bool
	InsecurePlainHTTP        bool
	LogLevel                 string
	LogFormat                string
	MaintenanceTick          time.Duration
	RequireAESNI             bool
	// CiphertextFormat is the blob format written (see
	// service.Config.CiphertextFormat); 1 during a rolling upgrade from a
	// kmsd that reads only format 1.
	CiphertextFormat int
	// Request quotas (see api.QuotaLimiter): Quota is "off" or "aws";
	// QuotaFile (JSON) adjusts the AWS defaults per group and principal.
	Quota     string
	QuotaFile string
	// DebugPprofAddr, if set, serves net/http/pprof on its own listener
	// (loopback only), apart from the API.
	DebugPprofAddr string

	// Raft log compaction (operators rarely change these; tests make them
	// small to exercise snapshot install).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64

	// leaveOnStop is set when kmsd is stopped by SIGTERM (leave the
	// cluster) rather than SIGINT (stop, stay a member).
	leaveOnStop atomic.Bool
}

// parseConfig reads flags, each of which may also come from KMSD_<NAME>
// (upper case, dashes as underscores); a flag on the command line wins.
func parseConfig(args []string, getenv func(string) string) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet("kmsd", flag.ContinueOnError)
	fs.BoolVar(&c.Dev, "dev", false, "one node, data in -data-dir or a temp dir, dev root key in the data dir, any SigV4 credentials accepted (unless -credentials-file)")
	fs.StringVar(&c.NodeID, "node-id", "", "this node's id (default: the host name; kmsd-dev with -dev)")
	fs.StringVar(&c.Region, "region", "us-east-1", "the AWS region this cluster serves")
	fs.StringVar(&c.AccountID, "account-id", "111122223333", "the AWS account id in ARNs")
	fs.StringVar(&c.DataDir, "data-dir", "", "where Raft's log, stable store and snapshots live (a temp dir with -dev if empty)")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "address of the KMS API")
	fs.StringVar(&c.RaftAddr, "raft-addr", "127.0.0.1:8300", "address of Raft traffic")
	fs.StringVar(&c.GossipAddr, "gossip-addr", "127.0.0.1:8301", "address of gossip (memberlist)")
	join := fs.String("join", "", "gossip seeds, host:port,...")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", 0, "bootstrap once this many nodes see each other")
	fs.StringVar(&c.RootKeyFile, "root-key-file", "", "the region root key: 32 random bytes as one line of base64")
	fs.StringVar(&c.CredentialsFile, "credentials-file", "", "SigV4 principals (JSON; re-read on SIGHUP): signatures are verified whenever it is given; required outside -dev unless -insecure-no-auth")
	fs.StringVar(&c.AuditDir, "audit-dir", "", "where this node's audit log goes (default <data-dir>/audit)")
	fs.IntVar(&c.AuditDigestEvery, "audit-digest-every", audit.DefaultDigestEvery, "write a signed digest of the audit chain every this many records")
	fs.Int64Var(&c.AuditMaxBytes, "audit-max-bytes", audit.DefaultMaxBytes, "start a new audit file once the current one is this large")
	fs.BoolVar(&c.AuditFailOpen, "audit-fail-open", false, "answer requests even when their audit record cannot be written (default: fail them with a 500, \"no answer without a record\")")
	fs.BoolVar(&c.AuditFsync, "audit-fsync", true, "fsync each audit record before answering (concurrent requests share fsyncs)")
	fs.BoolVar(&c.InsecureNoAuth, "insecure-no-auth", false, "run a cluster without -credentials-file, accepting any well-formed SigV4 request unverified (testing only)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) to serve the API over https (TLS 1.2+); with -cluster-tls-ca also this node's identity between nodes; re-read with -tls-key on SIGHUP")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key of -tls-cert")
	fs.StringVar(&c.ClusterTLSCA, "cluster-tls-ca", "", "PEM CA that issued every node's -tls-cert: mutual TLS for Raft and node-to-node forwarding (node certificates need serverAuth and clientAuth)")
	fs.BoolVar(&c.ClusterTLSVerifyHostname, "cluster-tls-verify-hostname", true, "with -cluster-tls-ca, a peer's certificate must also name the address it is dialed at (IP or DNS SAN); false: any certificate of the cluster CA")
	fs.BoolVar(&c.InsecurePlainHTTP, "insecure-plain-http", false, "allow plain transport outside -dev: the API over plain HTTP without -tls-cert, Raft and forwarding between nodes unauthenticated without -cluster-tls-ca (tests and local demos; it exposes signed requests, plaintexts and data keys)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.Uint64Var(&c.SnapshotThreshold, "raft-snapshot-threshold", cluster.DefaultSnapshotThreshold, "snapshot once this many log entries were appended since the last snapshot")
	fs.DurationVar(&c.SnapshotInterval, "raft-snapshot-interval", cluster.DefaultSnapshotInterval, "how often Raft checks -raft-snapshot-threshold (randomised up to 2x)")
	fs.Uint64Var(&c.TrailingLogs, "raft-trailing-logs", cluster.DefaultTrailingLogs, "log entries kept after a snapshot (a follower further behind catches up by snapshot install)")
	fs.BoolVar(&c.RequireAESNI, "require-aesni", false, "refuse to start on a CPU without AES-NI (software AES is constant-time but slow)")
	fs.IntVar(&c.CiphertextFormat, "ciphertext-format", int(crypto.BlobVersion), "ciphertext blob format to write: 2, or 1 while a rolling upgrade from a kmsd that reads only format 1 is under way (both are always read)")
	fs.DurationVar(&c.MaintenanceTick, "maintenance-interval", time.Second, "how often the leader checks for due deletions and domain key rotation")
	fs.StringVar(&c.Quota, "quota", "", "per-principal request quotas, answered with ThrottlingException: off, or aws (AWS KMS's default request quotas: cryptographic operations 5500/s, CreateKey 5/s, ...) (default: off, aws with -quota-file)")
	fs.StringVar(&c.QuotaFile, "quota-file", "", `request quotas (JSON) laid over the aws defaults: {"default": {"Cryptographic": 50000, "CreateKey": 5}, "principals": {"<IAM ARN or access key id>": {"CreateKey": 50}}}; a rate <= 0 is unlimited`)

	fs.StringVar(&c.DebugPprofAddr, "debug-pprof-addr", "", "serve Go's profiler (net/http/pprof, /debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060, on a listener of its own without authentication (profiling only; default: off)")

	// Environment first, so that flags parsed afterwards win.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "KMSD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s: %w", name, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *join != "" {
		c.Join = strings.Split(*join, ",")
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	if c.CiphertextFormat < 1 || c.CiphertextFormat > int(crypto.BlobVersion) {
		return fmt.Errorf("-ciphertext-format %d: want 1 to %d", c.CiphertextFormat, crypto.BlobVersion)
	}
	if c.AuditDigestEvery <= 0 {
		return errors.New("-audit-digest-every must be positive")
	}
	if c.AuditMaxBytes < 4096 {
		return errors.New("-audit-max-bytes must be at least 4096")
	}
	if c.InsecureNoAuth && c.CredentialsFile != "" {
		return errors.New("-insecure-no-auth and -credentials-file exclude each other: with a credentials file every signature is verified")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	if c.ClusterTLSCA != "" && c.TLSCert == "" {
		return errors.New("-cluster-tls-ca needs -tls-cert and -tls-key: that certificate is the node's identity between nodes")
	}
	if c.InsecurePlainHTTP && c.ClusterTLSCA != "" {
		return errors.New("-insecure-plain-http and -cluster-tls-ca exclude each other: with both -tls-cert and -cluster-tls-ca nothing is plain")
	}
	if c.DebugPprofAddr != "" {
		if err := checkLoopbackAddr(c.DebugPprofAddr); err != nil {
			return fmt.Errorf("-debug-pprof-addr %q: %w", c.DebugPprofAddr, err)
		}
	}
	if c.Quota == "" {
		c.Quota = "off"
		if c.QuotaFile != "" {
			c.Quota = "aws"
		}
	}
	if c.Quota != "off" && c.Quota != "aws" {
		return fmt.Errorf("-quota %q: want off or aws", c.Quota)
	}
	if c.Quota == "off" && c.QuotaFile != "" {
		return errors.New("-quota off and -quota-file exclude each other")
	}
	if c.Dev {
		if c.NodeID == "" {
			c.NodeID = "kmsd-dev"
		}
		return nil
	}
	if c.NodeID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("-node-id: %w", err)
		}
		c.NodeID = h
	}
	switch {
	case c.DataDir == "":
		return errors.New("-data-dir is required outside -dev")
	case c.RootKeyFile == "":
		return errors.New("-root-key-file is required outside -dev")
	case c.BootstrapExpect < 0:
		return errors.New("-bootstrap-expect must not be negative")
	case c.BootstrapExpect == 0 && len(c.Join) == 0:
		return errors.New("give -bootstrap-expect N (N nodes form a new cluster) or -join (join an existing one)")
	case c.CredentialsFile == "" && !c.InsecureNoAuth:
		return errors.New("-credentials-file is required outside -dev: it lists the SigV4 principals whose signatures kmsd verifies " +
			"(to run a test cluster that accepts any signature instead, give -insecure-no-auth)")
	case c.TLSCert == "" && !c.InsecurePlainHTTP:
		return errors.New("-tls-cert and -tls-key are required outside -dev: the API carries signed requests, plaintexts and data keys " +
			"(scripts/cluster.sh makes a local CA and node certificates; to serve plain HTTP for a test, give -insecure-plain-http)")
	case c.ClusterTLSCA == "" && !c.InsecurePlainHTTP:
		return errors.New("-cluster-tls-ca is required outside -dev: Raft and forwarding between nodes use mutual TLS with certificates of that CA " +
			"(to let nodes talk plain TCP for a test, give -insecure-plain-http)")
	}
	return nil
}

// checkLoopbackAddr accepts host:port only with a loopback IP or
// "localhost": the profiler has no authentication and exposes goroutine
// stacks (with argument words), allocation sites and timings.
func checkLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("must be a loopback address (127.0.0.1, ::1 or localhost): the profiler has no authentication")
	}
	return nil
}
