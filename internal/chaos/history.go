package chaos

import (
	"slices"
	"sync"
	"time"
)

// Outcome is what a client knows about a call's effect.
type Outcome string

const (
	// OK: the call was acknowledged.
	OK Outcome = "ok"
	// Fail: the call definitely had no effect (a 4xx answer, or the
	// connection could not even be made).
	Fail Outcome = "fail"
	// Maybe: the effect is unknown (timeout, transport error after the
	// request may have been sent, 5xx). Porcupine sees such a mutation as
	// returning at the end of the history with an unknown output.
	Maybe Outcome = "maybe"
)

// Operation kinds recorded in a history.
const (
	OpCreateKey   = "CreateKey"
	OpDisableKey  = "DisableKey"
	OpEnableKey   = "EnableKey"
	OpDescribeKey = "DescribeKey"
	OpEncrypt     = "Encrypt"
	OpDecrypt     = "Decrypt"
)

// Op is one client call: invoke and return times are monotonic nanoseconds
// since the history's start.
type Op struct {
	ID       int     `json:"id"`
	Client   int     `json:"client"`
	Kind     string  `json:"kind"`
	Node     string  `json:"node"`                // the node the call was sent to
	ServedBy string  `json:"served_by,omitempty"` // X-Kmsd-Served-By of the answer
	Strong   bool    `json:"strong,omitempty"`    // X-Kmsd-Consistency: strong
	Corr     string  `json:"corr,omitempty"`      // CreateKey: client-chosen correlation (the key's description)
	KeyID    string  `json:"key_id,omitempty"`    // input key id; for CreateKey the returned one
	Call     int64   `json:"call_ns"`
	Return   int64   `json:"return_ns"`
	Outcome  Outcome `json:"outcome"`
	Error    string  `json:"error,omitempty"`   // exception name (__type) or transport error class
	Message  string  `json:"message,omitempty"` // error text
	State    string  `json:"state,omitempty"`   // DescribeKey: KeyState answered
	Note     string  `json:"note,omitempty"`
}

// Event is a fault or phase boundary (kill n1, restart n1, round 3...).
type Event struct {
	Time int64  `json:"time_ns"`
	What string `json:"what"`
}

// Sealed is an acknowledged Encrypt: the ciphertext must decrypt to the
// plaintext at every node in the end.
type Sealed struct {
	OpID       int    `json:"op_id"`
	KeyID      string `json:"key_id"`
	Plaintext  []byte `json:"plaintext"`
	Ciphertext []byte `json:"ciphertext"`
}

// History records operations, events and ciphertexts. It is safe for
// concurrent use.
type History struct {
	start time.Time

	mu     sync.Mutex
	ops    []Op
	events []Event
	sealed []Sealed
}

// NewHistory starts a history now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the monotonic time since the history's start.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// At converts a wall-clock instant taken by this process to history time.
func (h *History) At(t time.Time) int64 { return int64(t.Sub(h.start)) }

// Start returns when the history started.
func (h *History) Start() time.Time { return h.start }

// add appends a finished op and returns its id.
func (h *History) add(op Op) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.ID = len(h.ops)
	h.ops = append(h.ops, op)
	return op.ID
}

// Event records a fault or phase boundary at the current time.
func (h *History) Event(what string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, Event{Time: h.Now(), What: what})
}

// Seal records an acknowledged ciphertext.
func (h *History) Seal(s Sealed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sealed = append(h.sealed, s)
}

// Ops returns a copy of the operations, in order of return.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// Events returns a copy of the events.
func (h *History) Events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// SealedAll returns a copy of the acknowledged ciphertexts.
func (h *History) SealedAll() []Sealed {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sealed)
}

// Counts summarises outcomes.
type Counts struct {
	Attempted, OK, Failed, Maybe int
}

// Count counts the operations by outcome.
func (h *History) Count() Counts {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := Counts{Attempted: len(h.ops)}
	for _, op := range h.ops {
		switch op.Outcome {
		case OK:
			c.OK++
		case Fail:
			c.Failed++
		case Maybe:
			c.Maybe++
		}
	}
	return c
}

// AckedSince counts acknowledged mutations invoked at or after t.
func (h *History) AckedSince(t int64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for i := len(h.ops) - 1; i >= 0; i-- {
		op := h.ops[i]
		if op.Return < t-int64(time.Second) {
			// Ops are appended as they return (within microseconds of
			// their return times): nothing earlier was invoked after t.
			break
		}
		if op.Call >= t && op.Outcome == OK && isMutation(op.Kind) {
			n++
		}
	}
	return n
}

func isMutation(kind string) bool {
	switch kind {
	case OpCreateKey, OpDisableKey, OpEnableKey:
		return true
	}
	return false
}
