package cluster_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/cluster"
	"github.com/kmsd/kmsd/internal/testcerts"
	"github.com/kmsd/kmsd/internal/testcluster"
)

// tlsCluster starts 3 nodes whose Raft runs over mutual TLS, each with a
// Forwarder served over https (client certificates verified if given,
// required by the handler), as kmsd wires them with -cluster-tls-ca.
func tlsCluster(t *testing.T, verifyHostname bool) (*testcluster.Cluster, []*cluster.Forwarder, map[string]string, *testcerts.CA) {
	ca := testcerts.NewCA(t, "kmsd test cluster CA")
	ids := make([]*cluster.ClusterTLS, 3)
	for i := range ids {
		ids[i] = cluster.NewClusterTLS(ca.Issue(t, fmt.Sprintf("node%d", i)).TLS, ca.Pool(), verifyHostname)
	}
	c := testcluster.Start(t, 3, newSetFSM, testcluster.WithConfig(func(i int, cfg *cluster.Config) {
		cfg.TLS = ids[i]
	}))
	c.WaitForLeader(t)
	addrs := map[string]string{}
	var mu sync.Mutex
	lookup := func(id string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		a, ok := addrs[id]
		return a, ok
	}
	var fwds []*cluster.Forwarder
	for i, n := range c.Nodes() {
		f, err := cluster.NewForwarder(cluster.ForwarderConfig{Node: n, LeaderHTTPAddr: lookup, Secret: testSecret,
			Client: ids[i].HTTPClient(10 * time.Second), Scheme: "https", RequireClientCert: true,
			Logger: testcluster.NewLogger(t, nil)})
		require.NoError(t, err)
		// TLS on the listener as kmsd serves it: httptest's StartTLS would
		// install its own certificate, which crypto/tls prefers to
		// GetCertificate for clients that send no server name.
		srv := httptest.NewUnstartedServer(f.Handler())
		srv.Listener = tls.NewListener(srv.Listener, ids[i].HTTPServerConfig())
		srv.Start()
		t.Cleanup(srv.Close)
		u, _ := url.Parse(srv.URL)
		mu.Lock()
		addrs[n.ID()] = u.Host
		mu.Unlock()
		fwds = append(fwds, f)
	}
	return c, fwds, addrs, ca
}

func TestTLSClusterReplicatesAndForwards(t *testing.T) {
	for _, verifyHostname := range []bool{true, false} {
		t.Run(fmt.Sprintf("verifyHostname=%v", verifyHostname), func(t *testing.T) {
			c, fwds, _, _ := tlsCluster(t, verifyHostname)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var last uint64
			for i, f := range fwds {
				cmd := []byte{byte('a' + i)}
				_, index, err := f.Propose(ctx, cmd)
				require.NoError(t, err)
				require.True(t, c.FSM(i).(*setFSM).has(string(cmd)))
				last = max(last, index)
			}
			require.EqualValues(t, 2, fwds[0].Forwarded()+fwds[1].Forwarded()+fwds[2].Forwarded(), "two followers forwarded over https")
			c.WaitForApplied(t, last)
			for i := range fwds {
				for _, k := range []string{"a", "b", "c"} {
					require.True(t, c.FSM(i).(*setFSM).has(k), "node %d lacks %q: raft over TLS did not replicate", i, k)
				}
			}
		})
	}
}

// TestTLSRaftRefusesStrangers: only holders of a cluster CA certificate can
// talk to a node's Raft port.
func TestTLSRaftRefusesStrangers(t *testing.T) {
	c, fwds, _, ca := tlsCluster(t, true)
	leader := c.Leader()
	addr := leader.RaftAddr()
	other := testcerts.NewCA(t, "another CA")
	cases := map[string]*tls.Config{
		"no client certificate": {RootCAs: ca.Pool(), ServerName: "127.0.0.1"},
		"certificate of another CA": {RootCAs: ca.Pool(), ServerName: "127.0.0.1",
			Certificates: []tls.Certificate{other.Issue(t, "mallory").TLS}},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
			if err == nil {
				// TLS 1.3: the client finishes first; the server's refusal
				// arrives as an alert on the first read.
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = conn.Write([]byte{0}) // raft rpcAppendEntries type byte
				_, err = conn.Read(make([]byte, 1))
			}
			require.Error(t, err)
			requireNotTimeout(t, err)
		})
	}
	t.Run("plain TCP", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		require.NoError(t, err)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write([]byte("\x00plain raft rpc\r\n\r\n"))
		// The server answers with a TLS alert (or nothing) and closes.
		_, err = io.ReadAll(conn)
		requireNotTimeout(t, err)
	})
	t.Run("a node whose cluster certificate does not name its address", func(t *testing.T) {
		id := cluster.NewClusterTLS(ca.Issue(t, "elsewhere", net.IPv4(10, 9, 8, 7)).TLS, ca.Pool(), true)
		_, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, id.ClientConfig())
		require.NoError(t, err, "clients are not checked against their address")
	})
	// The cluster still works.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := fwds[c.Index(c.Followers()[0])].Propose(ctx, []byte("still fine"))
	require.NoError(t, err)
}

