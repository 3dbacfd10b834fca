package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/kmsd/kmsd/api"
)

// Defaults of Options.
const (
	DefaultDigestEvery = 1000
	DefaultMaxBytes    = 100 << 20

	// KeyFile and PubFile are the node's signing key (PKCS#8 PEM, 0600)
	// and its public half (PKIX PEM) in the audit directory.
	KeyFile = "node.key"
	PubFile = "node.pub"

	filePrefix = "audit-"
	fileSuffix = ".jsonl"
)

// Record types (kmsdRecordType). Event records have none.
const (
	TypeHeader = "header"
	TypeDigest = "digest"
)

// Digest reasons.
const (
	ReasonPeriodic = "periodic"
	ReasonRotate   = "rotate"
	ReasonShutdown = "shutdown"
)

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: log closed")

// Options configures a Writer.
type Options struct {
	Dir       string // created 0700 if missing
	NodeID    string
	Region    string
	AccountID string // recipientAccountId, and the account of bare key ids
	// DigestEvery is the number of event records between signed digests
	// (0: DefaultDigestEvery).
	DigestEvery int
	// MaxBytes rotates the file once it is this large (0: DefaultMaxBytes).
	MaxBytes int64
	// NoSync skips fsync: a record is then in the page cache, not
	// necessarily on disk, when Record returns. For tests and benchmarks.
	NoSync bool
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
}

// Header is the first record of every audit file: its fields, then the
// chain fields every record carries.
type Header struct {
	HeaderFields
	Seq      int64  `json:"kmsdSeq"`
	PrevHash string `json:"kmsdPrevHash"`
}

// HeaderFields are what the writer puts in a header; writeLine adds the
// chain fields.
type HeaderFields struct {
	RecordType string `json:"kmsdRecordType"`
	Version    int    `json:"kmsdAuditVersion"`
	NodeID     string `json:"nodeId"`
	Region     string `json:"awsRegion,omitempty"`
	FileID     string `json:"fileId"`
	FileIndex  int    `json:"fileIndex"`
	Created    string `json:"created"`
	// PublicKey is the node's Ed25519 public key (base64) that signs this
	// file's digests; KeyID is the hex of its SHA-256's first 8 bytes.
	PublicKey string `json:"publicKey"`
	KeyID     string `json:"keyId"`
	// The previous file of this node, if any: its name, the seq of its
	// last complete record (whose hash is this header's kmsdPrevHash) and
	// whether it ended with a final digest (false after a crash).
	PreviousFile       string `json:"previousFile,omitempty"`
	PreviousFileSeq    *int64 `json:"previousFileLastSeq,omitempty"`
	PreviousFileClosed *bool  `json:"previousFileClosed,omitempty"`
}

// Digest is a signed checkpoint of the chain.
type Digest struct {
	RecordType string `json:"kmsdRecordType"`
	FileID     string `json:"fileId"`
	Time       string `json:"digestTime"`
	Reason     string `json:"reason"`
	// Final is set on the last record of a file closed cleanly (rotation
	// or shutdown).
	Final     bool   `json:"final"`
	KeyID     string `json:"keyId"`
	Signature string `json:"signature"` // base64 Ed25519 over signedMessage

	Seq      int64  `json:"kmsdSeq"`
	PrevHash string `json:"kmsdPrevHash"`
}

// signedMessage is what a digest's signature covers. PrevHash chains every
// earlier record of the file, the header (and its public key) included.
func (d *Digest) signedMessage() []byte {
	return fmt.Appendf(nil, "kmsd-audit-digest-v1\x00%s\x00%d\x00%s\x00%s\x00%s\x00%t",
		d.FileID, d.Seq, d.PrevHash, d.Time, d.Reason, d.Final)
}

