package api

import (
	"bytes"
	"encoding/base64"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/kmsd/kmsd/internal/jsontext"
	"github.com/kmsd/kmsd/service"
)

// A batch request is up to 1,000 items (5.5 MB of base64 for BatchEncrypt
// of 4 KiB plaintexts). encoding/json decodes such a body on one core at
// well under 100 MB/s, which made decoding the largest cost of a batch;
// and encoding each result through reflection cost as much as a data key.
// decodeBatchFast and appendBatchOutput handle the plain JSON that clients
// send and that kmsd answers, several times faster; anything else
// (escapes, unknown or duplicate members, case variants, numbers that are
// not small non-negative integers...) is left to encoding/json, so the
// result is always exactly encoding/json's (TestBatchFastDecodeMatchesJSON
// and FuzzBatchFastDecode check it).

// decodeBatchFast decodes body into in (*service.BatchEncryptInput,
// *service.BatchDecryptInput or *service.BatchGenerateDataKeyInput, zero
// valued) and reports whether it did; false leaves in unspecified, and the
// caller decodes with encoding/json into a fresh value.
func decodeBatchFast(body []byte, in any) bool {
	p := fastParser{b: body}
	var ok bool
	switch v := in.(type) {
	case *service.BatchEncryptInput:
		ok = envelope(&p, &v.Items, &v.GrantTokens, &v.DryRun, p.encryptItem)
	case *service.BatchDecryptInput:
		ok = envelope(&p, &v.Items, &v.GrantTokens, &v.DryRun, p.decryptItem)
	case *service.BatchGenerateDataKeyInput:
		ok = envelope(&p, &v.Items, &v.GrantTokens, &v.DryRun, p.dataKeyItem)
	}
	if !ok {
		return false
	}
	if p.ws(); p.i != len(p.b) {
		return false
	}
	// The blobs are still base64 (aliasing body): decode them now, on all
	// cores for a large batch.
	switch v := in.(type) {
	case *service.BatchEncryptInput:
		return decodeBlobs(len(v.Items), p.blobBytes, func(i int) *[]byte { return &v.Items[i].Plaintext })
	case *service.BatchDecryptInput:
		return decodeBlobs(len(v.Items), p.blobBytes, func(i int) *[]byte { return &v.Items[i].CiphertextBlob })
	}
	return true
}

// parallelBlobBytes is the amount of base64 past which decodeBlobs uses
// every core: below it, starting goroutines costs more than it saves.
const parallelBlobBytes = 256 << 10

// decodeBlobs replaces the base64 in field(i), for i in [0, n), by its
// decoding (nil stays nil). It reports false if any is not valid base64.
func decodeBlobs(n, total int, field func(i int) *[]byte) bool {
	var failed atomic.Bool
	decode := func(i int) {
		f := field(i)
		if *f == nil {
			return
		}
		b := make([]byte, base64.StdEncoding.DecodedLen(len(*f)))
		k, err := base64.StdEncoding.Decode(b, *f)
		if err != nil {
			failed.Store(true)
			return
		}
		*f = b[:k]
	}
	if total < parallelBlobBytes {
		for i := range n {
			decode(i)
		}
	} else {
		parallelRange(n, decode)
	}
	return !failed.Load()
}