// requireNotTimeout: the server closed the connection rather than
// letting the test's deadline expire.
func requireNotTimeout(t *testing.T, err error) {
	t.Helper()
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "refused by the server, not timed out: %v", err)
}

// TestTLSForwardingNeedsClientCertificate: /internal/ refuses requests
// without a verified client certificate, even correctly signed ones.
func TestTLSForwardingNeedsClientCertificate(t *testing.T) {
	c, _, addrs, ca := tlsCluster(t, true)
	leader := c.Leader()
	lookup := func(id string) (string, bool) { a, ok := addrs[id]; return a, ok }

	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err := noCert.Post("https://"+addrs[leader.ID()]+cluster.ProposePath, "application/octet-stream", bytes.NewReader([]byte("evil")))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, string(body), "client certificate required")

	// A follower that knows the forwarding secret but has no client
	// certificate cannot forward.
	follower := c.Followers()[0]
	f, err := cluster.NewForwarder(cluster.ForwarderConfig{Node: follower, Secret: testSecret, LeaderHTTPAddr: lookup,
		Scheme: "https", Client: noCert})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err = f.Propose(ctx, []byte("evil2"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "403")

	// A certificate of another CA fails the handshake.
	other := testcerts.NewCA(t, "another CA")
	wrong := cluster.NewClusterTLS(other.Issue(t, "mallory").TLS, ca.Pool(), true)
	f2, err := cluster.NewForwarder(cluster.ForwarderConfig{Node: follower, Secret: testSecret, LeaderHTTPAddr: lookup,
		Scheme: "https", Client: wrong.HTTPClient(5 * time.Second)})
	require.NoError(t, err)
	_, _, err = f2.Propose(ctx, []byte("evil3"))
	require.Error(t, err)

	for i := range c.Nodes() {
		for _, k := range []string{"evil", "evil2", "evil3"} {
			require.False(t, c.FSM(i).(*setFSM).has(k))
		}
	}
}

// TestTLSHostnameVerification: with VerifyHostname a node refuses a peer
// whose certificate (of the cluster CA) does not name the dialed address;
// without it, the chain alone decides.
func TestTLSHostnameVerification(t *testing.T) {
	ca := testcerts.NewCA(t, "kmsd test cluster CA")
	other := testcerts.NewCA(t, "another CA")
	serve := func(t *testing.T, id *cluster.ClusterTLS) string {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", id.ServerConfig())
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
			}
		}()
		return ln.Addr().String()
	}
	elsewhere := serve(t, cluster.NewClusterTLS(ca.Issue(t, "elsewhere", net.IPv4(10, 9, 8, 7)).TLS, ca.Pool(), true))
	stranger := serve(t, cluster.NewClusterTLS(other.Issue(t, "stranger").TLS, ca.Pool(), true))
	dial := func(addr string, verifyHostname bool) error {
		id := cluster.NewClusterTLS(ca.Issue(t, "client").TLS, ca.Pool(), verifyHostname)
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, id.ClientConfig())
		if err == nil {
			c.Close()
		}
		return err
	}
	require.ErrorContains(t, dial(elsewhere, true), "127.0.0.1")
	require.NoError(t, dial(elsewhere, false))
	require.Error(t, dial(stranger, true))
	require.ErrorContains(t, dial(stranger, false), "unknown authority")
}

// TestClusterTLSReloadCertificate: configs made before a reload present the
// new certificate afterwards, on the Raft listener, the HTTP server and as
// client certificate; a certificate of another CA is refused and the
// current one stays.
func TestClusterTLSReloadCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "kmsd test cluster CA")
	_, certFile, keyFile := ca.WriteFiles(t, dir, "node0")
	ct, err := cluster.LoadClusterTLS(certFile, keyFile, filepath.Join(dir, "ca.pem"), true)
	require.NoError(t, err)
	server, httpServer, client := ct.ServerConfig(), ct.HTTPServerConfig(), ct.ClientConfig()
	served := func() [3][]byte {
		a, err := server.GetCertificate(nil)
		require.NoError(t, err)
		b, err := httpServer.GetCertificate(nil)
		require.NoError(t, err)
		c, err := client.GetClientCertificate(nil)
		require.NoError(t, err)
		return [3][]byte{a.Certificate[0], b.Certificate[0], c.Certificate[0]}
	}
	before := served()

	other := testcerts.NewCA(t, "another CA")
	otherDir := t.TempDir()
	_, otherCert, otherKey := other.WriteFiles(t, otherDir, "node0")
	require.ErrorContains(t, ct.ReloadCertificate(otherCert, otherKey), "not issued by the cluster CA")
	require.Equal(t, before, served())
	require.Error(t, ct.ReloadCertificate(filepath.Join(dir, "missing.pem"), keyFile))
	require.Equal(t, before, served())

	ca.WriteFiles(t, dir, "node0")
	require.NoError(t, ct.ReloadCertificate(certFile, keyFile))
	after := served()
	for i := range after {
		require.NotEqual(t, before[i], after[i])
		require.Equal(t, after[0], after[i])
	}
}
