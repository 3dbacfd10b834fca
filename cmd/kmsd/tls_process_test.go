package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testcerts"
)

// TestTLSSingleNode runs kmsd with -tls-cert/-tls-key/-cluster-tls-ca: the
// API answers over https only, API clients need no certificate, and the
// /internal/ endpoints refuse a client without the cluster certificate.
// tlsNode is a kmsd started by startTLSNode.
type tlsNode struct {
	addr string
	api  *http.Client // trusts the test CA, no client certificate
	out  *syncBuf
	cmd  *exec.Cmd
}

// startTLSNode starts a single-node kmsd over https with the TLS flags in
// tlsArgs and waits until /readyz answers over https.
func startTLSNode(t *testing.T, dir string, ca *testcerts.CA, tlsArgs ...string) *tlsNode {
	t.Helper()
	bin := kmsdBinary(t)
	rk := filepath.Join(dir, "rk")
	writeFile(t, rk, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	addr := freePort(t)
	cmd := exec.Command(bin, append([]string{"-node-id", "n1", "-data-dir", filepath.Join(dir, "data"), "-root-key-file", rk,
		"-bootstrap-expect", "1", "-insecure-no-auth", "-http-addr", addr, "-raft-addr", freePort(t), "-gossip-addr", freePort(t)},
		tlsArgs...)...)
	cmd.Env = cleanEnv()
	out := &syncBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("kmsd output:\n%s", out.String())
		}
	})

	api := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	eventually30 := time.Now().Add(30 * time.Second)
	for {
		resp, err := api.Get("https://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-done:
			t.Fatalf("kmsd exited:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
		require.True(t, time.Now().Before(eventually30), "kmsd not ready over https")
	}
	return &tlsNode{addr: addr, api: api, out: out, cmd: cmd}
}

// servedSerial is the serial number of the certificate the node presents
// in a new TLS handshake.
func servedSerial(t *testing.T, n *tlsNode, ca *testcerts.CA) string {
	t.Helper()
	conn, err := tls.Dial("tcp", n.addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	require.NoError(t, err)
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestTLSCertificateReloadOnSIGHUP: a renewed certificate written over the
// files is served after SIGHUP without a restart, for the API and between
// nodes; a certificate of another CA is refused and the current one stays.
func TestTLSCertificateReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "kmsd test CA")
	caFile, certFile, keyFile := ca.WriteFiles(t, dir, "n1", net.ParseIP("127.0.0.1"))
	n := startTLSNode(t, dir, ca, "-tls-cert", certFile, "-tls-key", keyFile, "-cluster-tls-ca", caFile)
	first := servedSerial(t, n, ca)

	// A certificate of another CA: refused, the first one stays.
	testcerts.NewCA(t, "some other CA").WriteFiles(t, filepath.Join(dir), "n1", net.ParseIP("127.0.0.1"))
	writeFile(t, caFile, string(ca.PEM)) // WriteFiles replaced ca.pem too; kmsd never rereads it
	require.NoError(t, n.cmd.Process.Signal(syscall.SIGHUP))
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(n.out.String(), "certificate not reloaded") })
	require.Equal(t, first, servedSerial(t, n, ca))

	// The renewal from the cluster CA: served from the next handshake on.
	ca.WriteFiles(t, dir, "n1", net.ParseIP("127.0.0.1"))
	require.NoError(t, n.cmd.Process.Signal(syscall.SIGHUP))
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(n.out.String(), "SIGHUP: certificate reloaded") })
	second := servedSerial(t, n, ca)
	require.NotEqual(t, first, second)
	resp, err := n.api.Get("https://" + n.addr + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// waitFor polls cond until it holds or within has passed.
func waitFor(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "condition not met within %v", within)
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTLSSingleNode(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "kmsd test CA")
	caFile, certFile, keyFile := ca.WriteFiles(t, dir, "n1")
	p := startTLSNode(t, dir, ca, "-tls-cert", certFile, "-tls-key", keyFile, "-cluster-tls-ca", caFile)
	addr, api, out := p.addr, p.api, p.out

	require.Contains(t, out.String(), "https://"+addr)

	// Plain HTTP gets no API.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/readyz")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "Go answers plain HTTP on a TLS port with 400: %s", body)
	}

	// TLS 1.1 is refused.
	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11}}}
	_, err = old.Get("https://" + addr + "/healthz")
	require.Error(t, err)

	// /internal/ without a client certificate.
	resp, err = api.Post("https://"+addr+"/internal/v1/propose", "application/octet-stream", strings.NewReader("x"))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, string(body), "client certificate required")
}

// TestPlainTransportOutsideDevRefused: outside -dev a node without TLS
// does not start unless -insecure-plain-http acknowledges it, and then it
// says so in its log.
func TestPlainTransportOutsideDevRefused(t *testing.T) {
	bin := kmsdBinary(t)
	dir := t.TempDir()
	rk := filepath.Join(dir, "rk")
	writeFile(t, rk, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	args := func(data string, extra ...string) []string {
		return append([]string{"-node-id", "n1", "-root-key-file", rk, "-bootstrap-expect", "1", "-insecure-no-auth",
			"-gossip-addr", freePort(t), "-data-dir", filepath.Join(dir, data)}, extra...)
	}
	cmd := exec.Command(bin, args("d1", "-http-addr", freePort(t), "-raft-addr", freePort(t))...)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "kmsd without TLS outside -dev should have refused to start:\n%s", out)
	require.Equal(t, 2, ee.ExitCode())
	require.Contains(t, string(out), "-tls-cert and -tls-key are required outside -dev")
	_, statErr := os.Stat(filepath.Join(dir, "d1", "raft"))
	require.True(t, os.IsNotExist(statErr), "a refused start must not create Raft state")

	q := startKmsd(t, args("d2", "-insecure-plain-http")...)
	require.Contains(t, q.out.String(), "INSECURE: -insecure-plain-http")
}
