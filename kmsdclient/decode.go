package kmsdclient

import (
	"encoding/base64"
	"encoding/json"
)

// A batch answer is {"Results":[...]} with one flat object per item whose
// members are strings (base64 for the blobs) or an Error object of two
// strings. encoding/json spent most of a client's CPU on such an answer
// (validating it in one pass, decoding it by reflection in another), so
// decodeBatch reads that shape directly: one pass, no reflection. Anything
// else (an escape in a string, null, a number, a member it does not know,
// another spelling of a name, bad base64) makes it hand the whole answer
// to encoding/json, whose result (or error) stands, so it never decodes
// differently. FuzzDecodeBatch holds it to that.

// batchResult is a result type that decodeBatch can fill.
type batchResult interface {
	DataKeyResult | EncryptResult | DecryptResult
}

// decodeBatch decodes raw, a batch answer, into *results, as
// json.Unmarshal of {"Results": ...} into a struct holding results would.
func decodeBatch[T batchResult](raw []byte, results *[]T) error {
	_, err := decodeBatchPath(raw, results)
	return err
}

// decodeBatchPath is decodeBatch, reporting whether the fast path took raw.
func decodeBatchPath[T batchResult](raw []byte, results *[]T) (fast bool, err error) {
	if rs, ok := fastDecodeBatch[T](raw); ok {
		*results = rs
		return true, nil
	}
	out := struct {
		Results *[]T `json:"Results"`
	}{results}
	return false, json.Unmarshal(raw, &out)
}

// fastDecodeBatch is decodeBatch's fast path; ok is false where it does
// not take raw.
func fastDecodeBatch[T batchResult](raw []byte) (results []T, ok bool) {
	p := batchScanner{b: raw}
	if !p.byte('{') || !p.name("Results") || !p.byte(':') || !p.byte('[') {
		return nil, false
	}
	results = []T{}
	if p.peek(']') {
		p.i++
	} else {
		for {
			var r T
			if !p.result(any(&r)) {
				return nil, false
			}
			results = append(results, r)
			if p.peek(',') {
				p.i++
				continue
			}
			if !p.byte(']') {
				return nil, false
			}
			break
		}
	}
	if !p.byte('}') {
		return nil, false
	}
	p.ws()
	return results, p.i == len(p.b)
}

// batchScanner reads the shape of a batch answer; b[i:] is what is left.
type batchScanner struct {
	b []byte
	i int
}

func (p *batchScanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek skips white space and reports whether c comes next.
func (p *batchScanner) peek(c byte) bool {
	p.ws()
	return p.i < len(p.b) && p.b[p.i] == c
}

// byte consumes c after white space.
func (p *batchScanner) byte(c byte) bool {
	if !p.peek(c) {
		return false
	}
	p.i++
	return true
}

// str consumes a string without escapes and returns its bytes (aliasing
// b). A string holding a backslash, a control character or a byte that is
// not ASCII is refused: encoding/json would unescape it or replace invalid
// UTF-8, which this path does not do.
func (p *batchScanner) str() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// name consumes a member name equal to want.
func (p *batchScanner) name(want string) bool {
	s, ok := p.str()
	return ok && string(s) == want
}

// result consumes one result object into r (a *DataKeyResult,
// *EncryptResult or *DecryptResult).
func (p *batchScanner) result(r any) bool {
	if !p.byte('{') {
		return false
	}
	if p.peek('}') {
		p.i++
		return true
	}
	for {
		name, ok := p.str()
		if !ok || !p.byte(':') {
			return false
		}
		if string(name) == "Error" {
			dst := errorField(r)
			if dst == nil || !p.itemError(dst) {
				return false
			}
		} else {
			v, ok := p.str()
			if !ok || !setMember(r, string(name), v) {
				return false
			}
		}
		if p.peek(',') {
			p.i++
			continue
		}
		return p.byte('}')
	}
}

// itemError consumes an Error object, {"__type": ..., "message": ...},
// into *dst. As encoding/json does, a second Error member of the same
// result is decoded into the first one's ItemError.
func (p *batchScanner) itemError(dst **ItemError) bool {
	if !p.byte('{') {
		return false
	}
	if *dst == nil {
		*dst = new(ItemError)
	}
	e := *dst
	if p.peek('}') {
		p.i++
		return true
	}
	for {
		name, ok := p.str()
		if !ok || !p.byte(':') {
			return false
		}
		v, ok := p.str()
		if !ok {
			return false
		}
		switch string(name) {
		case "__type":
			e.Code = string(v)
		case "message":
			e.Message = string(v)
		default:
			return false
		}
		if p.peek(',') {
			p.i++
			continue
		}
		return p.byte('}')
	}
}

// errorField is r's Error member.
func errorField(r any) **ItemError {
	switch r := r.(type) {
	case *DataKeyResult:
		return &r.Error
	case *EncryptResult:
		return &r.Error
	case *DecryptResult:
		return &r.Error
	}
	return nil
}

// setMember sets r's member name, a string or a base64 blob, to v; it
// reports false for a member r does not have or bad base64.
func setMember(r any, name string, v []byte) bool {
	switch r := r.(type) {
	case *DataKeyResult:
		switch name {
		case "CiphertextBlob":
			return setBlob(&r.CiphertextBlob, v)
		case "Plaintext":
			return setBlob(&r.Plaintext, v)
		case "KeyId":
			r.KeyId = string(v)
		case "KeyMaterialId":
			r.KeyMaterialId = string(v)
		default:
			return false
		}
	case *EncryptResult:
		switch name {
		case "CiphertextBlob":
			return setBlob(&r.CiphertextBlob, v)
		case "KeyId":
			r.KeyId = string(v)
		case "EncryptionAlgorithm":
			r.EncryptionAlgorithm = string(v)
		default:
			return false
		}
	case *DecryptResult:
		switch name {
		case "Plaintext":
			return setBlob(&r.Plaintext, v)
		case "KeyId":
			r.KeyId = string(v)
		case "EncryptionAlgorithm":
			r.EncryptionAlgorithm = string(v)
		case "KeyMaterialId":
			r.KeyMaterialId = string(v)
		default:
			return false
		}
	default:
		return false
	}
	return true
}

// setBlob decodes base64 v into *dst as encoding/json decodes a []byte.
func setBlob(dst *[]byte, v []byte) bool {
	b := make([]byte, base64.StdEncoding.DecodedLen(len(v)))
	n, err := base64.StdEncoding.Decode(b, v)
	if err != nil {
		return false
	}
	*dst = b[:n]
	return true
}

// decodeAnswer decodes a batch answer into out, one of the Batch*Output
// types.
func decodeAnswer(raw []byte, out any) error {
	switch o := out.(type) {
	case *BatchGenerateDataKeyOutput:
		return decodeBatch(raw, &o.Results)
	case *BatchEncryptOutput:
		return decodeBatch(raw, &o.Results)
	case *BatchDecryptOutput:
		return decodeBatch(raw, &o.Results)
	}
	return json.Unmarshal(raw, out)
}
