package audit

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Problem kinds.
const (
	KindMalformed    = "malformed"     // a line is not a record (modified, or inserted junk)
	KindModified     = "modified"      // a record's hash is not the one its successor recorded
	KindDeleted      = "deleted"       // sequence numbers are missing
	KindInserted     = "inserted"      // a sequence number repeats, or records follow the final digest
	KindReordered    = "reordered"     // a record comes after a later one
	KindTruncated    = "truncated"     // the file ends without a final digest, or mid-line
	KindBadSignature = "bad-signature" // a digest's signature does not verify
	KindKey          = "key"           // the header's key is not the trusted key, or unusable
	KindHeader       = "header"        // the header is missing or invalid
	KindUnsigned     = "unsigned"      // (warning) records after the last digest
	KindLink         = "link"          // a file does not continue the previous one
)

// Problem is one finding of Verify. Line is 1-based (0: the whole file);
// Seq is the record's kmsdSeq, -1 if unknown.
type Problem struct {
	Line    int    `json:"line,omitempty"`
	Seq     int64  `json:"seq"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Kind, p.Message)
	}
	return p.Kind + ": " + p.Message
}

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// PublicKey is the node's trusted key (its node.pub). Nil: digests are
	// checked against the key in the file's own header, which proves the
	// file is self-consistent but not who wrote it.
	PublicKey ed25519.PublicKey
	// AllowOpen makes a missing final digest a warning rather than a
	// problem: for the file a running node is still writing.
	AllowOpen bool
}

// Report is the outcome of verifying one file.
type Report struct {
	File     string    `json:"file,omitempty"`
	Header   *Header   `json:"header,omitempty"`
	Records  int       `json:"records"` // lines that parsed as records, header and digests included
	Events   int       `json:"events"`
	Digests  int       `json:"digests"`
	LastSeq  int64     `json:"lastSeq"`  // of the last complete record, -1 if none
	LastHash string    `json:"lastHash"` // SHA-256 (hex) of the last complete line
	Final    bool      `json:"final"`    // ends with a valid final digest
	Signed   int64     `json:"signedThroughSeq"`
	Trusted  bool      `json:"trustedKey"` // digests were checked against VerifyOptions.PublicKey
	Problems []Problem `json:"problems"`
	Warnings []Problem `json:"warnings"`
}

// OK reports whether no problem was found (warnings aside).
func (r *Report) OK() bool { return len(r.Problems) == 0 }

func (r *Report) problem(line int, seq int64, kind, format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Line: line, Seq: seq, Kind: kind, Message: fmt.Sprintf(format, args...)})
}

func (r *Report) warn(line int, seq int64, kind, format string, args ...any) {
	r.Warnings = append(r.Warnings, Problem{Line: line, Seq: seq, Kind: kind, Message: fmt.Sprintf(format, args...)})
}

// parsed is what Verify keeps of one line.
type parsed struct {
	line      int
	ok        bool // a record with a kmsdSeq
	dup       bool
	seq       int64
	hash      [sha256.Size]byte
	prev      string
	typ       string
	digest    *Digest
	header    *Header
	malformed bool
}

// wireRecord is the union of the fields Verify reads.
type wireRecord struct {
	Type      string  `json:"kmsdRecordType"`
	Seq       *int64  `json:"kmsdSeq"`
	PrevHash  *string `json:"kmsdPrevHash"`
	FileID    string  `json:"fileId"`
	Time      string  `json:"digestTime"`
	Reason    string  `json:"reason"`
	Final     bool    `json:"final"`
	KeyID     string  `json:"keyId"`
	Signature string  `json:"signature"`
}

// Verify checks one audit file: the hash chain, sequence numbers, digest
// signatures and the final digest. It reports every modified, deleted,
// inserted, reordered or truncated record it can attribute, by line. The
// error is for reading r only.
func Verify(r io.Reader, opts VerifyOptions) (*Report, error) {
	rep := &Report{LastSeq: -1, Signed: -1, Problems: []Problem{}, Warnings: []Problem{}}
	br := bufio.NewReaderSize(r, 64<<10)
	var recs []*parsed
	lineNo := 0
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			if line[len(line)-1] != '\n' {
				rep.problem(lineNo, -1, KindTruncated, "the file ends in the middle of a record (cut, or a write interrupted)")
				break
			}
			line = line[:len(line)-1]
			p := &parsed{line: lineNo, seq: -1, hash: sha256.Sum256(line)}
			rep.LastHash = hex.EncodeToString(p.hash[:])
			var w wireRecord
			if json.Unmarshal(line, &w) != nil || w.Seq == nil || w.PrevHash == nil || *w.Seq < 0 {
				p.malformed = true
				rep.problem(lineNo, -1, KindMalformed, "not a valid audit record (modified, or inserted)")
			} else {
				p.ok, p.seq, p.prev, p.typ = true, *w.Seq, *w.PrevHash, w.Type
				rep.Records++
				rep.LastSeq = p.seq
				switch w.Type {
				case TypeDigest:
					rep.Digests++
					p.digest = &Digest{RecordType: w.Type, FileID: w.FileID, Time: w.Time, Reason: w.Reason,
						Final: w.Final, KeyID: w.KeyID, Signature: w.Signature, Seq: p.seq, PrevHash: p.prev}
				case TypeHeader:
					var h Header
					if json.Unmarshal(line, &h) == nil {
						p.header = &h
					}
				case "":
					rep.Events++
				}
			}
			recs = append(recs, p)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(recs) == 0 {
		rep.problem(0, -1, KindTruncated, "the file is empty: no header")
		return rep, nil
	}

	// Sequence numbers: duplicates, order, gaps.
	first := map[int64]*parsed{}
	var prevOK *parsed
	maxSeq := int64(-1)
	for _, p := range recs {
		if !p.ok {
			continue
		}
		if q, dup := first[p.seq]; dup {
			p.dup = true
			rep.problem(p.line, p.seq, KindInserted, "seq %d repeats the record on line %d (inserted or duplicated record)", p.seq, q.line)
			continue
		}
		first[p.seq] = p
		if prevOK != nil && p.seq < prevOK.seq {
			rep.problem(p.line, p.seq, KindReordered, "seq %d comes after seq %d (line %d): records were reordered", p.seq, prevOK.seq, prevOK.line)
		}
		prevOK = p
		maxSeq = max(maxSeq, p.seq)
	}
	for s := int64(0); s <= maxSeq; s++ {
		if first[s] != nil {
			continue
		}
		end := s
		for end+1 <= maxSeq && first[end+1] == nil {
			end++
		}
		after, before := first[s-1], first[end+1]
		if !malformedBetween(recs, after, before) {
			where := ""
			if before != nil {
				where = fmt.Sprintf(" before line %d", before.line)
			}
			line := 0
			if before != nil {
				line = before.line
			}
			if s == end {
				rep.problem(line, s, KindDeleted, "record seq %d is missing%s (deleted)", s, where)
			} else {
				rep.problem(line, s, KindDeleted, "records seq %d..%d are missing%s (deleted)", s, end, where)
			}
		}
		s = end
	}

	// The chain, by sequence number: each record carries its
	// predecessor's hash.
	for s := int64(1); s <= maxSeq; s++ {
		a, b := first[s-1], first[s]
		if a == nil || b == nil {
			continue
		}
		if b.prev != hex.EncodeToString(a.hash[:]) {
			rep.problem(a.line, a.seq, KindModified, "record seq %d was modified: its SHA-256 is not the hash recorded by seq %d (line %d)", a.seq, b.seq, b.line)
		}
	}

	// The header and the key.
	hdr := first[0]
	if hdr == nil || hdr.typ != TypeHeader || hdr.header == nil {
		rep.problem(1, 0, KindHeader, "the file does not start with a header record (seq 0): its beginning was deleted or modified")
	} else {
		rep.Header = hdr.header
		if hdr.line != 1 {
			rep.problem(hdr.line, 0, KindHeader, "the header is on line %d, not line 1", hdr.line)
		}
	}
	pub := opts.PublicKey
	rep.Trusted = pub != nil
	if rep.Header != nil {
		raw, err := base64.StdEncoding.DecodeString(rep.Header.PublicKey)
		switch {
		case err != nil || len(raw) != ed25519.PublicKeySize:
			rep.problem(hdr.line, 0, KindKey, "the header's public key is not a valid Ed25519 key")
		case pub != nil && !pub.Equal(ed25519.PublicKey(raw)):
			rep.problem(hdr.line, 0, KindKey, "the header's key %s is not the trusted key %s", KeyID(raw), KeyID(pub))
		case pub == nil:
			pub = ed25519.PublicKey(raw)
		}
	}

	// Digests.
	var lastGood *parsed
	for _, p := range recs {
		if !p.ok || p.dup || p.digest == nil {
			continue
		}
		d := p.digest
		sig, err := base64.StdEncoding.DecodeString(d.Signature)
		switch {
		case pub == nil:
			rep.problem(p.line, p.seq, KindBadSignature, "digest seq %d cannot be checked: no usable public key", p.seq)
		case err != nil || !ed25519.Verify(pub, d.signedMessage(), sig):
			rep.problem(p.line, p.seq, KindBadSignature, "digest seq %d: the signature does not verify (the digest was modified or forged)", p.seq)
		case rep.Header != nil && d.FileID != rep.Header.FileID:
			rep.problem(p.line, p.seq, KindInserted, "digest seq %d belongs to another file (%s)", p.seq, d.FileID)
		default:
			lastGood = p
		}
	}
	if lastGood != nil {
		rep.Signed = lastGood.seq - 1
	}

	// The end of the file.
	var last *parsed
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].ok {
			last = recs[i]
			break
		}
	}
	for _, p := range recs {
		if p.ok && !p.dup && p.digest != nil && p.digest.Final && p != last && p == lastGood {
			rep.problem(p.line, p.seq, KindInserted, "records follow the final digest (seq %d)", p.seq)
		}
	}
	if last != nil && last == lastGood && last.digest.Final && recs[len(recs)-1] == last {
		rep.Final = true
	}
	if !rep.Final && !partialEnd(rep) {
		unsigned := 0
		from := int64(0)
		if lastGood != nil {
			from = lastGood.seq + 1
		}
		for _, p := range recs {
			if p.ok && p.seq >= from {
				unsigned++
			}
		}
		if unsigned > 0 {
			rep.warn(0, from, KindUnsigned, "%d records after the last digest (seq %d..%d) are not covered by a signature: their truncation could not be detected", unsigned, from, maxSeq)
		}
		if opts.AllowOpen {
			rep.warn(0, -1, KindTruncated, "no final digest: the file is still being written, or its node stopped without closing it")
		} else {
			rep.problem(0, -1, KindTruncated, "no final digest after seq %d: the file was truncated, or its node stopped without closing it (if it is still being written, allow an open file)", rep.LastSeq)
		}
	}
	return rep, nil
}

// partialEnd reports whether a truncated-mid-line problem was already
// found.
func partialEnd(rep *Report) bool {
	for _, p := range rep.Problems {
		if p.Kind == KindTruncated {
			return true
		}
	}
	return false
}

// malformedBetween reports whether an unparseable line lies between a and
// b in file order (nil: the file's start or end).
func malformedBetween(recs []*parsed, a, b *parsed) bool {
	lo, hi := 0, int(^uint(0)>>1)
	if a != nil {
		lo = a.line
	}
	if b != nil {
		hi = b.line
	}
	for _, p := range recs {
		if p.malformed && p.line > lo && p.line < hi {
			return true
		}
	}
	return false
}

// VerifyFiles verifies files in order. Consecutive files of one node
// (same key, file index +1) must link: a header carries the hash of the
// previous file's last record. A file that ends without a final digest
// is accepted (with a warning) when the next file's header says the node
// found it unclosed at restart (a crash) and links to its end. AllowOpen
// applies to the last file only.
func VerifyFiles(paths []string, opts VerifyOptions) ([]*Report, error) {
	reps := make([]*Report, 0, len(paths))
	for i, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		o := opts
		o.AllowOpen = opts.AllowOpen && i == len(paths)-1
		rep, err := Verify(f, o)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rep.File = path
		reps = append(reps, rep)
	}
	for i := 1; i < len(reps); i++ {
		a, b := reps[i-1], reps[i]
		if a.Header == nil || b.Header == nil || a.Header.KeyID != b.Header.KeyID || a.Header.NodeID != b.Header.NodeID {
			continue
		}
		if b.Header.FileIndex > a.Header.FileIndex+1 {
			b.problem(1, 0, KindDeleted, "files %d..%d of this node, between %s and %s, are missing",
				a.Header.FileIndex+1, b.Header.FileIndex-1, filepath.Base(a.File), filepath.Base(b.File))
			continue
		}
		if b.Header.FileIndex != a.Header.FileIndex+1 {
			continue
		}
		if b.Header.PrevHash != a.LastHash {
			b.problem(1, 0, KindLink, "%s does not continue %s: its header records the previous file's last hash %s, but that file ends with %s (records were removed from or added to its end)",
				filepath.Base(b.File), filepath.Base(a.File), short(b.Header.PrevHash), short(a.LastHash))
			continue
		}
		if b.Header.PreviousFileClosed != nil && !*b.Header.PreviousFileClosed && !a.Final {
			var keep []Problem
			for _, p := range a.Problems {
				if p.Kind == KindTruncated && p.Line == 0 {
					a.warn(0, -1, KindTruncated, "no final digest: the node stopped without closing this file (crash), as %s records; it links to this file's end", filepath.Base(b.File))
					continue
				}
				keep = append(keep, p)
			}
			a.Problems = append([]Problem{}, keep...)
		}
	}
	return reps, nil
}

func short(h string) string {
	if h == "" {
		return "(none)"
	}
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
