package audit

import (
	"bytes"
	"encoding/json"
	"github.com/kmsd/kmsd/internal/jsontext"
	"strconv"
	"strings"
)

// Fast paths of BuildEvent and Record.
//
// Every KMS call a node answers is recorded, so turning a request and its
// response into a record must cost little next to the call. The reference
// implementation (filterSlow, resourcesSlow, json.Marshal of an Event) goes
// through encoding/json's reflection and maps; the code here scans the
// bodies once, by hand, and writes the record with append. It handles what
// SDKs send and kmsd answers (a flat JSON object of ASCII members, no
// duplicate or case-folded member names) and gives up on anything else
// (ok == false), in which case the caller takes the reference path, whose
// output is the definition: the fast path must produce the same bytes
// (checked by differential tests and fuzzing against the reference).

// Value flags, from scanning a JSON value.
const (
	flagWS       = 1 << iota // whitespace between tokens (the value is not compact)
	flagHTML                 // '<', '>' or '&' in a string (encoding/json escapes them)
	flagNonASCII             // a byte >= 0x80 in a string
	flagEscape               // a backslash escape in a string
	flagNested               // an array with an object or array element
)

// maxScanDepth bounds the nesting the fast scanner follows; deeper values
// take the reference path.
const maxScanDepth = 32

// member is one member of a top-level JSON object: its name as written (no
// escapes, printable ASCII) and its value's bytes, both sub-slices of the
// body.
type member struct {
	key   []byte
	val   []byte
	flags uint8
}

// parseTop splits body, a JSON object, into its members. It fails (false)
// on anything that is not a well-formed object of plainly written member
// names, leaving it to the reference path.
func parseTop(body []byte, out []member) ([]member, bool) {
	n := len(body)
	i := skipWS(body, 0)
	if i >= n || body[i] != '{' {
		return nil, false
	}
	i = skipWS(body, i+1)
	if i < n && body[i] == '}' {
		return out, skipWS(body, i+1) == n
	}
	for {
		if i >= n || body[i] != '"' {
			return nil, false
		}
		j := i + 1
		for j < n && body[j] != '"' {
			if c := body[j]; c < 0x20 || c >= 0x7f || c == '\\' {
				return nil, false
			}
			j++
		}
		if j >= n {
			return nil, false
		}
		m := member{key: body[i+1 : j]}
		i = skipWS(body, j+1)
		if i >= n || body[i] != ':' {
			return nil, false
		}
		i = skipWS(body, i+1)
		end, ok := scanValue(body, i, 0, &m.flags)
		if !ok {
			return nil, false
		}
		m.val = body[i:end]
		out = append(out, m)
		i = skipWS(body, end)
		if i >= n {
			return nil, false
		}
		switch body[i] {
		case ',':
			i = skipWS(body, i+1)
		case '}':
			return out, skipWS(body, i+1) == n
		default:
			return nil, false
		}
	}
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

// skipInnerWS skips whitespace inside a value, noting that there was some.
func skipInnerWS(b []byte, i int, flags *uint8) int {
	j := skipWS(b, i)
	if j != i {
		*flags |= flagWS
	}
	return j
}

// scanValue returns the end of the JSON value starting at b[i], checking
// its syntax as strictly as encoding/json does.
func scanValue(b []byte, i, depth int, flags *uint8) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		return scanString(b, i, flags)
	case c == '{':
		if depth >= maxScanDepth {
			return 0, false
		}
		i = skipInnerWS(b, i+1, flags)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			var ok bool
			if i, ok = scanString(b, i, flags); !ok {
				return 0, false
			}
			i = skipInnerWS(b, i, flags)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			i = skipInnerWS(b, i+1, flags)
			if i, ok = scanValue(b, i, depth+1, flags); !ok {
				return 0, false
			}
			i = skipInnerWS(b, i, flags)
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case ',':
				i = skipInnerWS(b, i+1, flags)
			case '}':
				return i + 1, true
			default:
				return 0, false
			}
		}
	case c == '[':
		if depth >= maxScanDepth {
			return 0, false
		}
		i = skipInnerWS(b, i+1, flags)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			if i < len(b) && (b[i] == '{' || b[i] == '[') && depth == 0 {
				*flags |= flagNested
			}
			var ok bool
			if i, ok = scanValue(b, i, depth+1, flags); !ok {
				return 0, false
			}
			i = skipInnerWS(b, i, flags)
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case ',':
				i = skipInnerWS(b, i+1, flags)
			case ']':
				return i + 1, true
			default:
				return 0, false
			}
		}
	case c == '-' || '0' <= c && c <= '9':
		return scanNumber(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	}
	return 0, false
}

