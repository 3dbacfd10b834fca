package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"hash"
	"strconv"

	"github.com/kmsd/kmsd/api"
	"github.com/kmsd/kmsd/internal/jsontext"
)

// A batch request (KmsdService.Batch*) is recorded as one summary record:
// the request's head (caller, time, operation, source), then
//
//	"requestParameters":{"itemCount":N},
//	"responseElements":{"failedItemCount":F},
//	"additionalEventData":{"items":[ITEM, ...]},
//
// and the request's requestID, eventID, readOnly, resources (every key an
// item names, once) and tail. Each ITEM, in item order, is what the
// single operation's record would hold of its own:
//
//	{"requestID":"<request id>#<position>","requestParameters":{...},
//	 "responseElements":{...}}                       on success,
//	{"requestID":...,"requestParameters":{...},
//	 "errorCode":"...","errorMessage":"..."}          on failure,
//
// with the bodies filtered by the same allow-list. A record per item
// repeated the head and tail, about 800 of a GenerateDataKey item's 1,150
// bytes; writing, copying and hashing those bytes was a third of a batch
// item's CPU. Issue 6 allows the summary ("audit may summarise per batch
// with per-item ids"): the per-item ids are the requestIDs.

// batchEncoder encodes the summary record of one RecordBatch. Items of a
// batch often have the same bodies (the same key and key spec), so each
// body is parsed, filtered and scanned for resources only when its bytes
// differ from the previous item's.
type batchEncoder struct {
	region, account, nodeID string

	buf  []byte    // the encoded record
	hash hash.Hash // has absorbed buf but its closing brace

	req, resp bodyMemo

	itemRes []Resource          // backing of one item's resourceSet
	res     []Resource          // the record's resources, in first-seen order
	seen    map[string]struct{} // the ARNs in res
}

// bodyMemo is the previous item's request (or response) body, parsed and
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

// encoderPool keeps encoders, with their buffers, between RecordBatch
// calls. It is the Writer's rather than a sync.Pool, which every garbage
// collection empties: a batch of 1,000 items would then often allocate
// (and fault in) its buffer afresh.
type encoderPool chan *batchEncoder

// encodersKept is the number of encoders a Writer keeps: as many as
// batches usually run at once; more concurrent batches allocate their own.
const encodersKept = 4

// maxKeptResources bounds the resources a kept encoder remembers.
const maxKeptResources = 4096

func (p encoderPool) get(region, account, nodeID string) *batchEncoder {
	var b *batchEncoder
	select {
	case b = <-p:
	default:
		b = &batchEncoder{hash: sha256.New(), seen: make(map[string]struct{})}
	}
	b.region, b.account, b.nodeID = region, account, nodeID
	return b
}

// put releases b's references to the caller's memory and keeps it if it
// is not too big.
func (p encoderPool) put(b *batchEncoder) {
	b.req.release()
	b.resp.release()
	clear(b.itemRes[:cap(b.itemRes)])
	clear(b.res[:cap(b.res)])
	clear(b.seen)
	if cap(b.buf) > maxSpareBytes || cap(b.res) > maxKeptResources {
		return
	}
	select {
	case p <- b:
	default:
	}
}

// typicalItemBytes is about the size of a GenerateDataKey item's entry.
const typicalItemBytes = 360

// encode encodes the summary record of req's items into b.buf and hashes
// it but its closing brace into b.hash; rnd holds 16 random bytes, for the
// eventID.
func (b *batchEncoder) encode(req *api.AuditEvent, items []api.AuditEvent, rnd []byte) {
	in := headInputsOf(req)
	head := eventHead(&in, b.region)
	buf := b.buf[:0]
	if need := typicalEventBytes + len(items)*typicalItemBytes; cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	buf = appendEventHead(buf, &head)

	failed := 0
	for i := range items {
		if items[i].ErrorCode != "" {
			failed++
		}
	}
	buf = append(buf, `,"requestParameters":{"itemCount":`...)
	buf = strconv.AppendInt(buf, int64(len(items)), 10)
	buf = append(buf, `},"responseElements":{"failedItemCount":`...)
	buf = strconv.AppendInt(buf, int64(failed), 10)
	buf = append(buf, `},"additionalEventData":{"items":[`...)

	b.res = b.res[:0]
	clear(b.seen)
	for i := range items {
		it := &items[i]
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"requestID":`...)
		buf = jsontext.AppendString(buf, it.Info.RequestID)
		reqNew := b.req.set(it.Request)
		respNew := b.resp.set(it.Response)
		buf = append(buf, `,"requestParameters":`...)
		buf = appendRaw(buf, b.req.filtered)
		if it.ErrorCode != "" || it.ErrorMessage != "" {
			buf = appendEventErrors(buf, it.ErrorCode, it.ErrorMessage)
		} else {
			buf = append(buf, `,"responseElements":`...)
			buf = appendRaw(buf, b.resp.filtered)
		}
		buf = append(buf, '}')
		if i == 0 || reqNew || respNew {
			b.addResources()
		}
	}
	buf = append(buf, `]}`...)

	var id [uuidLen]byte
	buf = appendEventIDs(buf, req.Info.RequestID, string(appendUUID(id[:0], rnd)), readOnly(req.Operation))
	buf = appendEventResources(buf, b.res)
	var tail Event
	setEventTail(&tail, b.account, b.nodeID)
	buf = appendEventTail(buf, &tail)

	// The record's line is the event without its closing brace, then the
	// chain fields: hashing the event's part here, outside w.mu, leaves
	// the chain fields to hash under it.
	b.hash.Reset()
	b.hash.Write(buf[:len(buf)-1])
	b.buf = buf
}

// addResources adds the keys the memos' bodies name to b.res, each once.
func (b *batchEncoder) addResources() {
	rs := resourceSet{region: b.region, account: b.account, out: b.itemRes[:0]}
	rs.addBody(b.req.body, b.req.ms, b.req.ok)
	rs.addBody(b.resp.body, b.resp.ms, b.resp.ok)
	for _, r := range rs.out {
		if _, ok := b.seen[r.ARN]; !ok {
			b.seen[r.ARN] = struct{}{}
			b.res = append(b.res, r)
		}
	}
	if cap(rs.out) > cap(b.itemRes) {
		b.itemRes = rs.out[:0]
	}
}
