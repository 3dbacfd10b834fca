package main

import (
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// closedAddr is an http:// URL on which nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "http://" + addr
}

func newTestFlagSet(g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	return fs
}

// answered is a node that answered /v1/status at addr.
func answered(id, region, addr, state, leader string, term, applied uint64) *nodeResult {
	return &nodeResult{
		NodeID: id, Region: region, URL: "http://" + addr + "/v1/status", Reachable: true, Alive: true,
		st: &nodeStatus{NodeID: id, Region: region, State: state, LeaderID: leader, Term: term, AppliedIndex: applied, CommitIndex: applied},
	}
}

func TestStatusRows(t *testing.T) {
	for _, tc := range []struct {
		name    string
		results []*nodeResult
		want    [][]string
	}{
		{
			name:    "single dev node",
			results: []*nodeResult{answered("n1", "us-east-1", "127.0.0.1:8080", "Leader", "n1", 2, 12)},
			want:    [][]string{{"n1", "us-east-1", "127.0.0.1:8080", "Leader", "n1", "12", "0"}},
		},
		{
			name: "followers behind and ahead, unreachable and dead members",
			results: []*nodeResult{
				{NodeID: "n4", Region: "us-east-1", Error: "gossip reports the member dead"},
				answered("n3", "us-east-1", "127.0.0.1:8082", "Follower", "n1", 3, 21),
				{NodeID: "n5", Region: "us-east-1", URL: "http://127.0.0.1:8084/v1/status", Alive: true, Error: "connection refused"},
				answered("n2", "us-east-1", "127.0.0.1:8081", "Follower", "n1", 3, 17),
				answered("n1", "us-east-1", "127.0.0.1:8080", "Leader", "n1", 3, 20),
			},
			want: [][]string{
				{"n1", "us-east-1", "127.0.0.1:8080", "Leader", "n1", "20", "0"},
				{"n2", "us-east-1", "127.0.0.1:8081", "Follower", "n1", "17", "3"},
				{"n3", "us-east-1", "127.0.0.1:8082", "Follower", "n1", "21", "0"}, // read after the leader
				{"n4", "us-east-1", "-", "dead", "-", "-", "-"},
				{"n5", "us-east-1", "127.0.0.1:8084", "unreachable", "-", "-", "-"},
			},
		},
		{
			name: "no leader answered",
			results: []*nodeResult{
				answered("n2", "us-east-1", "127.0.0.1:8081", "Candidate", "", 5, 9),
				answered("n3", "us-east-1", "127.0.0.1:8082", "Follower", "n1", 4, 9),
				{NodeID: "n1", Region: "us-east-1", URL: "http://127.0.0.1:8080/v1/status", Alive: true, Error: "timeout"},
			},
			want: [][]string{
				{"n1", "us-east-1", "127.0.0.1:8080", "unreachable", "-", "-", "-"},
				{"n2", "us-east-1", "127.0.0.1:8081", "Candidate", "-", "9", "-"},
				{"n3", "us-east-1", "127.0.0.1:8082", "Follower", "n1", "9", "-"},
			},
		},
		{
			name: "stale leader: the higher term is the reference",
			results: []*nodeResult{
				answered("n1", "us-east-1", "127.0.0.1:8080", "Leader", "n1", 3, 50),
				answered("n2", "us-east-1", "127.0.0.1:8081", "Leader", "n2", 4, 40),
				answered("n3", "us-east-1", "127.0.0.1:8082", "Follower", "n2", 4, 35),
			},
			want: [][]string{
				{"n1", "us-east-1", "127.0.0.1:8080", "Leader", "n1", "50", "0"},
				{"n2", "us-east-1", "127.0.0.1:8081", "Leader", "n2", "40", "0"},
				{"n3", "us-east-1", "127.0.0.1:8082", "Follower", "n2", "35", "5"},
			},
		},
		{
			name: "each region against its own leader",
			results: []*nodeResult{
				answered("w1", "us-west-2", "10.0.1.1:8080", "Leader", "w1", 1, 100),
				answered("e2", "us-east-1", "10.0.0.2:8080", "Follower", "e1", 1, 5),
				answered("w2", "us-west-2", "10.0.1.2:8080", "Follower", "w1", 1, 90),
				answered("e1", "us-east-1", "10.0.0.1:8080", "Leader", "e1", 1, 7),
			},
			want: [][]string{
				{"e1", "us-east-1", "10.0.0.1:8080", "Leader", "e1", "7", "0"},
				{"e2", "us-east-1", "10.0.0.2:8080", "Follower", "e1", "5", "2"},
				{"w1", "us-west-2", "10.0.1.1:8080", "Leader", "w1", "100", "0"},
				{"w2", "us-west-2", "10.0.1.2:8080", "Follower", "w1", "90", "10"},
			},
		},
		{
			name: "control characters from a node are neutralized",
			results: []*nodeResult{
				answered("n1\x1b[31m", "us-east-1", "127.0.0.1:8080", "Leader", "n1\tx", 1, 1),
			},
			want: [][]string{{"n1\uFFFD[31m", "us-east-1", "127.0.0.1:8080", "Leader", "n1 x", "1", "0"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			summarize(tc.results)
			require.Equal(t, tc.want, statusRows(tc.results))
		})
	}
}

func TestMemberHost(t *testing.T) {
	require.Equal(t, "10.0.0.2:8081", memberHost("10.0.0.2:8081", "kmsd.example"))
	require.Equal(t, "kmsd.example:8081", memberHost(":8081", "kmsd.example"))
	require.Equal(t, "kmsd.example:8081", memberHost("0.0.0.0:8081", "kmsd.example"))
	require.Equal(t, "[::1]:8081", memberHost("[::]:8081", "::1"))
	require.Equal(t, "no-port", memberHost("no-port", "kmsd.example"))
}

// statusServer serves a /v1/status document; doc is read per request so
// it may name servers started after it.
func statusServer(t *testing.T, doc *atomic.Value) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/status" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, doc.Load().(string))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func hostPort(t *testing.T, u string) string {
	t.Helper()
	return strings.TrimPrefix(u, "http://")
}