func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanNumber follows JSON's number grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	n := len(b)
	if b[i] == '-' {
		i++
	}
	switch {
	case i < n && b[i] == '0':
		i++
	case i < n && '1' <= b[i] && b[i] <= '9':
		for i < n && isDigit(b[i]) {
			i++
		}
	default:
		return 0, false
	}
	if i < n && b[i] == '.' {
		i++
		if i >= n || !isDigit(b[i]) {
			return 0, false
		}
		for i < n && isDigit(b[i]) {
			i++
		}
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < n && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= n || !isDigit(b[i]) {
			return 0, false
		}
		for i < n && isDigit(b[i]) {
			i++
		}
	}
	return i, true
}

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// scanString returns the end of the JSON string starting at b[i] (a '"').
func scanString(b []byte, i int, flags *uint8) (int, bool) {
	n := len(b)
	for j := i + 1; j < n; {
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c == '\\':
			*flags |= flagEscape
			if j+1 >= n {
				return 0, false
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+5 >= n || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) || !isHex(b[j+5]) {
					return 0, false
				}
				j += 6
			default:
				return 0, false
			}
		case c < 0x20:
			return 0, false
		case c >= 0x80:
			*flags |= flagNonASCII
			j++
		case c == '<' || c == '>' || c == '&':
			*flags |= flagHTML
			j++
		default:
			j++
		}
	}
	return 0, false
}

