// Package docker_test runs the compose cluster (docker-compose.yml at the
// repository root, image FROM scratch) and cuts nodes off with Docker: a
// follower disconnected from the network, the leader paused. It skips with
// a message where no Docker engine or docker-compose answers.
package docker_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"
)

const waitLimit = 60 * time.Second

// composeCluster is one copy of the compose cluster under its own project
// name, subnet and host ports.
type composeCluster struct {
	t        *testing.T
	root     string   // repository root (docker-compose.yml)
	project  string   // compose project name
	env      []string // KMSD_* variables for docker-compose
	ports    [3]string
	services [3]string
}

func requireDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("docker tests skipped in -short mode")
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("skipping: no Docker engine answers (docker info: %v: %s)", err, strings.TrimSpace(string(out)))
	}
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("skipping: docker-compose is not installed")
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

func run(t *testing.T, env []string, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

// startCompose builds the static binary and the image, writes a root key,
// and starts the three services; they are removed on cleanup.
func startCompose(t *testing.T) *composeCluster {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	work := t.TempDir()

	// The image: FROM scratch around a static binary, as `make docker-image`.
	ctxDir := filepath.Join(work, "image")
	require.NoError(t, os.MkdirAll(filepath.Join(ctxDir, "bin"), 0o755))
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctxDir, "bin", "kmsd"), "./cmd/kmsd")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), df, 0o644))
	n, _ := rand.Int(rand.Reader, big.NewInt(1<<30))
	id := fmt.Sprintf("%d", n.Int64())
	image := "kmsd:e2e-" + id
	run(t, nil, ctxDir, "docker", "build", "-q", "-t", image, ".")
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", image).Run() })

	key := make([]byte, 32)
	rand.Read(key)
	keyPath := filepath.Join(work, "root-key")
	// The container's unprivileged user must read it; the key is a test key.
	require.NoError(t, os.WriteFile(keyPath, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o644))

	// The nodes verify SigV4 against this principal (the clients' credentials).
	credsPath := filepath.Join(work, "credentials.json")
	creds := `{"account_id":"111122223333","credentials":[{"access_key_id":"AKIDEXAMPLE","secret_access_key":"secret","arn":"arn:aws:iam::111122223333:user/e2e","policy":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}}]}`
	require.NoError(t, os.WriteFile(credsPath, []byte(creds), 0o644))

	netN, _ := rand.Int(rand.Reader, big.NewInt(200))
	c := &composeCluster{t: t, root: root, project: "kmsde2e" + id, services: [3]string{"kmsd1", "kmsd2", "kmsd3"}}
	for i := range c.ports {
		c.ports[i] = freePort(t)
	}
	c.env = []string{
		"KMSD_IMAGE=" + image, "KMSD_ROOT_KEY=" + keyPath, "KMSD_CREDENTIALS=" + credsPath,
		fmt.Sprintf("KMSD_NET=172.29.%d", 20+netN.Int64()),
		"KMSD_PORT1=" + c.ports[0], "KMSD_PORT2=" + c.ports[1], "KMSD_PORT3=" + c.ports[2],
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs := exec.Command("docker-compose", "-p", c.project, "logs", "--no-color", "--tail", "200")
			logs.Dir, logs.Env = root, append(os.Environ(), c.env...)
			out, _ := logs.CombinedOutput()
			t.Logf("compose logs:\n%s", out)
		}
		down := exec.Command("docker-compose", "-p", c.project, "down", "-v", "-t", "2")
		down.Dir, down.Env = root, append(os.Environ(), c.env...)
		down.Run()
	})
	run(t, c.env, root, "docker-compose", "-p", c.project, "up", "-d", "--no-build")
	for i := range c.ports {
		c.waitReady(i)
	}
	return c
}

func (c *composeCluster) endpoint(i int) string { return "http://127.0.0.1:" + c.ports[i] }

func (c *composeCluster) container(i int) string {
	return strings.TrimSpace(run(c.t, c.env, c.root, "docker-compose", "-p", c.project, "ps", "-q", c.services[i]))
}

func (c *composeCluster) network() string { return c.project + "_kmsd" }

