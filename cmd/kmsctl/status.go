package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"
)

// maxStatusBody caps a /v1/status document.
const maxStatusBody = 1 << 20

// nodeStatus is the part of a node's GET /v1/status document kmsctl reads.
// Peers and crypto features are kept raw: their shape is the node's
// business, and --output json passes the whole document through anyway.
type nodeStatus struct {
	NodeID         string          `json:"node_id"`
	Region         string          `json:"region"`
	HTTPAddr       string          `json:"http_addr"`
	State          string          `json:"state"`
	LeaderID       string          `json:"leader_id"`
	Term           uint64          `json:"term"`
	AppliedIndex   uint64          `json:"applied_index"`
	CommitIndex    uint64          `json:"commit_index"`
	Peers          json.RawMessage `json:"peers"`
	CryptoFeatures json.RawMessage `json:"crypto_features"`
	// Members is the gossip view of the cluster; absent on a single node.
	Members []member `json:"members"`
}

// member is one entry of a status document's members.
type member struct {
	NodeID     string `json:"node_id"`
	Region     string `json:"region"`
	HTTPAddr   string `json:"http_addr"`
	RaftAddr   string `json:"raft_addr"`
	GossipAddr string `json:"gossip_addr"`
	Alive      bool   `json:"alive"`
	Left       bool   `json:"left"`
}

// nodeResult is what kmsctl learnt about one node; --output json prints a
// list of them, each with the node's whole status document.
type nodeResult struct {
	NodeID    string `json:"node_id"`
	Region    string `json:"region,omitempty"`
	URL       string `json:"url,omitempty"` // the status URL queried
	Reachable bool   `json:"reachable"`
	// Alive is false for a member gossip reports dead: it is not queried.
	Alive bool   `json:"alive"`
	Error string `json:"error,omitempty"`
	// Lag is the region leader's applied index minus this node's; absent
	// when no leader of the region answered.
	Lag    *uint64         `json:"lag,omitempty"`
	Status json.RawMessage `json:"status,omitempty"`

	st *nodeStatus
}

func clusterStatusCommand() *command {
	return &command{
		name: "cluster status",
		short: "Query the endpoint's GET /v1/status, then every alive member's, and show each node's\n" +
			"Raft state, leader, applied index and lag behind its region's leader.\n" +
			"Exits 1 if any node did not answer.",
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("cluster status takes no arguments, got %q", args)
			}
			results := collectStatus(ctx, &http.Client{}, e.endpoint, e.timeout)
			summarize(results)
			failed := 0
			for _, r := range results {
				if !r.Reachable {
					failed++
					fmt.Fprintf(e.stderr, "kmsctl: node %s (%s): %s\n", orDash(sanitize(r.NodeID)), orDash(r.URL), sanitize(r.Error))
				}
			}
			var err error
			if e.json() {
				err = e.writeJSON(results)
			} else {
				err = writeStatusTable(e.stdout, results)
			}
			if err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d nodes did not answer", failed, len(results))
			}
			return nil
		},
	}
}

// collectStatus fetches endpoint's status, then, concurrently, that of
// every alive member it lists. Members that left are skipped; members
// gossip reports dead are listed, not queried.
func collectStatus(ctx context.Context, hc *http.Client, endpoint string, timeout time.Duration) []*nodeResult {
	seed := fetchStatus(ctx, hc, endpoint+"/v1/status", timeout)
	results := []*nodeResult{seed}
	if seed.st == nil {
		return results
	}
	base, _ := url.Parse(endpoint)
	var wg sync.WaitGroup
	seen := map[string]bool{seed.NodeID: true}
	for _, m := range seed.st.Members {
		if m.Left || seen[m.NodeID] {
			continue
		}
		seen[m.NodeID] = true
		if !m.Alive {
			results = append(results, &nodeResult{NodeID: m.NodeID, Region: m.Region, Error: "gossip reports the member dead"})
			continue
		}
		if m.HTTPAddr == "" {
			results = append(results, &nodeResult{NodeID: m.NodeID, Region: m.Region, Alive: true, Error: "the member has no HTTP address"})
			continue
		}
		u := base.Scheme + "://" + memberHost(m.HTTPAddr, base.Hostname()) + "/v1/status"
		r := &nodeResult{}
		results = append(results, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			*r = *fetchStatus(ctx, hc, u, timeout)
			if r.NodeID == "" {
				r.NodeID, r.Region = m.NodeID, m.Region
			}
		}()
	}
	wg.Wait()
	return results
}

