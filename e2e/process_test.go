// Package e2e starts real kmsd processes, drives them with the AWS SDK and
// the aws CLI, and kills them with SIGKILL.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kmsdBin is the kmsd binary under test: $KMSD_BIN (set by make test), or
// one built into a temp dir by TestMain.
var kmsdBin string

func TestMain(m *testing.M) {
	kmsdBin = os.Getenv("KMSD_BIN")
	var tmp string
	if kmsdBin == "" {
		var err error
		tmp, err = os.MkdirTemp("", "kmsd-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		kmsdBin = filepath.Join(tmp, "kmsd")
		build := exec.Command("go", "build", "-o", kmsdBin, "github.com/kmsd/kmsd/cmd/kmsd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building kmsd:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}

// proc is a running kmsd process.
type proc struct {
	t        *testing.T
	cmd      *exec.Cmd
	dataDir  string
	httpAddr string
	endpoint string
	logPath  string
	done     chan struct{}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startDev starts `kmsd -dev` on dataDir and waits until it is ready.
func startDev(t *testing.T, dataDir string) *proc {
	t.Helper()
	return startDevWith(t, dataDir)
}

// startDevWith is startDev with extra kmsd flags.
func startDevWith(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	p := &proc{t: t, dataDir: dataDir, httpAddr: freeAddr(t), done: make(chan struct{})}
	p.endpoint = "http://" + p.httpAddr
	p.logPath = filepath.Join(t.TempDir(), "kmsd.log")
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(kmsdBin, append([]string{"-dev", "-data-dir", dataDir, "-http-addr", p.httpAddr,
		"-raft-addr", freeAddr(t), "-log-level", "debug"}, extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			t.Logf("kmsd log (%s):\n%s", p.logPath, b)
		}
	})
	p.waitReady(30 * time.Second)
	return p
}

// waitReady polls /readyz until it answers 200, the process exits, or the
// deadline passes.
func (p *proc) waitReady(within time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(p.endpoint + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.logPath)
			p.t.Fatalf("kmsd exited before it was ready:\n%s", b)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("kmsd not ready within %v (last error: %v)", within, err)
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Errorf("kill: %v", err)
	}
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Fatal("kmsd did not stop within 20s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Errorf("kmsd exited with %d after SIGTERM", code)
	}
}

// scanDir reports which of needles occur in any file under dir.
func scanDir(t *testing.T, dir string, needles map[string][]byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for name, n := range needles {
			if bytes.Contains(b, n) {
				found = append(found, fmt.Sprintf("%s in %s", name, strings.TrimPrefix(path, dir)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
