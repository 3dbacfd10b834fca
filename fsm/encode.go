package fsm

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"slices"
)

// The canonical encoding of the state is json.Marshal(state): encoding/json
// sorts map keys, so equal states give equal bytes. encodeStateTo produces
// exactly those bytes piecewise (tests compare the two), so that neither a
// snapshot nor a state digest ever holds the encoding of every key at once.

// elemEncoder encodes one value at a time into a reused buffer and passes
// the bytes on to w; the first error sticks.
type elemEncoder struct {
	w   io.Writer
	buf bytes.Buffer
	enc *json.Encoder
	err error
}

func newElemEncoder(w io.Writer) *elemEncoder {
	e := &elemEncoder{w: w}
	// An Encoder escapes HTML like json.Marshal does; it adds a newline,
	// which value drops.
	e.enc = json.NewEncoder(&e.buf)
	return e
}

func (e *elemEncoder) raw(s string) {
	if e.err == nil {
		_, e.err = io.WriteString(e.w, s)
	}
}

// value writes json.Marshal(v).
func (e *elemEncoder) value(v any) {
	if e.err != nil {
		return
	}
	b, err := e.encode(v)
	if err != nil {
		e.err = err
		return
	}
	_, e.err = e.w.Write(b)
}

// encode returns json.Marshal(v) in the encoder's buffer, valid until the
// next call.
func (e *elemEncoder) encode(v any) ([]byte, error) {
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		return nil, err
	}
	b := e.buf.Bytes()
	return b[:len(b)-1], nil
}

// encodeMap writes m as encoding/json does: null when nil, else its
// entries in key order.
func encodeMap[V any](e *elemEncoder, m map[string]V) {
	if m == nil {
		e.raw("null")
		return
	}
	e.raw("{")
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			e.raw(",")
		}
		e.value(k)
		e.raw(":")
		e.value(m[k])
	}
	e.raw("}")
}

// encodeSlice writes s as encoding/json does: null when nil.
func encodeSlice[V any](e *elemEncoder, s []V) {
	if s == nil {
		e.raw("null")
		return
	}
	e.raw("[")
	for i := range s {
		if i > 0 {
			e.raw(",")
		}
		e.value(&s[i])
	}
	e.raw("]")
}

// encodeStateTo writes json.Marshal(st) to w. The field order and omitempty
// rules are those of the state struct's tags.
func encodeStateTo(w io.Writer, st *state) error {
	e := newElemEncoder(w)
	e.raw(`{"keys":`)
	encodeMap(e, st.Keys)
	e.raw(`,"aliases":`)
	encodeMap(e, st.Aliases)
	e.raw(`,"domain_keys":`)
	encodeSlice(e, st.DomainKeys)
	e.raw(`,"recent":`)
	encodeSlice(e, st.Recent)
	if len(st.Grants) > 0 {
		e.raw(`,"grants":`)
		encodeMap(e, st.Grants)
	}
	if len(st.ImportParams) > 0 {
		e.raw(`,"import_params":`)
		encodeMap(e, st.ImportParams)
	}
	e.raw("}")
	return e.err
}
