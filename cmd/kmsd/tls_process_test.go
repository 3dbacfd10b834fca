package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testcerts"
)

// TestTLSSingleNode runs kmsd with -tls-cert/-tls-key/-cluster-tls-ca: the
// API answers over https only, API clients need no certificate, and the
// /internal/ endpoints refuse a client without the cluster certificate.
func TestTLSSingleNode(t *testing.T) {
	bin := kmsdBinary(t)
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "kmsd test CA")
	caFile, certFile, keyFile := ca.WriteFiles(t, dir, "n1")
	rk := filepath.Join(dir, "rk")
	writeFile(t, rk, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	addr := freePort(t)
	cmd := exec.Command(bin, "-node-id", "n1", "-data-dir", filepath.Join(dir, "data"), "-root-key-file", rk,
		"-bootstrap-expect", "1", "-insecure-no-auth", "-http-addr", addr, "-raft-addr", freePort(t), "-gossip-addr", freePort(t),
		"-tls-cert", certFile, "-tls-key", keyFile, "-cluster-tls-ca", caFile)
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