// appendCompact appends v without the whitespace between its tokens. v is
// a valid JSON value.
func appendCompact(dst, v []byte) []byte {
	inString := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inString:
			dst = append(dst, c)
			if c == '\\' {
				i++
				dst = append(dst, v[i])
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
			dst = append(dst, c)
		case isWS(c):
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// resourceFields are the top-level members resources reads (encoding/json
// matches struct fields case-insensitively: a member spelled differently
// takes the reference path).
var resourceFields = [...]string{"KeyId", "KeyArn", "TargetKeyId", "SourceKeyId", "DestinationKeyId", "KeyMetadata"}

// Member classes for filterMembers: one map lookup tells what the three
// sets of record.go say about a name.
const (
	classScalar = 1 << iota
	classVerbatim
	classRecurse
)

var memberClass = func() map[string]uint8 {
	m := make(map[string]uint8, len(keepScalar)+len(keepVerbatim)+len(recurse))
	for n := range keepScalar {
		m[n] |= classScalar
	}
	for n := range keepVerbatim {
		m[n] |= classVerbatim
	}
	for n := range recurse {
		m[n] |= classRecurse
	}
	return m
}()

// filterMembers is Filter on a parsed object. ok is false if the reference
// path must decide: a member to recurse into, a duplicate member that
// matters, or a kept value that encoding/json would write differently.
func filterMembers(ms []member) (out []byte, ok bool) {
	return filterMembersTo(nil, ms)
}

// filterMembersTo is filterMembers writing into dst's space: out is
// dst[:0] with the filtered object, or nil (JSON null) if nothing is kept.
func filterMembersTo(dst []byte, ms []member) (out []byte, ok bool) {
	out, ok = filterObjectFast(dst, ms, 0)
	if ok && len(out) == 2 { // "{}": nothing kept
		return nil, true
	}
	return out, ok
}

// filterObjectFast is filterObject then json.Marshal on a parsed object, at
// nesting depth depth: the filtered object ("{}" when nothing is kept), or
// ok false when the reference path must decide.
func filterObjectFast(dst []byte, ms []member, depth int) (out []byte, ok bool) {
	var keptBuf [16]int
	var valsBuf [16][]byte
	kept, vals := keptBuf[:0], valsBuf[:0] // vals[n]: kept[n]'s filtered value, nil for m.val itself
	size := 2
	for i, m := range ms {
		name := string(m.key) // no allocation: used as a map index only
		class := memberClass[name]
		if class == 0 {
			continue
		}
		for _, j := range kept {
			if string(ms[j].key) == name {
				return nil, false // the last one wins in a map: let the reference path say
			}
		}
		var filtered []byte
		drop := false
		switch {
		case class&classVerbatim != 0:
		case class&classScalar != 0:
			// Not a scalar or list of scalars: dropped.
			drop = m.val[0] == '{' || m.val[0] == '[' && m.flags&flagNested != 0
		default: // classRecurse only
			var present bool
			filtered, present, ok = filterValueFast(m.val, depth+1)
			if !ok {
				return nil, false
			}
			drop = !present
		}
		if drop {
			// A duplicate of this name must still be noticed.
			for _, o := range ms[i+1:] {
				if string(o.key) == name {
					return nil, false
				}
			}
			continue
		}
		if filtered == nil && m.flags&(flagHTML|flagNonASCII) != 0 {
			return nil, false
		}
		kept = append(kept, i)
		vals = append(vals, filtered)
		size += len(m.key) + len(m.val) + 4
	}
	// encoding/json writes a map's members sorted by name; the names differ
	// from the keys in their first letter only (lowerFirst).
	for a := 1; a < len(kept); a++ {
		for b := a; b > 0 && outNameLess(ms[kept[b]].key, ms[kept[b-1]].key); b-- {
			kept[b], kept[b-1] = kept[b-1], kept[b]
			vals[b], vals[b-1] = vals[b-1], vals[b]
		}
	}
	out = dst[:0]
	if cap(out) < size {
		out = make([]byte, 0, size)
	}
	out = append(out, '{')
	for n, i := range kept {
		m := ms[i]
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, '"', lowerASCII(m.key[0]))
		out = append(out, m.key[1:]...)
		out = append(out, '"', ':')
		switch {
		case vals[n] != nil:
			out = append(out, vals[n]...)
		case m.flags&flagWS != 0:
			out = appendCompact(out, m.val)
		default:
			out = append(out, m.val...)
		}
	}
	return append(out, '}'), true
}

// maxFilterDepth bounds the recursion of filterValueFast; deeper values
// take the reference path.
const maxFilterDepth = 8

// filterValueFast is filterValue then json.Marshal for a member the filter
// recurses into (KeyMetadata, Tags, Grants...): an object is filtered, a
// list has its objects and lists filtered and its scalars kept, anything
// else is dropped (present false). ok is false when the reference path
// must decide (strings encoding/json would write differently, duplicate
// names, too deep).
func filterValueFast(v []byte, depth int) (out []byte, present, ok bool) {
	if depth > maxFilterDepth {
		return nil, false, false
	}
	switch v[0] {
	case '{':
		ms, ok := parseTop(v, nil)
		if !ok {
			return nil, false, false
		}
		out, ok = filterObjectFast(nil, ms, depth)
		return out, ok, ok
	case '[':
		out = append(make([]byte, 0, len(v)), '[')
		i := skipWS(v, 1)
		if v[i] == ']' {
			return append(out, ']'), true, true
		}
		first := true
		for {
			var ef uint8
			end, ok := scanValue(v, i, 0, &ef)
			if !ok {
				return nil, false, false
			}
			e := v[i:end]
			var kept []byte
			if e[0] == '{' || e[0] == '[' {
				f, present, ok := filterValueFast(e, depth+1)
				if !ok {
					return nil, false, false
				}
				if present {
					kept = f
				}
			} else {
				if ef&(flagHTML|flagNonASCII) != 0 {
					return nil, false, false
				}
				kept = e // a scalar (or null): kept as is
			}
			if kept != nil {
				if !first {
					out = append(out, ',')
				}
				first = false
				out = append(out, kept...)
			}
			i = skipWS(v, end)
			if v[i] == ']' {
				return append(out, ']'), true, true
			}
			i = skipWS(v, i+1) // past the ','
		}
	}
	return nil, false, true // a scalar or null: filterValue drops it
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// outNameLess orders keys by lowerFirst(key).
func outNameLess(a, b []byte) bool {
	if ca, cb := lowerASCII(a[0]), lowerASCII(b[0]); ca != cb {
		return ca < cb
	}
	return string(a[1:]) < string(b[1:])
}

// resourceIDs returns the key ids and ARNs resources reads from a parsed
// body, in resources' order. skip is true when encoding/json would fail to
// decode the body into resources' struct (a member of the wrong type), so
// that the body names no resource. ok is false if the reference path must
// decide.
func resourceIDs(ms []member) (ids [6][]byte, skip, ok bool) {
	seen := 0
	for _, m := range ms {
		idx := -1
		switch string(m.key) {
		case "KeyId":
			idx = 0
		case "KeyArn":
			idx = 1
		case "TargetKeyId":
			idx = 2
		case "SourceKeyId":
			idx = 3
		case "DestinationKeyId":
			idx = 4
		case "KeyMetadata":
			// Its Arn, as addSlow decodes it into a struct pointer.
			if seen&(1<<5) != 0 {
				return ids, false, false
			}
			seen |= 1 << 5
			switch m.val[0] {
			case '{':
				arn, arnSkip, arnOK := metadataARN(m.val)
				if !arnOK {
					return ids, false, false
				}
				ids[5] = arn
				skip = skip || arnSkip
			case 'n': // null
			default:
				skip = true // wrong type: encoding/json fails the whole body
			}
			continue
		default:
			for _, f := range resourceFields {
				if len(m.key) == len(f) && strings.EqualFold(string(m.key), f) {
					return ids, false, false
				}
			}
			continue
		}
		if seen&(1<<idx) != 0 {
			return ids, false, false
		}
		seen |= 1 << idx
		switch {
		case m.val[0] == '"':
			if m.flags&(flagEscape|flagNonASCII) != 0 {
				return ids, false, false
			}
			ids[idx] = m.val[1 : len(m.val)-1]
		case string(m.val) == "null":
		default:
			skip = true
		}
	}
	return ids, skip, true
}

// metadataARN is the Arn member of a KeyMetadata object as encoding/json
// decodes it into struct{ Arn string }: the string, nil for null or no
// Arn, skip when it is of another type (the whole body then names no
// resource). ok is false when the reference path must decide (another
// spelling of Arn, a duplicate, an escaped or non-ASCII string).
func metadataARN(obj []byte) (arn []byte, skip, ok bool) {
	var buf [24]member
	ms, ok := parseTop(obj, buf[:0])
	if !ok {
		return nil, false, false
	}
	found := false
	for _, m := range ms {
		if len(m.key) != 3 || !strings.EqualFold(string(m.key), "Arn") {
			continue
		}
		if string(m.key) != "Arn" || found {
			return nil, false, false
		}
		found = true
		switch {
		case m.val[0] == '"':
			if m.flags&(flagEscape|flagNonASCII) != 0 {
				return nil, false, false
			}
			arn = m.val[1 : len(m.val)-1]
		case string(m.val) == "null":
		default:
			skip = true
		}
	}
	return arn, skip, true
}

// resourceSet collects resources without duplicates.
type resourceSet struct {
	region, account string
	out             []Resource
}

func (s *resourceSet) add(id string) {
	arn := keyARN(id, s.region, s.account)
	if arn == "" {
		return
	}
	for _, r := range s.out {
		if r.ARN == arn {
			return
		}
	}
	s.out = append(s.out, Resource{ARN: arn, Type: "AWS::KMS::Key", AccountID: arnAccount(arn, s.account)})
}

// addBytes is add(string(id)) that allocates only for a resource it adds.
func (s *resourceSet) addBytes(id []byte) {
	switch {
	case bytes.HasPrefix(id, []byte("arn:")) && bytes.Contains(id, []byte(":key/")):
		for _, r := range s.out {
			if r.ARN == string(id) {
				return
			}
		}
		s.addARN(string(id))
	case isKeyID(id):
		for _, r := range s.out {
			if s.isBareKeyARN(r.ARN, id) {
				return
			}
		}
		// keyARN's concatenation; string(id) is not copied for it.
		s.addARN("arn:aws:kms:" + s.region + ":" + s.account + ":key/" + string(id))
	}
}

// isBareKeyARN reports whether arn is keyARN(id, s.region, s.account) for
// a bare key id.
func (s *resourceSet) isBareKeyARN(arn string, id []byte) bool {
	for _, part := range [...]string{"arn:aws:kms:", s.region, ":", s.account, ":key/"} {
		if !strings.HasPrefix(arn, part) {
			return false
		}
		arn = arn[len(part):]
	}
	return arn == string(id)
}

// addARN adds the resource of a key ARN not in s yet.
func (s *resourceSet) addARN(arn string) {
	s.out = append(s.out, Resource{ARN: arn, Type: "AWS::KMS::Key", AccountID: arnAccount(arn, s.account)})
}

// arnAccount is the account field of an ARN (its fifth colon-separated
// field), or def if arn has fewer than six fields.
func arnAccount(arn, def string) string {
	start := 0
	for f := 0; f < 4; f++ {
		i := strings.IndexByte(arn[start:], ':')
		if i < 0 {
			return def
		}
		start += i + 1
	}
	i := strings.IndexByte(arn[start:], ':')
	if i < 0 {
		return def
	}
	return arn[start : start+i]
}

func appendRaw(dst []byte, m json.RawMessage) []byte {
	if m == nil {
		return append(dst, "null"...)
	}
	return append(dst, m...)
}

// appendEvent appends e as json.Marshal writes it. e's RawMessages must be
// compact with HTML characters escaped, as Filter returns them.
//
// It is the concatenation of the parts below, in this order; the batch
// encoder (batch.go) reuses a part's bytes across events whose part is the
// same, so every part depends on the fields it is given only.
func appendEvent(dst []byte, e *Event) []byte {
	dst = appendEventHead(dst, e)
	dst = appendEventErrors(dst, e.ErrorCode, e.ErrorMessage)
	dst = appendEventBodies(dst, e.RequestParameters, e.ResponseElements)
	dst = appendEventIDs(dst, e.RequestID, e.EventID, e.ReadOnly)
	dst = appendEventResources(dst, e.Resources)
	return appendEventTail(dst, e)
}

// appendEventHead appends the record's opening up to its userAgent: the
// fields from EventVersion to UserAgent.
func appendEventHead(dst []byte, e *Event) []byte {
	dst = append(dst, `{"eventVersion":`...)
	dst = jsontext.AppendString(dst, e.EventVersion)
	u := &e.UserIdentity
	dst = append(dst, `,"userIdentity":{"type":`...)
	dst = jsontext.AppendString(dst, u.Type)
	for _, f := range [...]struct{ name, v string }{
		{`,"principalId":`, u.PrincipalID}, {`,"arn":`, u.ARN}, {`,"accountId":`, u.AccountID},
		{`,"accessKeyId":`, u.AccessKeyID}, {`,"userName":`, u.UserName},
	} {
		if f.v != "" {
			dst = append(dst, f.name...)
			dst = jsontext.AppendString(dst, f.v)
		}
	}
	dst = append(dst, `},"eventTime":`...)
	dst = jsontext.AppendString(dst, e.EventTime)
	dst = append(dst, `,"eventSource":`...)
	dst = jsontext.AppendString(dst, e.EventSource)
	dst = append(dst, `,"eventName":`...)
	dst = jsontext.AppendString(dst, e.EventName)
	dst = append(dst, `,"awsRegion":`...)
	dst = jsontext.AppendString(dst, e.AWSRegion)
	dst = append(dst, `,"sourceIPAddress":`...)
	dst = jsontext.AppendString(dst, e.SourceIPAddress)
	dst = append(dst, `,"userAgent":`...)
	return jsontext.AppendString(dst, e.UserAgent)
}

func appendEventErrors(dst []byte, code, message string) []byte {
	if code != "" {
		dst = append(dst, `,"errorCode":`...)
		dst = jsontext.AppendString(dst, code)
	}
	if message != "" {
		dst = append(dst, `,"errorMessage":`...)
		dst = jsontext.AppendString(dst, message)
	}
	return dst
}

func appendEventBodies(dst []byte, params, elements json.RawMessage) []byte {
	dst = append(dst, `,"requestParameters":`...)
	dst = appendRaw(dst, params)
	dst = append(dst, `,"responseElements":`...)
	return appendRaw(dst, elements)
}

func appendEventIDs(dst []byte, requestID, eventID string, readOnly bool) []byte {
	dst = append(dst, `,"requestID":`...)
	dst = jsontext.AppendString(dst, requestID)
	dst = append(dst, `,"eventID":`...)
	dst = jsontext.AppendString(dst, eventID)
	dst = append(dst, `,"readOnly":`...)
	return strconv.AppendBool(dst, readOnly)
}

func appendEventResources(dst []byte, rs []Resource) []byte {
	if len(rs) == 0 {
		return dst
	}
	dst = append(dst, `,"resources":[`...)
	for i, r := range rs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"ARN":`...)
		dst = jsontext.AppendString(dst, r.ARN)
		dst = append(dst, `,"type":`...)
		dst = jsontext.AppendString(dst, r.Type)
		dst = append(dst, `,"accountId":`...)
		dst = jsontext.AppendString(dst, r.AccountID)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendEventTail appends the fields from EventType on and closes the
// record.
func appendEventTail(dst []byte, e *Event) []byte {
	dst = append(dst, `,"eventType":`...)
	dst = jsontext.AppendString(dst, e.EventType)
	dst = append(dst, `,"managementEvent":`...)
	dst = strconv.AppendBool(dst, e.ManagementEvent)
	dst = append(dst, `,"recipientAccountId":`...)
	dst = jsontext.AppendString(dst, e.RecipientAccountID)
	dst = append(dst, `,"eventCategory":`...)
	dst = jsontext.AppendString(dst, e.EventCategory)
	if e.NodeID != "" {
		dst = append(dst, `,"kmsdNodeId":`...)
		dst = jsontext.AppendString(dst, e.NodeID)
	}
	return append(dst, '}')
}
