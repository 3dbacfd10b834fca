package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// ReportDirEnv names the directory under which reports are written
// (default os.TempDir()).
const ReportDirEnv = "KMSD_CHAOS_REPORT_DIR"

// maxVisualizedOps bounds the whole-history visualization written when the
// run failed for another reason than linearizability.
const maxVisualizedOps = 20000

// WriteReport writes a report directory kmsd-chaos-<timestamp> under
// $KMSD_CHAOS_REPORT_DIR (or os.TempDir()): history.json (every operation,
// event and acknowledged ciphertext), linearizability.html (porcupine's
// visualization: of the keys that are not linearizable, or else of the
// whole key-state history), logs/<node>.log (every start of each node) and
// summary.txt. It returns the directory.
func WriteReport(c *Cluster, h *History, s *Summary) (string, error) {
	base := os.Getenv(ReportDirEnv)
	if base == "" {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "kmsd-chaos-"+time.Now().Format("20060102-150405.000"))
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return "", err
	}
	s.ReportDir = dir
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}

	hist := struct {
		Start  time.Time `json:"start"`
		Ops    []Op      `json:"ops"`
		Events []Event   `json:"events"`
		Sealed []Sealed  `json:"sealed"`
	}{h.Start(), h.Ops(), h.Events(), h.SealedAll()}
	if b, err := json.MarshalIndent(hist, "", " "); err != nil {
		note(err)
	} else {
		note(os.WriteFile(filepath.Join(dir, "history.json"), b, 0o644))
	}

	for _, n := range c.nodes {
		b, err := os.ReadFile(n.LogPath)
		if err != nil {
			note(err)
			continue
		}
		note(os.WriteFile(filepath.Join(dir, "logs", n.ID+".log"), b, 0o644))
	}

	var info porcupine.LinearizationInfo
	visualize := false
	switch {
	case s.Check.Result == porcupine.Illegal:
		info, visualize = s.Check.Info, true
	default:
		pops := PorcupineOps(hist.Ops)
		if len(pops) <= maxVisualizedOps {
			_, info = porcupine.CheckOperationsVerbose(KeyModel, pops, time.Minute)
			visualize = true
		}
	}
	if visualize {
		var ann []porcupine.Annotation
		for _, e := range hist.Events {
			ann = append(ann, porcupine.Annotation{Tag: "faults", Start: e.Time, Description: e.What, BackgroundColor: "#ffd0d0"})
		}
		info.AddAnnotations(ann)
		note(porcupine.VisualizePath(KeyModel, info, filepath.Join(dir, "linearizability.html")))
	}

	var b strings.Builder
	fmt.Fprintln(&b, s.Line())
	fmt.Fprintf(&b, "failpoints: %v\n", s.Failpoints)
	fmt.Fprintf(&b, "failovers: %v\n", s.Failovers)
	fmt.Fprintf(&b, "maybe-applied CreateKeys that made a key: %d; duplicated: %d; ghost keys: %d; failed but applied: %d\n",
		s.MaybeKeys, s.Duplicated, s.GhostKeys, s.FailedButIn)
	if len(s.Check.IllegalKeys) > 0 {
		fmt.Fprintf(&b, "non-linearizable keys: %v\n", s.Check.IllegalKeys)
		for _, op := range s.Check.IllegalOps {
			m := op.Metadata.(opMeta)
			fmt.Fprintf(&b, "  key %s op %d client %d [%d, %d] at %s (served by %s): %s %s\n", m.KeyID, m.OpID, op.ClientId,
				op.Call, op.Return, m.Node, m.ServedBy, KeyModel.DescribeOperation(op.Input, op.Output), m.Message)
		}
	}
	fmt.Fprintf(&b, "unacknowledged calls: %s\n", s.ErrorBreakdown())
	fmt.Fprintf(&b, "problems (%d):\n", len(s.Problems))
	for _, p := range s.Problems {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	fmt.Fprintf(&b, "violations seen by writers (%d):\n", len(s.Violations))
	for _, v := range s.Violations {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	fmt.Fprintf(&b, "final statuses: %s\n", DescribeStatuses(s.Statuses))
	fmt.Fprintln(&b, "events:")
	for _, e := range hist.Events {
		fmt.Fprintf(&b, "  %12.3fs %s\n", time.Duration(e.Time).Seconds(), e.What)
	}
	if len(errs) > 0 {
		fmt.Fprintf(&b, "errors writing this report: %s\n", strings.Join(errs, "; "))
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(b.String()), 0o644); err != nil {
		return dir, err
	}
	if len(errs) > 0 {
		return dir, fmt.Errorf("chaos: report: %s", strings.Join(errs, "; "))
	}
	return dir, nil
}