// Writer appends hash-chained, periodically signed CloudTrail-style
// records to files in a directory. It implements api.Auditor and is safe
// for concurrent use.
//
// Group commit: Record chains its record and appends it to the pending
// batch under mu, then waits until the batch is on disk. One caller at a
// time (the flusher) takes the whole pending batch, writes it with one
// write and one fsync outside mu, wakes the batch's callers and hands the
// flusher role to one caller of the next batch, which filled up
// meanwhile. Nobody delays a batch to let it grow: it grows by itself
// while the previous one is written, so a lone caller pays one write and
// one fsync, and concurrent callers share them.
type Writer struct {
	opts  Options
	log   *slog.Logger
	priv  ed25519.PrivateKey
	pub   ed25519.PublicKey
	keyID string
	// encoders are RecordBatch's, kept between calls (a channel: not
	// guarded by mu).
	encoders encoderPool

	mu          sync.Mutex
	idle        sync.Cond // on mu: signalled when flushing ends
	f           *os.File
	index       int
	fileID      string
	nextSeq     int64
	lastHash    [sha256.Size]byte
	size        int64 // of the file, pending bytes included
	sinceDigest int
	pending     []byte    // chained records not written yet: the next batch
	lineHash    hash.Hash // appendLine's
	next        *batch    // the callers waiting for pending
	spare       []byte    // the previous batch's buffer, for reuse
	gen         uint64    // records chained, all files (for tests)
	batches     uint64    // batches written (for tests)
	flushing    bool      // a flusher is writing a batch outside mu
	space       fileSpace // blocks reserved ahead, pages dropped behind
	err         error     // sticky write failure
	closed      bool
}

// batch is the fate of a group of records written together.
type batch struct {
	done chan struct{} // closed once the batch is durable, or failed (err)
	lead chan struct{} // (cap 1) makes one waiting caller the flusher
	err  error         // set before done is closed
	n    int           // records of callers waiting for it
}

func newBatch() *batch {
	return &batch{done: make(chan struct{}), lead: make(chan struct{}, 1)}
}

var _ api.Auditor = (*Writer)(nil)

// maxSpareBytes bounds the batch buffer kept for reuse: room for the
// summary record of a batch request of 1,000 items (about 350 KB, several
// MB with large encryption contexts), so that the buffer is not regrown
// on every request.
const maxSpareBytes = 4 << 20

// typicalEventBytes is about the size of a marshalled event, to size
// buffers once instead of regrowing them.
const typicalEventBytes = 1280

// recordScratch is what Record marshals and prehashes an event with
// outside mu.
type recordScratch struct {
	buf  []byte
	hash hash.Hash
}

var recordScratches = sync.Pool{New: func() any {
	return &recordScratch{buf: make([]byte, 0, 2048), hash: sha256.New()}
}}

