package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CPUMetric is the name of the process CPU counter every kmsd node exports
// on GET /metrics (with the const labels node_id and region).
const CPUMetric = "process_cpu_seconds_total"

// Sample is one series of the Prometheus text exposition format.
type Sample struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	Value  float64           `json:"value"`
}

// ParseSamples reads the Prometheus text exposition format (version 0.0.4)
// and returns the samples whose metric name is name (all when name is "").
// Comments, HELP and TYPE lines are skipped; timestamps are ignored.
func ParseSamples(r io.Reader, name string) ([]Sample, error) {
	var out []Sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	ln := 0
	for sc.Scan() {
		ln++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSampleLine(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", ln, err)
		}
		if name == "" || s.Name == name {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}

func parseSampleLine(line string) (Sample, error) {
	var s Sample
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return s, errors.New("no value")
	}
	s.Name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		labels, n, err := parseLabels(rest)
		if err != nil {
			return s, err
		}
		s.Labels = labels
		rest = rest[n:]
	}
	fields := strings.Fields(rest)
	if len(fields) < 1 || len(fields) > 2 {
		return s, fmt.Errorf("%s: want a value and an optional timestamp", s.Name)
	}
	v, err := strconv.ParseFloat(fields[0], 64) // accepts NaN, +Inf, -Inf
	if err != nil {
		return s, fmt.Errorf("%s: value: %w", s.Name, err)
	}
	s.Value = v
	return s, nil
}

// parseLabels parses `{a="x",b="y"}` at the start of s and returns the
// labels and the number of bytes consumed.
func parseLabels(s string) (map[string]string, int, error) {
	labels := map[string]string{}
	i := 1
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return nil, 0, errors.New("unterminated label set")
		}
		if s[i] == '}' {
			return labels, i + 1, nil
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq <= 0 {
			return nil, 0, errors.New("label without '='")
		}
		key := strings.TrimSpace(s[i : i+eq])
		i += eq + 1
		if i >= len(s) || s[i] != '"' {
			return nil, 0, fmt.Errorf("label %s: value not quoted", key)
		}
		i++
		var b strings.Builder
		closed := false
		for i < len(s) {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				switch s[i+1] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(s[i+1])
				}
				i += 2
				continue
			}
			i++
			if c == '"' {
				closed = true
				break
			}
			b.WriteByte(c)
		}
		if !closed {
			return nil, 0, fmt.Errorf("label %s: unterminated value", key)
		}
		labels[key] = b.String()
	}
}

// NodeCPU is one scrape of one endpoint's CPU counter.
type NodeCPU struct {
	Endpoint string    `json:"endpoint"`
	NodeID   string    `json:"node_id,omitempty"`
	Region   string    `json:"region,omitempty"`
	Seconds  float64   `json:"cpu_seconds"`
	At       time.Time `json:"at"`
}

// ScrapeCPU fetches endpoint/metrics and returns its process CPU counter
// (summed should a node export several series). A missing /metrics, a
// non-200 answer or an exposition without the counter is an error, which
// callers report as "CPU unknown".
func ScrapeCPU(ctx context.Context, c *http.Client, endpoint string) (NodeCPU, error) {
	out := NodeCPU{Endpoint: endpoint}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(endpoint, "/")+"/metrics", nil)
	if err != nil {
		return out, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := c.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return out, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	samples, err := ParseSamples(io.LimitReader(resp.Body, 16<<20), CPUMetric)
	out.At = time.Now()
	if err != nil {
		return out, err
	}
	if len(samples) == 0 {
		return out, fmt.Errorf("GET /metrics: no %s", CPUMetric)
	}
	for _, s := range samples {
		out.Seconds += s.Value
		if out.NodeID == "" {
			out.NodeID = s.Labels["node_id"]
			out.Region = s.Labels["region"]
		}
	}
	return out, nil
}
