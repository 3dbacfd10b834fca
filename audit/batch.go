package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"hash"
	"slices"

	"github.com/kmsd/kmsd/api"
)

// batchEncoder encodes the events of one RecordBatch, as appendEvent of
// BuildEvent would, for less per event: the items of a batch request share
// their caller, time, operation and often their bodies, so that most parts
// of a record (see appendEvent) are those of the record before it. Every
// part is reused only after comparing what it is derived from with what
// the previous event's part was derived from, so a batch of unrelated
// events is encoded right too, only not faster.
type batchEncoder struct {
	region, account, nodeID string

	buf    []byte      // the encoded events, back to back
	ends   []int       // ends[i] is where event i ends in buf
	hashes []hash.Hash // hashes[i] has absorbed event i but its closing brace
	rnd    []byte      // 16 random bytes per event, for its eventID
	ids    []byte      // the eventIDs, uuidLen bytes each

	tail []byte // appendEventTail: the writer's fields

	headValid    bool
	headIn       headInputs // what head was derived from
	head         []byte     // appendEventHead
	headReadOnly bool       // readOnly of headIn.operation

	req, resp bodyMemo

	resValid bool
	res      []byte     // appendEventResources of req and resp
	resBuf   []Resource // backing of the resourceSet res is built from
}

// bodyMemo is the previous event's request (or response) body, parsed and
// filtered.
type bodyMemo struct {
	valid     bool
	body      []byte   // the caller's: only referenced during RecordBatch
	ms        []member // parseTop of body, sub-slices of body, if ok
	ok        bool
	msBuf     []member
	filtered  json.RawMessage // filterParsed of body (nil: null)
	filterBuf []byte          // backing of filtered
}

// set makes body the memo's, parsing and filtering it unless it has the
// same bytes as the memo's body. It reports whether it did.
func (m *bodyMemo) set(body []byte) bool {
	if m.valid && bytes.Equal(body, m.body) {
		return false
	}
	m.valid, m.body = true, body
	m.ms, m.ok = parseTop(body, m.msBuf[:0])
	if m.ok && cap(m.ms) > cap(m.msBuf) {
		m.msBuf = m.ms[:0]
	}
	m.filtered = filterParsedTo(m.filterBuf, body, m.ms, m.ok)
	if cap(m.filtered) > cap(m.filterBuf) {
		m.filterBuf = m.filtered[:0]
	}
	return true
}

// release drops the memo's references to the caller's memory.
func (m *bodyMemo) release() {
	clear(m.msBuf[:cap(m.msBuf)])
	m.valid, m.body, m.ms, m.ok, m.filtered = false, nil, nil, false, nil
}

// encoderPool keeps encoders, with their buffers and hashes, between
// RecordBatch calls. It is the Writer's rather than a sync.Pool, which
// every garbage collection empties: a batch of 1,000 events would then
// often allocate (and fault in) its megabytes of buffer afresh.
type encoderPool chan *batchEncoder

// encodersKept is the number of encoders a Writer keeps: as many as
// batches usually run at once; more concurrent batches allocate their own.
const encodersKept = 4

// maxKeptEvents bounds the per-event state a kept encoder holds.
const maxKeptEvents = 4096

func (p encoderPool) get(region, account, nodeID string) *batchEncoder {
	var b *batchEncoder
	select {
	case b = <-p:
	default:
		b = new(batchEncoder)
	}
	b.region, b.account, b.nodeID = region, account, nodeID
	return b
}

// put releases b's references to the caller's memory and keeps it if it
// is not too big.
func (p encoderPool) put(b *batchEncoder) {
	b.req.release()
	b.resp.release()
	b.headValid, b.resValid = false, false
	b.headIn = headInputs{}
	clear(b.resBuf[:cap(b.resBuf)])
	if cap(b.buf) > maxSpareBytes || len(b.hashes) > maxKeptEvents {
		return
	}
	select {
	case p <- b:
	default:
	}
}

// encode encodes evs into b.buf and b.ends and prehashes each in b.hashes;
// rnd holds 16 random bytes per event, for the eventIDs.
func (b *batchEncoder) encode(evs []api.AuditEvent, rnd []byte) {
	n := len(evs)
	b.buf = slices.Grow(b.buf[:0], n*typicalEventBytes)
	b.ends = slices.Grow(b.ends[:0], n)[:n]
	for len(b.hashes) < n {
		b.hashes = append(b.hashes, sha256.New())
	}
	// The eventIDs as one string: one allocation per batch, where newUUID
	// takes one per event.
	b.ids = b.ids[:0]
	for i := range n {
		b.ids = appendUUID(b.ids, rnd[16*i:])
	}
	ids := string(b.ids)

	var tail Event
	setEventTail(&tail, b.account, b.nodeID)
	b.tail = appendEventTail(b.tail[:0], &tail)

	buf := b.buf
	for i := range evs {
		ev := &evs[i]
		start := len(buf)

		in := headInputsOf(ev)
		if !b.headValid || !in.same(&b.headIn) {
			e := eventHead(&in, b.region)
			b.head = appendEventHead(b.head[:0], &e)
			b.headReadOnly = readOnly(ev.Operation)
			b.headIn, b.headValid = in, true
		}
		buf = append(buf, b.head...)
		buf = appendEventErrors(buf, ev.ErrorCode, ev.ErrorMessage)

		reqNew := b.req.set(ev.Request)
		respNew := b.resp.set(ev.Response)
		buf = appendEventBodies(buf, b.req.filtered, b.resp.filtered)
		buf = appendEventIDs(buf, ev.Info.RequestID, ids[i*uuidLen:(i+1)*uuidLen], b.headReadOnly)

		if reqNew || respNew || !b.resValid {
			rs := resourceSet{region: b.region, account: b.account, out: b.resBuf[:0]}
			rs.addBody(b.req.body, b.req.ms, b.req.ok)
			rs.addBody(b.resp.body, b.resp.ms, b.resp.ok)
			b.res = appendEventResources(b.res[:0], rs.out)
			if cap(rs.out) > cap(b.resBuf) {
				b.resBuf = rs.out[:0]
			}
			b.resValid = true
		}
		buf = append(buf, b.res...)
		buf = append(buf, b.tail...)
		b.ends[i] = len(buf)

		// The record's line is the event without its closing brace, then
		// the chain fields: hashing the event's part here, outside w.mu,
		// leaves the chain fields to hash under it.
		h := b.hashes[i]
		h.Reset()
		h.Write(buf[start : len(buf)-1])
	}
	b.buf = buf
}