// statusDoc is a /v1/status document as kmsd writes it.
func statusDoc(t *testing.T, id, httpAddr, state string, applied int, members []map[string]any) string {
	t.Helper()
	doc := map[string]any{
		"node_id": id, "region": "us-east-1", "http_addr": httpAddr, "raft_addr": "127.0.0.1:1",
		"state": state, "leader_id": "n1", "term": 2, "applied_index": applied, "commit_index": applied,
		"last_log_index":  applied,
		"peers":           []map[string]any{{"id": "n1", "addr": "127.0.0.1:1"}, {"id": "n2", "addr": "127.0.0.1:2", "suffrage": "Voter"}},
		"crypto_features": map[string]bool{"aes": true, "pclmulqdq": true},
	}
	if members != nil {
		doc["members"] = members
	}
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	return string(b)
}

func TestClusterStatus(t *testing.T) {
	var seedDoc, n2Doc, badDoc atomic.Value
	seed := statusServer(t, &seedDoc)
	n2 := statusServer(t, &n2Doc)
	bad := statusServer(t, &badDoc)
	badDoc.Store(`{"node_id": `)
	_, n2Port, err := net.SplitHostPort(hostPort(t, n2.URL))
	require.NoError(t, err)
	dead := hostPort(t, closedAddr(t))

	member := func(id, addr string, alive, left bool) map[string]any {
		return map[string]any{"node_id": id, "region": "us-east-1", "http_addr": addr,
			"raft_addr": "127.0.0.1:1", "gossip_addr": "127.0.0.1:2", "alive": alive, "left": left}
	}
	n2Doc.Store(statusDoc(t, "n2", "0.0.0.0:"+n2Port, "Follower", 10, nil))

	t.Run("all nodes answer", func(t *testing.T) {
		seedDoc.Store(statusDoc(t, "n1", hostPort(t, seed.URL), "Leader", 12, []map[string]any{
			member("n1", hostPort(t, seed.URL), true, false),
			member("n2", "0.0.0.0:"+n2Port, true, false), // dialed on the endpoint's host
			member("n5", dead, false, true),              // left: not shown
		}))
		code, out, errOut := cli(t, "", "--endpoint", seed.URL, "cluster", "status")
		require.Equal(t, 0, code, errOut)
		require.Empty(t, errOut)
		require.Equal(t, [][]string{
			{"NODE", "REGION", "HTTP", "STATE", "LEADER", "APPLIED", "LAG"},
			{"n1", "us-east-1", hostPort(t, seed.URL), "Leader", "n1", "12", "0"},
			{"n2", "us-east-1", "127.0.0.1:" + n2Port, "Follower", "n1", "10", "2"},
		}, tableCells(out))
	})

	seedDoc.Store(statusDoc(t, "n1", hostPort(t, seed.URL), "Leader", 12, []map[string]any{
		member("n1", hostPort(t, seed.URL), true, false),
		member("n2", "0.0.0.0:"+n2Port, true, false),
		member("n3", dead, true, false),                      // alive by gossip, but nothing listens
		member("n4", "127.0.0.1:9", false, false),            // dead by gossip: not queried
		member("n5", dead, false, true),                      // left
		member("n6", hostPort(t, bad.URL), true, false),      // answers garbage
		member("n7", hostPort(t, seed.URL)+"0", true, false), // a port out of range
	}))

	t.Run("table with unreachable members", func(t *testing.T) {
		code, out, errOut := cli(t, "", "--endpoint", seed.URL+"/", "--timeout", "5s", "cluster", "status")
		require.Equal(t, 1, code)
		require.Equal(t, [][]string{
			{"NODE", "REGION", "HTTP", "STATE", "LEADER", "APPLIED", "LAG"},
			{"n1", "us-east-1", hostPort(t, seed.URL), "Leader", "n1", "12", "0"},
			{"n2", "us-east-1", "127.0.0.1:" + n2Port, "Follower", "n1", "10", "2"},
			{"n3", "us-east-1", dead, "unreachable", "-", "-", "-"},
			{"n4", "us-east-1", "-", "dead", "-", "-", "-"},
			{"n6", "us-east-1", hostPort(t, bad.URL), "unreachable", "-", "-", "-"},
			{"n7", "us-east-1", hostPort(t, seed.URL) + "0", "unreachable", "-", "-", "-"},
		}, tableCells(out))
		require.Contains(t, errOut, "node n3")
		require.Contains(t, errOut, "node n4")
		require.Contains(t, errOut, "decode status")
		require.Contains(t, errOut, "4 of 6 nodes did not answer")
	})

	t.Run("json", func(t *testing.T) {
		code, out, _ := cli(t, "", "--endpoint", seed.URL, "cluster", "status", "--output", "json")
		require.Equal(t, 1, code)
		var got []struct {
			NodeID    string          `json:"node_id"`
			Reachable bool            `json:"reachable"`
			Alive     bool            `json:"alive"`
			Error     string          `json:"error"`
			Lag       *uint64         `json:"lag"`
			Status    json.RawMessage `json:"status"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &got))
		require.Len(t, got, 6)
		require.Equal(t, "n1", got[0].NodeID)
		require.True(t, got[0].Reachable)
		require.Contains(t, string(got[0].Status), `"crypto_features"`)
		require.Contains(t, string(got[0].Status), `"members"`)
		require.Equal(t, "n2", got[1].NodeID)
		require.Equal(t, uint64(2), *got[1].Lag)
		require.Equal(t, "n3", got[2].NodeID)
		require.False(t, got[2].Reachable)
		require.True(t, got[2].Alive)
		require.NotEmpty(t, got[2].Error)
		require.Nil(t, got[2].Lag)
		require.Nil(t, got[2].Status)
		require.Equal(t, "n4", got[3].NodeID)
		require.False(t, got[3].Alive)
	})

	t.Run("endpoint unreachable", func(t *testing.T) {
		code, out, errOut := cli(t, "", "--endpoint", closedAddr(t), "cluster", "status")
		require.Equal(t, 1, code)
		require.Len(t, tableCells(out), 2)
		require.Equal(t, "unreachable", tableCells(out)[1][3])
		require.Contains(t, errOut, "1 of 1 nodes did not answer")
	})

	t.Run("endpoint without status", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		defer srv.Close()
		code, _, errOut := cli(t, "", "--endpoint", srv.URL, "cluster", "status")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "404")
	})
}

// tableCells splits tabwriter output into cells.
func tableCells(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		rows = append(rows, strings.Fields(line))
	}
	return rows
}
