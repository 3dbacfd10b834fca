package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// scrape GETs a node endpoint and returns its body.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// metricValue returns the value of the first sample whose line matches re.
func metricValue(t *testing.T, body, re string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + re + ` ([0-9.e+-]+)$`).FindStringSubmatch(body)
	require.NotNil(t, m, "no sample matching %s", re)
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}

// TestClusterStatusAndMetrics: /v1/status has the fields operators and
// kmsctl rely on, and /metrics reports requests by operation and outcome,
// the Raft state and indexes, apply latency and forwarded requests.
func TestClusterStatusAndMetrics(t *testing.T) {
	c, _ := startCluster(t)
	ctx := within(t, time.Minute)
	leader, err := c.Leader(ctx)
	require.NoError(t, err)
	f := c.Followers(leader)[0]
	for range 3 {
		createKey(t, ctx, f) // forwarded to the leader
	}
	_, op := f.Client().CreateKey(ctx, "") // answered, and counted
	mustOK(t, op)

	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(scrape(t, f.Endpoint+"/v1/status")), &st))
	for _, field := range []string{"node_id", "region", "state", "leader_id", "applied_index", "commit_index", "peers", "crypto_features", "members", "state_hash"} {
		require.Contains(t, st, field)
	}
	require.Equal(t, f.ID, st["node_id"])
	require.Equal(t, "Follower", st["state"])
	require.Equal(t, leader.ID, st["leader_id"])
	require.Len(t, st["peers"], 3)
	require.Len(t, st["members"], 3)
	require.Contains(t, st["crypto_features"], "aesni")

	m := scrape(t, f.Endpoint+"/metrics")
	require.GreaterOrEqual(t, metricValue(t, m, `kmsd_requests_total\{node_id="`+f.ID+`",operation="CreateKey",outcome="ok",region="us-east-1"\}`), 4.0)
	require.GreaterOrEqual(t, metricValue(t, m, `kmsd_forwarded_requests_total\{node_id="`+f.ID+`",region="us-east-1"\}`), 4.0)
	require.Equal(t, 1.0, metricValue(t, m, `kmsd_raft_state\{node_id="`+f.ID+`",region="us-east-1",state="Follower"\}`))
	require.Positive(t, metricValue(t, m, `kmsd_raft_applied_index\{node_id="`+f.ID+`",region="us-east-1"\}`))
	require.Positive(t, metricValue(t, m, `kmsd_fsm_apply_duration_seconds_count\{node_id="`+f.ID+`",region="us-east-1"\}`))
	require.Positive(t, metricValue(t, m, `kmsd_request_duration_seconds_count\{node_id="`+f.ID+`",operation="CreateKey",region="us-east-1"\}`))

	lm := scrape(t, leader.Endpoint+"/metrics")
	require.Equal(t, 1.0, metricValue(t, lm, `kmsd_raft_state\{node_id="`+leader.ID+`",region="us-east-1",state="Leader"\}`))
}