// parallelRange calls fn(i) for i in [0, n) on GOMAXPROCS goroutines.
func parallelRange(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// fastParser reads the plain JSON subset decodeBatchFast accepts.
type fastParser struct {
	b []byte
	i int
	// blobBytes counts the base64 that blob left for decodeBlobs.
	blobBytes int
	// recent are the last strings optStr decoded, shared by equal values.
	recent     [4]*string
	nextRecent int
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next skips whitespace and consumes c if it comes next.
func (p *fastParser) next(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// word consumes a literal such as null.
func (p *fastParser) word(w string) bool {
	p.ws()
	if bytes.HasPrefix(p.b[p.i:], []byte(w)) {
		p.i += len(w)
		return true
	}
	return false
}

// rawString returns the bytes of a string that has no escapes (which are
// then the string itself), without checking its content.
func (p *fastParser) rawString() ([]byte, bool) {
	if !p.next('"') {
		return nil, false
	}
	j := bytes.IndexByte(p.b[p.i:], '"')
	if j < 0 {
		return nil, false
	}
	s := p.b[p.i : p.i+j]
	p.i += j + 1
	return s, true
}

// str reads a string member value that encoding/json would store as is:
// no escapes, no control characters, valid UTF-8.
func (p *fastParser) str() (string, bool) {
	s, ok := p.plainString()
	return string(s), ok
}

// plainString reads a string that needs no unescaping and is valid UTF-8
// and returns its bytes (aliasing the body).
func (p *fastParser) plainString() ([]byte, bool) {
	s, ok := p.rawString()
	if !ok {
		return nil, false
	}
	ascii := true
	for _, c := range s {
		if c < 0x20 || c == '\\' {
			return nil, false
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(s) {
		return nil, false
	}
	return s, true
}

// optStr reads null or a string, for a *string member. Items of a batch
// mostly repeat the same few values (one key id, one key spec): a value
// equal to a recent one shares its *string, saving the two allocations per
// member (the operations only read their inputs).
func (p *fastParser) optStr(dst **string) bool {
	if p.word("null") {
		*dst = nil
		return true
	}
	raw, ok := p.plainString()
	if !ok {
		return false
	}
	for _, r := range p.recent {
		if r != nil && *r == string(raw) {
			*dst = r
			return true
		}
	}
	s := string(raw)
	ptr := &s
	p.recent[p.nextRecent%len(p.recent)] = ptr
	p.nextRecent++
	*dst = ptr
	return true
}

// blob reads null or a base64 string, for a []byte member. It leaves the
// base64 in *dst (aliasing the body) for decodeBlobs, which decodes it as
// encoding/json does, with base64.StdEncoding. That decoder skips \r and
// \n, which cannot appear raw in a JSON string: they are refused here, and
// decodeBlobs refuses what base64 refuses (every other byte that is not
// base64, control characters included).
func (p *fastParser) blob(dst *[]byte) bool {
	if p.word("null") {
		*dst = nil
		return true
	}
	s, ok := p.rawString()
	if !ok || bytes.IndexByte(s, '\\') >= 0 || bytes.IndexByte(s, '\n') >= 0 || bytes.IndexByte(s, '\r') >= 0 {
		return false
	}
	*dst = s[:len(s):len(s)]
	p.blobBytes += len(s)
	return true
}

// context reads null or an object of strings, for a map[string]string.
// A repeated name keeps the last value, as encoding/json does.
func (p *fastParser) context(dst *map[string]string) bool {
	if p.word("null") {
		*dst = nil
		return true
	}
	if !p.next('{') {
		return false
	}
	m := map[string]string{}
	if !p.next('}') {
		for {
			k, ok := p.str()
			if !ok || !p.next(':') {
				return false
			}
			v, ok := p.str()
			if !ok {
				return false
			}
			m[k] = v
			if p.next('}') {
				break
			}
			if !p.next(',') {
				return false
			}
		}
	}
	*dst = m
	return true
}

// smallInt reads null or a non-negative integer that fits an int32,
// written without sign, fraction, exponent or leading zero.
func (p *fastParser) smallInt(dst **int32) bool {
	if p.word("null") {
		*dst = nil
		return true
	}
	p.ws()
	start := p.i
	var n int64
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		n = n*10 + int64(p.b[p.i]-'0')
		p.i++
		if n > math.MaxInt32 {
			return false
		}
	}
	digits := p.i - start
	if digits == 0 || (digits > 1 && p.b[start] == '0') {
		return false
	}
	// A number ends at a delimiter, not at ".", "e" or another character.
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
		default:
			return false
		}
	}
	v := int32(n)
	*dst = &v
	return true
}

// optBool reads null, true or false, for a *bool member.
func (p *fastParser) optBool(dst **bool) bool {
	switch {
	case p.word("null"):
		*dst = nil
	case p.word("true"):
		t := true
		*dst = &t
	case p.word("false"):
		f := false
		*dst = &f
	default:
		return false
	}
	return true
}

// object reads an object whose members are among names (matched exactly:
// encoding/json would also match other letter cases, which are left to
// it), each at most once, calling member with the name's index.
func (p *fastParser) object(names []string, member func(int) bool) bool {
	if !p.next('{') {
		return false
	}
	if p.next('}') {
		return true
	}
	var seen uint32
	for {
		k, ok := p.rawString()
		if !ok || !p.next(':') {
			return false
		}
		idx := -1
		for i, n := range names {
			if string(k) == n {
				idx = i
				break
			}
		}
		if idx < 0 || seen&(1<<idx) != 0 || !member(idx) {
			return false
		}
		seen |= 1 << idx
		if p.next('}') {
			return true
		}
		if !p.next(',') {
			return false
		}
	}
}

var envelopeMembers = []string{"Items", "GrantTokens", "DryRun"}

// envelope reads {"Items": [ITEM, ...], "GrantTokens": [...], "DryRun": b},
// reading each item with item.
func envelope[T any](p *fastParser, items *[]T, tokens *[]string, dryRun **bool, item func(*T) bool) bool {
	return p.object(envelopeMembers, func(i int) bool {
		switch i {
		case 0:
			return itemList(p, items, item)
		case 1:
			return p.strings(tokens)
		default:
			return p.optBool(dryRun)
		}
	})
}

// itemList reads null or an array of objects read by item.
func itemList[T any](p *fastParser, items *[]T, item func(*T) bool) bool {
	if p.word("null") {
		*items = nil
		return true
	}
	if !p.next('[') {
		return false
	}
	out := make([]T, 0, 16)
	if !p.next(']') {
		for {
			out = append(out, *new(T))
			if !item(&out[len(out)-1]) {
				return false
			}
			if p.next(']') {
				break
			}
			if !p.next(',') {
				return false
			}
		}
	}
	*items = out
	return true
}

// strings reads null or an array of strings.
func (p *fastParser) strings(dst *[]string) bool {
	if p.word("null") {
		*dst = nil
		return true
	}
	if !p.next('[') {
		return false
	}
	out := []string{}
	if !p.next(']') {
		for {
			s, ok := p.str()
			if !ok {
				return false
			}
			out = append(out, s)
			if p.next(']') {
				break
			}
			if !p.next(',') {
				return false
			}
		}
	}
	*dst = out
	return true
}

var (
	encryptItemMembers = []string{"KeyId", "Plaintext", "EncryptionContext", "EncryptionAlgorithm"}
	decryptItemMembers = []string{"CiphertextBlob", "EncryptionContext", "KeyId", "EncryptionAlgorithm"}
	dataKeyItemMembers = []string{"KeyId", "EncryptionContext", "NumberOfBytes", "KeySpec"}
)

func (p *fastParser) encryptItem(it *service.BatchEncryptItem) bool {
	return p.object(encryptItemMembers, func(i int) bool {
		switch i {
		case 0:
			return p.optStr(&it.KeyId)
		case 1:
			return p.blob(&it.Plaintext)
		case 2:
			return p.context(&it.EncryptionContext)
		default:
			return p.optStr(&it.EncryptionAlgorithm)
		}
	})
}

func (p *fastParser) decryptItem(it *service.BatchDecryptItem) bool {
	return p.object(decryptItemMembers, func(i int) bool {
		switch i {
		case 0:
			return p.blob(&it.CiphertextBlob)
		case 1:
			return p.context(&it.EncryptionContext)
		case 2:
			return p.optStr(&it.KeyId)
		default:
			return p.optStr(&it.EncryptionAlgorithm)
		}
	})
}

func (p *fastParser) dataKeyItem(it *service.BatchGenerateDataKeyItem) bool {
	return p.object(dataKeyItemMembers, func(i int) bool {
		switch i {
		case 0:
			return p.optStr(&it.KeyId)
		case 1:
			return p.context(&it.EncryptionContext)
		case 2:
			return p.smallInt(&it.NumberOfBytes)
		default:
			return p.optStr(&it.KeySpec)
		}
	})
}

// appendBatchOutput appends out (*service.EncryptOutput, DecryptOutput or
// GenerateDataKeyOutput) as json.Marshal would encode it, byte for byte.
func appendBatchOutput(dst []byte, out any) ([]byte, bool) {
	switch o := out.(type) {
	case *service.EncryptOutput:
		dst = append(dst, `{"CiphertextBlob":`...)
		dst = appendJSONBytes(dst, o.CiphertextBlob)
		dst = append(dst, `,"KeyId":`...)
		dst = jsontext.AppendString(dst, o.KeyId)
		dst = append(dst, `,"EncryptionAlgorithm":`...)
		dst = jsontext.AppendString(dst, o.EncryptionAlgorithm)
	case *service.DecryptOutput:
		dst = append(dst, `{"KeyId":`...)
		dst = jsontext.AppendString(dst, o.KeyId)
		dst = append(dst, `,"Plaintext":`...)
		dst = appendJSONBytes(dst, o.Plaintext)
		dst = append(dst, `,"EncryptionAlgorithm":`...)
		dst = jsontext.AppendString(dst, o.EncryptionAlgorithm)
		if o.KeyMaterialId != "" {
			dst = append(dst, `,"KeyMaterialId":`...)
			dst = jsontext.AppendString(dst, o.KeyMaterialId)
		}
	case *service.GenerateDataKeyOutput:
		dst = append(dst, `{"CiphertextBlob":`...)
		dst = appendJSONBytes(dst, o.CiphertextBlob)
		if len(o.Plaintext) > 0 {
			dst = append(dst, `,"Plaintext":`...)
			dst = appendJSONBytes(dst, o.Plaintext)
		}
		dst = append(dst, `,"KeyId":`...)
		dst = jsontext.AppendString(dst, o.KeyId)
		if o.KeyMaterialId != "" {
			dst = append(dst, `,"KeyMaterialId":`...)
			dst = jsontext.AppendString(dst, o.KeyMaterialId)
		}
	default:
		return dst, false
	}
	return append(dst, '}'), true
}

// batchOutputSize is the encoded size of appendBatchOutput(nil, out) for
// outputs whose strings need no escaping (a capacity, so that the encoding
// is one allocation).
func batchOutputSize(out any) int {
	const names = 96 // member names, quotes, commas and braces
	b64 := base64.StdEncoding.EncodedLen
	switch o := out.(type) {
	case *service.EncryptOutput:
		return names + b64(len(o.CiphertextBlob)) + len(o.KeyId) + len(o.EncryptionAlgorithm)
	case *service.DecryptOutput:
		return names + b64(len(o.Plaintext)) + len(o.KeyId) + len(o.EncryptionAlgorithm) + len(o.KeyMaterialId)
	case *service.GenerateDataKeyOutput:
		return names + b64(len(o.CiphertextBlob)) + b64(len(o.Plaintext)) + len(o.KeyId) + len(o.KeyMaterialId)
	}
	return 0
}

// appendJSONBytes appends b as encoding/json encodes a []byte: null when
// nil, else a base64 string.
func appendJSONBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

// appendJSON appends r as json.Marshal would encode it, byte for byte (the
// differential test in batch_codec_test.go holds it to that): a batch item's
// audit request is built once per item, and reflection was a visible part
// of a batch's cost.
func (r *auditRequestItem) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	first := true
	field := func(name string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
	}
	if r.KeyId != nil {
		field("KeyId")
		dst = jsontext.AppendString(dst, *r.KeyId)
	}
	if len(r.EncryptionContext) > 0 {
		field("EncryptionContext")
		dst = appendJSONStringMap(dst, r.EncryptionContext)
	}
	if r.EncryptionAlgorithm != nil {
		field("EncryptionAlgorithm")
		dst = jsontext.AppendString(dst, *r.EncryptionAlgorithm)
	}
	if r.NumberOfBytes != nil {
		field("NumberOfBytes")
		dst = strconv.AppendInt(dst, int64(*r.NumberOfBytes), 10)
	}
	if r.KeySpec != nil {
		field("KeySpec")
		dst = jsontext.AppendString(dst, *r.KeySpec)
	}
	if r.DryRun != nil {
		field("DryRun")
		dst = strconv.AppendBool(dst, *r.DryRun)
	}
	return append(dst, '}')
}

// sizeHint is a capacity for appendJSON's output that fits the usual item.
func (r *auditRequestItem) sizeHint() int {
	n := 96
	if r.KeyId != nil {
		n += len(*r.KeyId)
	}
	for k, v := range r.EncryptionContext {
		n += len(k) + len(v) + 6
	}
	return n
}

// appendJSON appends r as json.Marshal would encode it, byte for byte.
func (r *auditResponseItem) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	sep := false
	for _, f := range [...]struct{ name, value string }{
		{"KeyId", r.KeyId}, {"EncryptionAlgorithm", r.EncryptionAlgorithm}, {"KeyMaterialId", r.KeyMaterialId},
	} {
		if f.value == "" {
			continue
		}
		if sep {
			dst = append(dst, ',')
		}
		sep = true
		dst = append(dst, '"')
		dst = append(dst, f.name...)
		dst = append(dst, '"', ':')
		dst = jsontext.AppendString(dst, f.value)
	}
	return append(dst, '}')
}

// sizeHint is a capacity for appendJSON's output.
func (r *auditResponseItem) sizeHint() int {
	return 64 + len(r.KeyId) + len(r.EncryptionAlgorithm) + len(r.KeyMaterialId)
}

// appendJSONStringMap appends m as encoding/json encodes a map[string]string:
// keys in bytewise order.
func appendJSONStringMap(dst []byte, m map[string]string) []byte {
	var buf [8]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsontext.AppendString(dst, k)
		dst = append(dst, ':')
		dst = jsontext.AppendString(dst, m[k])
	}
	return append(dst, '}')
}
