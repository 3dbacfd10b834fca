package chaos

import (
	"fmt"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// Key states of the model. A key enters the history at its CreateKey's
// return (the id is chosen by the server), so per key the history starts
// with that CreateKey.
const (
	stateAbsent   = 0
	stateEnabled  = 1
	stateDisabled = 2
)

var stateNames = []string{"absent", "Enabled", "Disabled"}

// keyInput is a porcupine input: the operation on one key.
type keyInput struct {
	Kind string
}

// keyOutput is a porcupine output.
type keyOutput struct {
	Unknown bool   // maybe applied: any outcome
	Err     string // exception name; "" when acknowledged
	State   string // DescribeKey's KeyState
}

// KeyModel is the per-key sequential specification of CreateKey,
// DisableKey, EnableKey and (strong) DescribeKey. States: absent, Enabled,
// Disabled. NotFoundException is a valid answer only while the key is
// absent; KMSInvalidStateException never is (no key of the workload is
// ever pending deletion or import), nor is any other error.
var KeyModel = porcupine.Model{
	Init: func() any { return stateAbsent },
	Step: func(state, input, output any) (bool, any) {
		st := state.(int)
		in := input.(keyInput)
		out := output.(keyOutput)
		switch in.Kind {
		case OpCreateKey:
			if out.Unknown {
				if st == stateAbsent {
					return true, stateEnabled
				}
				return true, st
			}
			return out.Err == "" && st == stateAbsent, stateEnabled
		case OpDisableKey, OpEnableKey:
			target := stateEnabled
			if in.Kind == OpDisableKey {
				target = stateDisabled
			}
			switch {
			case out.Unknown:
				if st == stateAbsent {
					return true, st
				}
				return true, target
			case out.Err == "":
				return st != stateAbsent, target
			case out.Err == "NotFoundException":
				return st == stateAbsent, st
			default:
				return false, st
			}
		case OpDescribeKey:
			switch {
			case out.Unknown:
				return true, st
			case out.Err == "":
				return st != stateAbsent && out.State == stateNames[st], st
			case out.Err == "NotFoundException":
				return st == stateAbsent, st
			default:
				return false, st
			}
		}
		return false, st
	},
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var order []string
		for _, op := range history {
			id := op.Metadata.(opMeta).KeyID
			if _, ok := byKey[id]; !ok {
				order = append(order, id)
			}
			byKey[id] = append(byKey[id], op)
		}
		out := make([][]porcupine.Operation, 0, len(order))
		for _, id := range order {
			out = append(out, byKey[id])
		}
		return out
	},
	DescribeOperation: func(input, output any) string {
		in := input.(keyInput)
		out := output.(keyOutput)
		switch {
		case out.Unknown:
			return in.Kind + " -> ?"
		case out.Err != "":
			return in.Kind + " -> " + out.Err
		case in.Kind == OpDescribeKey:
			return in.Kind + " -> " + out.State
		}
		return in.Kind + " -> ok"
	},
	DescribeState: func(state any) string { return stateNames[state.(int)] },
	DescribeOperationMetadata: func(info any) string {
		m, ok := info.(opMeta)
		if !ok {
			return ""
		}
		return fmt.Sprintf("op %d key %s node %s served by %s %s", m.OpID, m.KeyID, m.Node, m.ServedBy, m.Message)
	},
}

type opMeta struct {
	OpID     int
	KeyID    string
	Node     string
	ServedBy string
	Message  string
}

// PorcupineOps turns a history into porcupine operations on keys:
//   - acknowledged CreateKeys carry their key id; CreateKeys without an
//     acknowledged id are in no key's history (nobody could name the key);
//   - mutations that may have been applied return at the end of the
//     history with an unknown output; definite failures that never
//     reached a server (dial errors) are dropped, other definite failures
//     are outputs the model must explain;
//   - DescribeKeys count only when strong and answered (an unanswered read
//     says nothing);
//   - Encrypt and Decrypt use a node's applied state by design and are not
//     part of the model.
func PorcupineOps(ops []Op) []porcupine.Operation {
	var end int64
	for _, op := range ops {
		end = max(end, op.Return, op.Call)
	}
	end++
	var out []porcupine.Operation
	for _, op := range ops {
		if op.KeyID == "" || op.Error == "dial" {
			continue
		}
		meta := opMeta{OpID: op.ID, KeyID: op.KeyID, Node: op.Node, ServedBy: op.ServedBy, Message: op.Message}
		po := porcupine.Operation{ClientId: op.Client, Input: keyInput{Kind: op.Kind}, Call: op.Call, Return: op.Return, Metadata: meta}
		switch op.Kind {
		case OpCreateKey:
			if op.Outcome != OK {
				continue
			}
			po.Output = keyOutput{}
		case OpDisableKey, OpEnableKey:
			switch op.Outcome {
			case Maybe:
				po.Output = keyOutput{Unknown: true}
				po.Return = end
			default:
				po.Output = keyOutput{Err: op.Error}
			}
		case OpDescribeKey:
			if !op.Strong || op.Outcome == Maybe {
				continue
			}
			po.Output = keyOutput{Err: op.Error, State: op.State}
		default:
			continue
		}
		out = append(out, po)
	}
	return out
}

// CheckResult is the outcome of a linearizability check.
type CheckResult struct {
	Result porcupine.CheckResult
	Ops    int // porcupine operations checked
	Keys   int // partitions
	// IllegalKeys are the keys whose histories are not linearizable.
	IllegalKeys []string
	// Info covers only the illegal keys (for the visualization).
	Info porcupine.LinearizationInfo
	// IllegalOps are the porcupine operations of the illegal keys.
	IllegalOps []porcupine.Operation
	Took       time.Duration
}

// Check checks the key-state history for linearizability within timeout.
// When it is not linearizable, it finds the offending keys and computes
// the visualization data for them only.
func Check(ops []Op, timeout time.Duration) CheckResult {
	start := time.Now()
	pops := PorcupineOps(ops)
	parts := KeyModel.Partition(pops)
	res := CheckResult{Ops: len(pops), Keys: len(parts)}
	res.Result = porcupine.CheckOperationsTimeout(KeyModel, pops, timeout)
	if res.Result == porcupine.Illegal {
		single := KeyModel
		single.Partition = nil
		for _, p := range parts {
			if porcupine.CheckOperationsTimeout(single, p, timeout) == porcupine.Illegal {
				res.IllegalKeys = append(res.IllegalKeys, p[0].Metadata.(opMeta).KeyID)
				res.IllegalOps = append(res.IllegalOps, p...)
			}
		}
		slices.Sort(res.IllegalKeys)
		_, res.Info = porcupine.CheckOperationsVerbose(KeyModel, res.IllegalOps, timeout)
	}
	res.Took = time.Since(start)
	return res
}