// waitFor polls cond until it holds or waitLimit passes.
func (c *composeCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

func (c *composeCluster) waitReady(i int) {
	c.waitFor(c.services[i]+" ready", func() bool {
		resp, err := http.Get(c.endpoint(i) + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

type status struct {
	NodeID       string `json:"node_id"`
	State        string `json:"state"`
	LeaderID     string `json:"leader_id"`
	AppliedIndex uint64 `json:"applied_index"`
	StateHash    string `json:"state_hash"`
}

func (c *composeCluster) status(i int) (status, error) {
	var st status
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(c.endpoint(i) + "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func (c *composeCluster) leader() int {
	for i := range c.services {
		if st, err := c.status(i); err == nil && st.State == "Leader" {
			return i
		}
	}
	return -1
}

func (c *composeCluster) client(i int) *kms.Client {
	return kms.New(kms.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(c.endpoint(i)),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		RetryMaxAttempts: 1,
	})
}

func (c *composeCluster) createKey(i int, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := c.client(i).CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		return "", err
	}
	return *out.KeyMetadata.KeyId, nil
}

func (c *composeCluster) hasKey(i int, id string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.client(i).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	return err == nil
}

// waitConverged waits until every node reports the same state hash at the
// same applied index.
func (c *composeCluster) waitConverged() {
	c.waitFor("all nodes at the same applied index and state hash", func() bool {
		var first status
		for i := range c.services {
			st, err := c.status(i)
			if err != nil || st.StateHash == "" {
				return false
			}
			if i == 0 {
				first = st
			} else if st.AppliedIndex != first.AppliedIndex || st.StateHash != first.StateHash {
				return false
			}
		}
		return true
	})
}

func others(i int) []int {
	var o []int
	for j := range 3 {
		if j != i {
			o = append(o, j)
		}
	}
	return o
}

// TestDockerPartitionFollower cuts a follower off the compose network: the
// other two keep serving writes; the isolated node cannot commit; after
// reconnection it catches up and all three agree.
func TestDockerPartitionFollower(t *testing.T) {
	requireDocker(t)
	c := startCompose(t)
	c.waitFor("a leader", func() bool { return c.leader() >= 0 })
	before, err := c.createKey(c.leader(), 10*time.Second)
	require.NoError(t, err)

	l := c.leader()
	f := others(l)[0]
	ctr := c.container(f)
	ip := strings.TrimSpace(run(t, nil, "", "docker", "inspect", "-f",
		fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, c.network()), ctr))
	run(t, nil, "", "docker", "network", "disconnect", c.network(), ctr)
	t.Logf("disconnected %s (%s)", c.services[f], ip)

	// The majority side keeps accepting writes.
	var during []string
	for range 5 {
		id, err := c.createKey(l, 10*time.Second)
		require.NoError(t, err, "write through the leader while a follower is cut off")
		during = append(during, id)
	}
	other := others(l)[1]
	c.waitFor("the keys at the other follower", func() bool { return c.hasKey(other, during[len(during)-1]) })

	run(t, nil, "", "docker", "network", "connect", "--ip", ip, c.network(), ctr)
	t.Logf("reconnected %s", c.services[f])
	c.waitReady(f)
	c.waitFor("the cut-off node to catch up", func() bool {
		for _, id := range append(during, before) {
			if !c.hasKey(f, id) {
				return false
			}
		}
		return true
	})
	c.waitConverged()
}

// TestDockerPauseLeader freezes the leader: a survivor elects a new one and
// accepts a write within 3 s; after unpausing, the old leader steps down
// and catches up.
func TestDockerPauseLeader(t *testing.T) {
	requireDocker(t)
	c := startCompose(t)
	c.waitFor("a leader", func() bool { return c.leader() >= 0 })
	l := c.leader()
	_, err := c.createKey(l, 10*time.Second)
	require.NoError(t, err)

	ctr := c.container(l)
	run(t, nil, "", "docker", "pause", ctr)
	paused := time.Now()
	t.Cleanup(func() { exec.Command("docker", "unpause", ctr).Run() })
	s := others(l)[0]
	var id string
	c.waitFor("a write through a survivor", func() bool {
		id, err = c.createKey(s, 5*time.Second)
		return err == nil
	})
	failover := time.Since(paused)
	t.Logf("leader %s paused; first successful write through %s after %v", c.services[l], c.services[s], failover.Round(time.Millisecond))
	require.Less(t, failover, 3*time.Second, "failover after pausing the leader")

	run(t, nil, "", "docker", "unpause", ctr)
	c.waitFor("the old leader to follow and catch up", func() bool {
		st, err := c.status(l)
		return err == nil && st.State == "Follower" && c.hasKey(l, id)
	})
	c.waitConverged()
}