// memberHost is a member's HTTP address to dial: an unspecified host
// (":8081", "0.0.0.0:8081") means the host kmsctl already reached.
func memberHost(addr, endpointHost string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort(endpointHost, port)
	}
	return addr
}

func fetchStatus(ctx context.Context, hc *http.Client, u string, timeout time.Duration) *nodeResult {
	r := &nodeResult{URL: u, Alive: true}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := getStatus(ctx, hc, u)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	var st nodeStatus
	if err := json.Unmarshal(body, &st); err != nil {
		r.Error = "decode status: " + err.Error()
		return r
	}
	r.Reachable, r.st, r.Status = true, &st, body
	r.NodeID, r.Region = st.NodeID, st.Region
	return r
}

func getStatus(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBody+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		snippet := body[:min(len(body), 200)]
		return nil, fmt.Errorf("HTTP %s: %s", resp.Status, snippet)
	}
	if len(body) > maxStatusBody {
		return nil, errors.New("status document too large")
	}
	return body, nil
}

// summarize sorts results by region and node and sets each answering
// node's lag behind its region's leader: the answering node in state
// Leader with the highest term (then applied index). A follower a little
// ahead of the leader (the statuses are not read at one instant) has lag 0.
func summarize(results []*nodeResult) {
	slices.SortStableFunc(results, func(a, b *nodeResult) int {
		return cmp.Or(cmp.Compare(a.Region, b.Region), cmp.Compare(a.NodeID, b.NodeID), cmp.Compare(a.URL, b.URL))
	})
	leaders := map[string]*nodeStatus{}
	for _, r := range results {
		if r.st == nil || r.st.State != "Leader" {
			continue
		}
		l := leaders[r.st.Region]
		if l == nil || r.st.Term > l.Term || (r.st.Term == l.Term && r.st.AppliedIndex > l.AppliedIndex) {
			leaders[r.st.Region] = r.st
		}
	}
	for _, r := range results {
		r.Lag = nil
		if r.st == nil {
			continue
		}
		if l := leaders[r.st.Region]; l != nil {
			var lag uint64
			if l.AppliedIndex > r.st.AppliedIndex {
				lag = l.AppliedIndex - r.st.AppliedIndex
			}
			r.Lag = &lag
		}
	}
}

var statusHeader = []string{"NODE", "REGION", "HTTP", "STATE", "LEADER", "APPLIED", "LAG"}

// statusRows are the table's rows, one per node, after summarize.
func statusRows(results []*nodeResult) [][]string {
	rows := make([][]string, 0, len(results))
	for _, r := range results {
		host := "-"
		if u, err := url.Parse(r.URL); err == nil && u.Host != "" {
			host = u.Host
		}
		row := []string{orDash(sanitize(r.NodeID)), orDash(sanitize(r.Region)), host}
		switch {
		case r.st != nil:
			lag := "-"
			if r.Lag != nil {
				lag = strconv.FormatUint(*r.Lag, 10)
			}
			row = append(row, orDash(sanitize(r.st.State)), orDash(sanitize(r.st.LeaderID)),
				strconv.FormatUint(r.st.AppliedIndex, 10), lag)
		case !r.Alive:
			row = append(row, "dead", "-", "-", "-")
		default:
			row = append(row, "unreachable", "-", "-", "-")
		}
		rows = append(rows, row)
	}
	return rows
}

func writeStatusTable(w io.Writer, results []*nodeResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range append([][]string{statusHeader}, statusRows(results)...) {
		for i, cell := range row {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, cell)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