// Open opens the audit log in opts.Dir: it loads (or, on first start,
// creates) the node key and starts a new file chained to the last one.
func Open(opts Options) (*Writer, error) {
	if opts.Dir == "" {
		return nil, errors.New("audit: no directory")
	}
	if opts.DigestEvery <= 0 {
		opts.DigestEvery = DefaultDigestEvery
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &Writer{opts: opts, log: opts.Logger, next: newBatch(), lineHash: sha256.New(),
		encoders: make(encoderPool, encodersKept)}
	w.idle.L = &w.mu
	if w.log == nil {
		w.log = slog.Default()
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var err error
	if w.priv, err = loadOrCreateKey(opts.Dir); err != nil {
		return nil, err
	}
	w.pub = w.priv.Public().(ed25519.PublicKey)
	w.keyID = KeyID(w.pub)

	prev, err := lastFile(opts.Dir)
	if err != nil {
		return nil, err
	}
	var prevInfo *tailInfo
	if prev != "" {
		if prevInfo, err = readTail(filepath.Join(opts.Dir, prev)); err != nil {
			return nil, fmt.Errorf("audit: reading %s: %w", prev, err)
		}
		prevInfo.name = prev
		w.index, _ = fileIndex(prev)
		if !prevInfo.closed {
			w.log.Warn("the previous audit file was not closed cleanly (crash?); records after its last digest are not signed",
				"file", prev, "last_seq", prevInfo.seq)
			// The blocks its writer had reserved past its end (see
			// fileSpace) are still allocated: give them back.
			if err := releaseReserve(filepath.Join(opts.Dir, prev)); err != nil {
				w.log.Warn("could not release the disk blocks reserved past the end of the previous audit file",
					"file", prev, "err", err)
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.openNext(prevInfo); err != nil {
		return nil, err
	}
	return w, nil
}

// PublicKey returns the node's audit signing key.
func (w *Writer) PublicKey() ed25519.PublicKey { return w.pub }

// Path returns the file being written.
func (w *Writer) Path() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return filepath.Join(w.opts.Dir, fileName(w.index))
}

// Record appends ev as one CloudTrail-style record and returns once it is
// on disk (written and fsynced; with Options.NoSync, written). After a
// write failure every call fails.
func (w *Writer) Record(ctx context.Context, ev api.AuditEvent) error {
	e := BuildEvent(ev, w.opts.Region, w.opts.AccountID, w.opts.NodeID)
	rs := recordScratches.Get().(*recordScratch)
	body := appendEvent(rs.buf[:0], &e)
	rs.hash.Reset()
	rs.hash.Write(body[:len(body)-1])

	w.mu.Lock()
	if err := w.unusableLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	mine := w.appendRecordToBatchLocked(body, rs.hash)
	if cap(body) <= 64<<10 {
		rs.buf = body[:0]
		recordScratches.Put(rs)
	}
	return w.awaitLocked(mine)
}

// appendRecordToBatchLocked appends one record (see appendRecordLocked),
// copying body, and rotates the file if it is full. It returns the batch
// that writes the record, for awaitLocked. w.mu is held.
func (w *Writer) appendRecordToBatchLocked(body []byte, h hash.Hash) *batch {
	w.appendRecordLocked(body, h)
	mine := w.next
	mine.n++
	if w.size >= w.opts.MaxBytes {
		w.rotate() // writes mine
	}
	return mine
}

// unusableLocked is the error every call gets once the writer is closed or
// a write failed; nil while it works. w.mu is held.
func (w *Writer) unusableLocked() error {
	if w.closed {
		return ErrClosed
	}
	return w.err
}

// appendRecordLocked adds one marshalled event to the pending batch as the
// chain's next record, and a signed digest when one is due; h has absorbed
// body but its closing brace (see appendLineHashed). w.mu is held.
func (w *Writer) appendRecordLocked(body []byte, h hash.Hash) {
	w.appendLineHashed(body, h)
	w.sinceDigest++
	if w.sinceDigest >= w.opts.DigestEvery {
		w.appendDigest(ReasonPeriodic, false)
	}
}

// awaitLocked waits until batch mine is on disk and returns its outcome,
// writing it (and the batches it leads) itself when it is its turn. It is
// called with w.mu held and returns with it released.
func (w *Writer) awaitLocked(mine *batch) error {
	for {
		if mine == w.next && !w.flushing {
			w.flush()
		}
		w.mu.Unlock()
		select {
		case <-mine.done:
			return mine.err
		case <-mine.lead:
		}
		w.mu.Lock()
	}
}

var _ api.BatchAuditor = (*Writer)(nil)

// RecordBatch writes the items of one batch request as one summary record
// (see batch.go for its shape) and returns once it is on disk, sharing the
// write and fsync of a group commit like Record. A record per item would
// repeat the caller, time, operation and writer fields in every item.
// After a write failure every call fails. Nothing is written for a batch
// without items.
func (w *Writer) RecordBatch(ctx context.Context, req api.AuditEvent, items []api.AuditEvent) error {
	if len(items) == 0 {
		return nil
	}
	// Encode and prehash outside mu, as Record does.
	enc := w.encoders.get(w.opts.Region, w.opts.AccountID, w.opts.NodeID)
	defer w.encoders.put(enc)
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	enc.encode(&req, items, rnd[:])

	w.mu.Lock()
	if err := w.unusableLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	return w.awaitLocked(w.appendRecordToBatchLocked(enc.buf, enc.hash))
}

// flush takes the pending batch, writes it (and fsyncs it, unless NoSync)
// with w.mu released meanwhile, so that the next batch can fill up, and
// hands over to the next batch. w.mu is held and no flush is running.
func (w *Writer) flush() {
	b, data, f := w.next, w.pending, w.f
	w.next, w.pending, w.spare = newBatch(), w.spare[:0], nil
	w.flushing = true
	w.mu.Unlock()
	err := w.writeAndSync(f, data)
	w.mu.Lock()
	w.flushing = false
	if cap(data) <= maxSpareBytes {
		w.spare = data[:0]
	}
	w.finish(b, err)
	if w.next.n > 0 {
		select { // one of the next batch's callers writes it
		case w.next.lead <- struct{}{}:
		default:
		}
	}
	w.idle.Broadcast()
}

// flushLocked writes the pending batch without releasing w.mu, for
// rotation and Close. No flush is running.
func (w *Writer) flushLocked() {
	b, data := w.next, w.pending
	w.next = newBatch()
	err := w.writeAndSync(w.f, data)
	w.pending = data[:0]
	w.finish(b, err)
}

// testHookBeforeWrite, if set (tests only), runs before a batch is written.
var testHookBeforeWrite func()

func (w *Writer) writeAndSync(f *os.File, data []byte) error {
	if testHookBeforeWrite != nil {
		testHookBeforeWrite()
	}
	if len(data) > 0 {
		w.space.before(f, len(data), w.opts.MaxBytes)
		n, err := f.Write(data)
		w.space.after(f, n)
		if err != nil {
			return fmt.Errorf("audit: %w (%d of %d bytes written)", err, n, len(data))
		}
	}
	if w.opts.NoSync {
		return nil
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("audit: fsync: %w", err)
	}
	w.space.synced(f)
	return nil
}

// finish settles batch b, written with outcome err. After a failure
// nothing more is written: the next batch fails too. w.mu is held.
func (w *Writer) finish(b *batch, err error) {
	if err != nil && w.err == nil {
		w.err = err
		w.log.Error("audit write failed; requests fail until kmsd is restarted (unless -audit-fail-open)", "err", err)
	}
	if w.err != nil {
		b.err = w.err
		close(b.done)
		if w.next.n > 0 {
			failed := w.next
			w.next = newBatch()
			w.finish(failed, nil)
		}
		return
	}
	w.batches++
	close(b.done)
}

// Close writes a final digest and closes the file. Later Records fail
// with ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.flushing {
		w.idle.Wait()
	}
	if w.closed {
		return nil
	}
	w.closed = true
	if w.err == nil {
		w.appendDigest(ReasonShutdown, true)
		w.flushLocked() // the records still pending too
	}
	w.space.release(w.f)
	if err := w.f.Close(); err != nil && w.err == nil {
		w.err = fmt.Errorf("audit: %w", err)
	}
	return w.err
}

// appendLine chains one record and adds it to the pending batch: body is a
// JSON object to which the chain fields are added. w.mu is held.
func (w *Writer) appendLine(body []byte) {
	w.lineHash.Reset()
	w.lineHash.Write(body[:len(body)-1])
	w.appendLineHashed(body, w.lineHash)
}

// appendLineHashed is appendLine with the record's hash begun: h has
// absorbed body but its closing brace, the line's bytes up to the chain
// fields, so that callers can hash most of a line outside w.mu. w.mu is
// held.
func (w *Writer) appendLineHashed(body []byte, h hash.Hash) {
	start := len(w.pending)
	buf := append(w.pending, body[:len(body)-1]...)
	chain := len(buf)
	buf = append(buf, `,"kmsdSeq":`...)
	buf = strconv.AppendInt(buf, w.nextSeq, 10)
	buf = append(buf, `,"kmsdPrevHash":"`...)
	if w.nextSeq > 0 || w.lastHash != ([sha256.Size]byte{}) {
		buf = hex.AppendEncode(buf, w.lastHash[:])
	}
	buf = append(buf, `"}`...)
	h.Write(buf[chain:])
	h.Sum(w.lastHash[:0])
	buf = append(buf, '\n')
	w.pending = buf
	w.size += int64(len(buf) - start)
	w.nextSeq++
	w.gen++
}

// lastHashHex is the hash the next record will carry.
func (w *Writer) lastHashHex() string {
	if w.nextSeq == 0 && w.lastHash == ([sha256.Size]byte{}) {
		return ""
	}
	return hex.EncodeToString(w.lastHash[:])
}

func (w *Writer) appendDigest(reason string, final bool) {
	d := Digest{
		RecordType: TypeDigest,
		FileID:     w.fileID,
		Time:       w.opts.Now().UTC().Format(time.RFC3339Nano),
		Reason:     reason,
		Final:      final,
		KeyID:      w.keyID,
		Seq:        w.nextSeq,
		PrevHash:   w.lastHashHex(),
	}
	d.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(w.priv, d.signedMessage()))
	// The chain fields are appended by appendLine, with the same values.
	body, _ := json.Marshal(struct {
		RecordType string `json:"kmsdRecordType"`
		FileID     string `json:"fileId"`
		Time       string `json:"digestTime"`
		Reason     string `json:"reason"`
		Final      bool   `json:"final"`
		KeyID      string `json:"keyId"`
		Signature  string `json:"signature"`
	}{d.RecordType, d.FileID, d.Time, d.Reason, d.Final, d.KeyID, d.Signature})
	w.appendLine(body)
	w.sinceDigest = 0
}

// rotate closes the current file with a final digest and starts the next.
// w.mu is held; it waits for a running flush, whose file this is.
func (w *Writer) rotate() {
	for w.flushing {
		w.idle.Wait()
	}
	// Another caller may have rotated, failed or closed meanwhile.
	if w.err != nil || w.closed || w.size < w.opts.MaxBytes {
		return
	}
	w.appendDigest(ReasonRotate, true)
	w.flushLocked()
	if w.err != nil {
		return
	}
	old := w.f
	w.space.release(old) // before the next file's first write
	prev := &tailInfo{name: filepath.Base(old.Name()), seq: w.nextSeq - 1, hash: w.lastHash, closed: true}
	if err := w.openNext(prev); err != nil {
		if w.err == nil {
			w.err = err
		}
		return
	}
	old.Close()
	w.log.Info("audit file rotated", "file", w.f.Name())
}

// openNext creates the file after w.index and writes its header (and,
// unless NoSync, fsyncs it and the directory, so that the file is there
// after a crash). w.mu is held (or w is not shared yet) and no flush is
// running; the pending batch is empty.
func (w *Writer) openNext(prev *tailInfo) error {
	index := w.index + 1
	path := filepath.Join(w.opts.Dir, fileName(index))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	w.f, w.index, w.fileID = f, index, newUUID()
	w.nextSeq, w.size, w.sinceDigest = 0, 0, 0
	w.lastHash = [sha256.Size]byte{}
	h := HeaderFields{
		RecordType: TypeHeader,
		Version:    1,
		NodeID:     w.opts.NodeID,
		Region:     w.opts.Region,
		FileID:     w.fileID,
		FileIndex:  index,
		Created:    w.opts.Now().UTC().Format(time.RFC3339Nano),
		PublicKey:  base64.StdEncoding.EncodeToString(w.pub),
		KeyID:      w.keyID,
	}
	if prev != nil {
		h.PreviousFile = prev.name
		h.PreviousFileSeq = &prev.seq
		h.PreviousFileClosed = &prev.closed
		if prev.seq >= 0 {
			w.lastHash = prev.hash
		}
	}
	body, _ := json.Marshal(h)
	w.appendLine(body)
	w.flushLocked()
	if w.err != nil {
		return w.err
	}
	if !w.opts.NoSync {
		if d, err := os.Open(w.opts.Dir); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	return nil
}

func fileName(index int) string { return fmt.Sprintf("%s%06d%s", filePrefix, index, fileSuffix) }

func fileIndex(name string) (int, bool) {
	s, ok := cutAffix(name, filePrefix, fileSuffix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

func cutAffix(name, prefix, suffix string) (string, bool) {
	if len(name) <= len(prefix)+len(suffix) || name[:len(prefix)] != prefix || name[len(name)-len(suffix):] != suffix {
		return "", false
	}
	return name[len(prefix) : len(name)-len(suffix)], true
}

// Files lists the audit files in dir, oldest first.
func Files(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type nf struct {
		n    int
		name string
	}
	var fs []nf
	for _, e := range ents {
		if n, ok := fileIndex(e.Name()); ok && e.Type().IsRegular() {
			fs = append(fs, nf{n, e.Name()})
		}
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].n < fs[j].n })
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = filepath.Join(dir, f.name)
	}
	return out, nil
}

func lastFile(dir string) (string, error) {
	fs, err := Files(dir)
	if err != nil {
		return "", fmt.Errorf("audit: %w", err)
	}
	if len(fs) == 0 {
		return "", nil
	}
	return filepath.Base(fs[len(fs)-1]), nil
}

// tailInfo describes the end of an existing file.
type tailInfo struct {
	name   string
	seq    int64 // kmsdSeq of the last complete record, -1 if none
	hash   [sha256.Size]byte
	closed bool // the last record is a final digest and nothing follows
}

// readTail finds the last complete line of the file at path.
func readTail(path string) (*tailInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	ti := &tailInfo{seq: -1}
	for chunk := int64(64 << 10); ; chunk *= 4 {
		off := max(size-chunk, 0)
		buf := make([]byte, size-off)
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			return nil, err
		}
		partial := len(buf) > 0 && buf[len(buf)-1] != '\n'
		end := bytes.LastIndexByte(buf, '\n')
		if end < 0 {
			if off == 0 {
				return ti, nil // no complete line
			}
			continue
		}
		start := bytes.LastIndexByte(buf[:end], '\n') + 1
		if start == 0 && off > 0 {
			continue // the line may begin before this chunk
		}
		line := buf[start:end]
		ti.hash = sha256.Sum256(line)
		var rec struct {
			Type  string `json:"kmsdRecordType"`
			Seq   *int64 `json:"kmsdSeq"`
			Final bool   `json:"final"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Seq != nil {
			ti.seq = *rec.Seq
			ti.closed = rec.Type == TypeDigest && rec.Final && !partial
		}
		return ti, nil
	}
}

// KeyID names a public key: the hex of the first 8 bytes of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// loadOrCreateKey reads dir/node.key, creating it (and node.pub) on first
// start.
func loadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit: node key: %w", err)
		}
		werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("audit: node key: %w", err)
		}
		if err := writePublicKey(filepath.Join(dir, PubFile), priv.Public().(ed25519.PublicKey)); err != nil {
			return nil, err
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: node key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("audit: %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit: %s: not an Ed25519 key", path)
	}
	// Keep node.pub present and right.
	pubPath := filepath.Join(dir, PubFile)
	if have, err := ReadPublicKey(pubPath); err != nil || !have.Equal(priv.Public()) {
		if err := writePublicKey(pubPath, priv.Public().(ed25519.PublicKey)); err != nil {
			return nil, err
		}
	}
	return priv, nil
}

func writePublicKey(path string, pub ed25519.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// ReadPublicKey reads a node.pub file (PKIX PEM), or a raw base64 key.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%s: not an Ed25519 public key", path)
		}
		return pub, nil
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%s: not a PEM or base64 Ed25519 public key", path)
	}
	return ed25519.PublicKey(raw), nil
}
