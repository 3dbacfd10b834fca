package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// ClusterTLS is a node's identity for mutual TLS between the nodes of a
// region: its certificate (the same one its API serves, -tls-cert) and the
// cluster CA (-cluster-tls-ca) that issued every node's certificate.
//
// Verification: a peer is accepted when its certificate chains to the
// cluster CA (and only to it: the system roots are not consulted) with the
// right extended key usage: a node certificate must allow both serverAuth
// and clientAuth (or name no extended key usage at all), since every node
// is server and client. With VerifyHostname (the default in kmsd) a node it
// dials must also present a certificate whose SANs name the host it dialed
// (the IP or DNS name of its Raft and HTTP addresses, as gossiped); without
// it, any certificate of the cluster CA is accepted from any address, which
// suits hosts with changing addresses when the CA is dedicated to the
// cluster. Clients are never checked against their address.
//
// The node certificate can be replaced while the node runs
// (SetCertificate, ReloadCertificate: kmsd does it on SIGHUP), so that
// certificates can be renewed without a restart; every handshake from then
// on presents the new one. The CA pool is fixed for the node's life.
type ClusterTLS struct {
	cert           atomic.Pointer[tls.Certificate]
	roots          *x509.CertPool
	VerifyHostname bool
}

// NewClusterTLS builds a ClusterTLS from a node certificate and the pool
// holding the cluster CA.
func NewClusterTLS(cert tls.Certificate, ca *x509.CertPool, verifyHostname bool) *ClusterTLS {
	c := &ClusterTLS{roots: ca, VerifyHostname: verifyHostname}
	c.SetCertificate(cert)
	return c
}

// SetCertificate makes cert the node's certificate for every handshake
// from now on.
func (c *ClusterTLS) SetCertificate(cert tls.Certificate) { c.cert.Store(&cert) }

// ReloadCertificate reads the node's certificate and key again and, if they
// load and the certificate chains to the cluster CA, uses them from now on;
// on any error the current certificate stays.
func (c *ClusterTLS) ReloadCertificate(certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("cluster tls: node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("cluster tls: node certificate: %w", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("cluster tls: node certificate is not issued by the cluster CA: %w", err)
	}
	c.SetCertificate(cert)
	return nil
}

// getCertificate and getClientCertificate hand crypto/tls the current
// certificate.
func (c *ClusterTLS) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cert.Load(), nil
}

func (c *ClusterTLS) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.cert.Load(), nil
}

// LoadClusterTLS reads the node's certificate and key (PEM) and the cluster
// CA bundle (PEM, one or more certificates).
func LoadClusterTLS(certFile, keyFile, caFile string, verifyHostname bool) (*ClusterTLS, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster tls: node certificate: %w", err)
	}
	pool, err := LoadCertPool(caFile)
	if err != nil {
		return nil, err
	}
	return NewClusterTLS(cert, pool, verifyHostname), nil
}

// LoadCertPool reads a PEM bundle of CA certificates.
func LoadCertPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cluster tls: CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("cluster tls: CA %s: no PEM certificate found", file)
	}
	return pool, nil
}

// CAPool returns the cluster CA pool (to verify clients of /internal/).
func (c *ClusterTLS) CAPool() *x509.CertPool { return c.roots }

// ServerConfig is the listener side: the node's certificate, and a client
// certificate of the cluster CA is required.
func (c *ClusterTLS) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13, // both ends are kmsd
		GetCertificate: c.getCertificate,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      c.roots,
	}
}

// HTTPServerConfig is for the node's HTTP server, which serves both the
// API (clients need no certificate: TLS 1.2 or later, Go's default cipher
// suites) and the /internal/ node-to-node endpoints: a client certificate
// is verified against the cluster CA when one is presented (a bad one
// fails the handshake), and the forwarder's handler (RequireClientCert)
// refuses /internal/ requests without one.
func (c *ClusterTLS) HTTPServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.getCertificate,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      c.roots,
	}
}

// ClientConfig is the dialing side: the node's certificate as client
// certificate; the server must chain to the cluster CA (and, with
// VerifyHostname, name the dialed host; tls.Dial and net/http fill in
// ServerName from the address).
func (c *ClusterTLS) ClientConfig() *tls.Config {
	cfg := &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: c.getClientCertificate,
		RootCAs:              c.roots,
	}
	if !c.VerifyHostname {
		// Chain verification only: crypto/tls cannot verify a chain without
		// a name, so skip its check and verify the chain here.
		roots := c.roots
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyChain(cs.PeerCertificates, roots, x509.ExtKeyUsageServerAuth)
		}
	}
	return cfg
}

func verifyChain(certs []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
	if len(certs) == 0 {
		return errors.New("cluster tls: peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return fmt.Errorf("cluster tls: peer certificate: %w", err)
	}
	return nil
}

// HTTPClient is the forwarder's client: https to peers with the node's
// client certificate, pooled like NewForwardTransport.
func (c *ClusterTLS) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: NewForwardTransport(c.ClientConfig())}
}

// HasVerifiedClientCert reports whether r came over TLS with a client
// certificate that the server verified (against its ClientCAs: the cluster
// CA when ClusterTLS is configured).
func HasVerifiedClientCert(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}

// tlsHandshakeTimeout bounds an incoming Raft connection's handshake: a
// peer that connects and says nothing must not hold a goroutine.
const tlsHandshakeTimeout = 10 * time.Second

// tlsStreamLayer is a raft.StreamLayer over mutual TLS. Incoming
// connections complete their handshake (client certificate verified)
// before Accept returns them, so Raft never reads from an unauthenticated
// peer.
type tlsStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	logger    hclog.Logger

	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
}

func newTLSStreamLayer(bind string, advertise net.Addr, ct *ClusterTLS, logger hclog.Logger) (*tlsStreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	if a, ok := advertise.(*net.TCPAddr); !ok || a.IP == nil || a.IP.IsUnspecified() {
		ln.Close()
		return nil, errors.New("local bind address is not advertisable")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &tlsStreamLayer{ln: ln, advertise: advertise, server: ct.ServerConfig(), client: ct.ClientConfig(),
		logger: logger, conns: make(chan net.Conn), closed: make(chan struct{}), ctx: ctx, cancel: cancel}
	go s.acceptLoop()
	return s, nil
}

func (s *tlsStreamLayer) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			// Transient (EMFILE...): back off and keep listening, as
			// net/http does.
			s.logger.Error("raft tls accept", "error", err)
			select {
			case <-s.closed:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		go s.handshake(c)
	}
}

func (s *tlsStreamLayer) handshake(c net.Conn) {
	tc := tls.Server(c, s.server)
	ctx, cancel := context.WithTimeout(s.ctx, tlsHandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.logger.Warn("rejected raft connection: tls handshake failed", "remote", c.RemoteAddr().String(), "error", err)
		c.Close()
		return
	}
	select {
	case s.conns <- tc:
	case <-s.closed:
		tc.Close()
	}
}

// Accept implements net.Listener: the next authenticated connection.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (s *tlsStreamLayer) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		s.cancel()
		err = s.ln.Close()
	})
	return err
}

// Addr implements net.Listener: the advertised address.
func (s *tlsStreamLayer) Addr() net.Addr { return s.advertise }

// Dial implements raft.StreamLayer: the handshake (server verified, our
// client certificate presented) completes within timeout.
func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", string(address), s.client)
}
