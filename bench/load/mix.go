package load

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
)

// Ops are the operations the generator can issue.
var Ops = []string{
	"GenerateDataKey",
	"GenerateDataKeyWithoutPlaintext",
	"Encrypt",
	"Decrypt",
	"ReEncrypt",
	"DescribeKey",
	"CreateKey",
	// kmsd's Batch API (package kmsdclient), Config.BatchSize items per
	// request.
	"BatchGenerateDataKey",
	"BatchGenerateDataKeyWithoutPlaintext",
	"BatchEncrypt",
	"BatchDecrypt",
}

// IsBatchOp reports whether op is a Batch API operation, whose requests
// carry Config.BatchSize items each.
func IsBatchOp(op string) bool { return strings.HasPrefix(op, "Batch") }

// HasBatch reports whether the mix has a batch operation.
func (m Mix) HasBatch() bool {
	for _, e := range m {
		if IsBatchOp(e.Op) {
			return true
		}
	}
	return false
}

func knownOp(name string) (string, bool) {
	for _, o := range Ops {
		if strings.EqualFold(o, name) {
			return o, true
		}
	}
	return "", false
}

// OpWeight is one entry of a Mix.
type OpWeight struct {
	Op     string `json:"op"`
	Weight int    `json:"weight"`
}

// Mix is a weighted choice of operations; only entries with a positive
// weight are kept, in the order given.
type Mix []OpWeight

// ParseMix parses "Op=weight,Op=weight,...", e.g.
// "GenerateDataKey=8,Decrypt=1,Encrypt=1,CreateKey=0". Operation names are
// case-insensitive; a weight of 0 drops the operation; a bare "Op" means
// weight 1. At least one weight must be positive.
func ParseMix(s string) (Mix, error) {
	var m Mix
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, ws, hasW := strings.Cut(part, "=")
		op, ok := knownOp(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("mix: unknown operation %q (known: %s)", strings.TrimSpace(name), strings.Join(Ops, ", "))
		}
		if seen[op] {
			return nil, fmt.Errorf("mix: %s given twice", op)
		}
		seen[op] = true
		w := 1
		if hasW {
			var err error
			w, err = strconv.Atoi(strings.TrimSpace(ws))
			if err != nil || w < 0 {
				return nil, fmt.Errorf("mix: %s: weight %q is not a non-negative integer", op, ws)
			}
		}
		if w > 0 {
			m = append(m, OpWeight{Op: op, Weight: w})
		}
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("mix %q: no operation has a positive weight", s)
	}
	return m, nil
}

// String is the canonical form, parseable by ParseMix.
func (m Mix) String() string {
	parts := make([]string, len(m))
	for i, e := range m {
		parts[i] = fmt.Sprintf("%s=%d", e.Op, e.Weight)
	}
	return strings.Join(parts, ",")
}

// Has reports whether op has a positive weight.
func (m Mix) Has(op string) bool {
	for _, e := range m {
		if e.Op == op {
			return true
		}
	}
	return false
}

// Fractions maps each operation to its share of requests.
func (m Mix) Fractions() map[string]float64 {
	total := 0
	for _, e := range m {
		total += e.Weight
	}
	f := make(map[string]float64, len(m))
	for _, e := range m {
		f[e.Op] = float64(e.Weight) / float64(total)
	}
	return f
}

// picker draws operations with the mix's weights.
type picker struct {
	ops []string
	cum []int
}

func (m Mix) picker() *picker {
	p := &picker{}
	total := 0
	for _, e := range m {
		total += e.Weight
		p.ops = append(p.ops, e.Op)
		p.cum = append(p.cum, total)
	}
	return p
}

func (p *picker) pick(r *rand.Rand) string {
	x := r.IntN(p.cum[len(p.cum)-1])
	i := sort.SearchInts(p.cum, x+1)
	return p.ops[i]
}
