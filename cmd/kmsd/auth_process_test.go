package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
)

// These tests run the kmsd binary: authentication wiring, SIGHUP reload and
// the refusal to start a cluster without credentials.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func kmsdBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts kmsd processes")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kmsd-cmd-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "kmsd")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building kmsd: %v", buildErr)
	}
	return binPath
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// syncBuf collects a process's output.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type kmsdProc struct {
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
	url  string
}

func startKmsd(t *testing.T, args ...string) *kmsdProc {
	t.Helper()
	bin := kmsdBinary(t)
	addr := freePort(t)
	p := &kmsdProc{out: &syncBuf{}, done: make(chan struct{}), url: "http://" + addr}
	p.cmd = exec.Command(bin, append([]string{"-http-addr", addr, "-raft-addr", freePort(t), "-log-level", "debug"}, args...)...)
	p.cmd.Env = cleanEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("kmsd output:\n%s", p.out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("kmsd exited before it was ready:\n%s", p.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kmsd not ready:\n%s", p.out.String())
		}
	}
}

// cleanEnv is the environment without KMSD_ variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KMSD_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *kmsdProc) client(akid, secret string) *kms.Client {
	return kms.New(kms.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(p.url),
		Credentials:      credentials.NewStaticCredentialsProvider(akid, secret, ""),
		RetryMaxAttempts: 1,
	})
}

func listKeys(c *kms.Client) error {
	_, err := c.ListKeys(context.Background(), &kms.ListKeysInput{})
	return err
}

func errCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path+".tmp", []byte(content), 0o600))
	require.NoError(t, os.Rename(path+".tmp", path))
}

func credsJSON(akid, secret, user string) string {
	return `{"account_id":"111122223333","credentials":[{"access_key_id":"` + akid + `","secret_access_key":"` + secret +
		`","arn":"arn:aws:iam::111122223333:user/` + user + `"}]}`
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDevWithCredentialsFileReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	credFile := filepath.Join(dir, "credentials.json")
	const aliceSecret, bobSecret = "alice-SECRET-0123456789", "bob-SECRET-0123456789"
	writeFile(t, credFile, credsJSON("AKIDALICE", aliceSecret, "alice"))
	p := startKmsd(t, "-dev", "-data-dir", filepath.Join(dir, "data"), "-credentials-file", credFile)

	require.NoError(t, listKeys(p.client("AKIDALICE", aliceSecret)))
	require.Equal(t, "InvalidSignatureException", errCode(listKeys(p.client("AKIDALICE", "wrong"))))
	require.Equal(t, "UnrecognizedClientException", errCode(listKeys(p.client("AKIDBOB", bobSecret))))

	// Bob replaces alice.
	writeFile(t, credFile, credsJSON("AKIDBOB", bobSecret, "bob"))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	eventually(t, "bob accepted after SIGHUP", func() bool { return listKeys(p.client("AKIDBOB", bobSecret)) == nil })
	require.Equal(t, "UnrecognizedClientException", errCode(listKeys(p.client("AKIDALICE", aliceSecret))))

	// A bad file keeps bob.
	writeFile(t, credFile, `{"account_id": "111122223333", "credentials": [`)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	eventually(t, "the failed reload logged", func() bool {
		return strings.Contains(p.out.String(), "credentials reload failed; keeping the previous credentials")
	})
	require.NoError(t, listKeys(p.client("AKIDBOB", bobSecret)))

	out := p.out.String()
	require.NotContains(t, out, aliceSecret)
	require.NotContains(t, out, bobSecret)
	require.Contains(t, out, "AKIDALICE") // access key ids are logged
}

func TestInsecureNoAuthCluster(t *testing.T) {
	dir := t.TempDir()
	rk := filepath.Join(dir, "root-key")
	key := make([]byte, 32)
	rand.Read(key)
	writeFile(t, rk, base64.StdEncoding.EncodeToString(key)+"\n")
	p := startKmsd(t, "-node-id", "n1", "-data-dir", filepath.Join(dir, "n1"), "-root-key-file", rk,
		"-gossip-addr", freePort(t), "-bootstrap-expect", "1", "-insecure-no-auth", "-insecure-plain-http")
	require.NoError(t, listKeys(p.client("AKIDANYONE", "any-secret")))
	require.Contains(t, p.out.String(), "INSECURE: -insecure-no-auth")
}

func TestClusterRefusesToStartWithoutCredentials(t *testing.T) {
	bin := kmsdBinary(t)
	dir := t.TempDir()
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		require.NoError(t, err, "kmsd %v should have failed:\n%s", args, out)
		return string(out), 0
	}
	cluster := []string{"-node-id", "n1", "-data-dir", filepath.Join(dir, "n1"), "-root-key-file", filepath.Join(dir, "rk"),
		"-http-addr", freePort(t), "-raft-addr", freePort(t), "-gossip-addr", freePort(t), "-bootstrap-expect", "1", "-insecure-plain-http"}

	out, code := run(cluster...)
	require.Equal(t, 2, code)
	require.Contains(t, out, "-credentials-file is required outside -dev")
	require.Contains(t, out, "-insecure-no-auth")

	// A credentials file that does not parse stops kmsd at startup.
	bad := filepath.Join(dir, "bad.json")
	writeFile(t, bad, `{"account_id":"111122223333","credentials":[{"access_key_id":"A","secret_access_key":"TOPSECRET"}]}`)
	out, code = run("-dev", "-data-dir", filepath.Join(dir, "dev"), "-http-addr", freePort(t), "-raft-addr", freePort(t), "-credentials-file", bad)
	require.NotEqual(t, 0, code)
	require.Contains(t, out, "arn")
	require.NotContains(t, out, "TOPSECRET")

	// A file for another account than -account-id.
	other := filepath.Join(dir, "other.json")
	writeFile(t, other, `{"account_id":"999988887777","credentials":[]}`)
	out, code = run("-dev", "-data-dir", filepath.Join(dir, "dev2"), "-http-addr", freePort(t), "-raft-addr", freePort(t), "-credentials-file", other)
	require.NotEqual(t, 0, code)
	require.Contains(t, out, "-account-id")
}
