package load

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kmsd/kmsd/kmsdclient"
)

// Client modes (Config.Client).
const (
	// ClientSDK drives the endpoints through the AWS SDK for Go v2 (and
	// kmsdclient for the batch ops), as an application would.
	ClientSDK = "sdk"
	// ClientRaw sends hand-built AWS JSON 1.1 requests signed with the
	// SDK's SigV4 signer and reads only the status, the error type and,
	// for batch ops, the item count: a client cheap enough that it does not
	// cap a single node's measurement on the same machine.
	ClientRaw = "raw"
)

// trentPrefix prefixes the X-Amz-Target of the AWS KMS operations.
const trentPrefix = "TrentService."

// maxRawErrorBody bounds how much of an error answer is decoded; the rest
// is drained so the connection is reused.
const maxRawErrorBody = 64 << 10

// maxRawBatchBody bounds a batch answer (as kmsdclient does).
const maxRawBatchBody = 64 << 20

// rawRequest is one precomputed request: the body, its SHA-256 in hex (the
// SigV4 payload hash) and the X-Amz-Target header value.
type rawRequest struct {
	body   []byte
	hash   string
	target []string
}

func newRawRequest(target string, body []byte) rawRequest {
	sum := sha256.Sum256(body)
	return rawRequest{body: body, hash: hex.EncodeToString(sum[:]), target: []string{target}}
}

// rawWorkload holds every body a raw-mode run sends. The key, the
// plaintext and the setup ciphertexts are fixed for the run, so each op
// has one body, or one per setup ciphertext for Decrypt, ReEncrypt.
type rawWorkload struct {
	reqs      map[string][]rawRequest
	batchSize int
	creds     aws.Credentials
	region    string
	signer    *v4.Signer
}

var contentTypeValue = []string{kmsdclient.ContentType}

// appendJSONString appends s as a JSON string. Bodies are built once per
// run, so encoding/json's escaping (invalid UTF-8, HTML characters) is
// affordable and keeps them byte-identical to what the SDK would send.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

func appendBlob(b []byte, blob []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, blob)
	return append(b, '"')
}

// newRawWorkload precomputes the request of every op of the mix.
func newRawWorkload(cfg *Config, w *workload) *rawWorkload {
	rw := &rawWorkload{
		reqs:      map[string][]rawRequest{},
		batchSize: cfg.BatchSize,
		creds:     aws.Credentials{AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.SecretAccessKey, SessionToken: cfg.SessionToken, Source: "bench/load"},
		region:    cfg.Region,
		signer:    v4.NewSigner(),
	}
	keyID := appendJSONString(nil, w.keyID)
	withKey := func(tail string) []byte {
		b := append([]byte(`{"KeyId":`), keyID...)
		return append(b, tail...)
	}
	items := func(n int, item func(b []byte, i int) []byte) []byte {
		b := []byte(`{"Items":[`)
		for i := range n {
			if i > 0 {
				b = append(b, ',')
			}
			b = item(b, i)
		}
		return append(b, "]}"...)
	}
	for _, e := range cfg.Mix {
		op := e.Op
		single := func(body []byte) { rw.reqs[op] = []rawRequest{newRawRequest(trentPrefix+op, body)} }
		switch op {
		case "GenerateDataKey", "GenerateDataKeyWithoutPlaintext":
			single(withKey(`,"KeySpec":"AES_256"}`))
		case "Encrypt":
			b := withKey(`,"Plaintext":`)
			single(append(appendBlob(b, w.plaintext), '}'))
		case "Decrypt":
			for _, ct := range w.ciphertexts {
				b := appendBlob([]byte(`{"CiphertextBlob":`), ct)
				rw.reqs[op] = append(rw.reqs[op], newRawRequest(trentPrefix+op, append(b, '}')))
			}
		case "ReEncrypt":
			for _, ct := range w.ciphertexts {
				b := appendBlob([]byte(`{"CiphertextBlob":`), ct)
				b = append(append(b, `,"DestinationKeyId":`...), keyID...)
				rw.reqs[op] = append(rw.reqs[op], newRawRequest(trentPrefix+op, append(b, '}')))
			}
		case "DescribeKey":
			single(append(withKey(""), '}'))
		case "CreateKey":
			single([]byte(`{"Description":"kmsd bench load (CreateKey op)"}`))
		case "BatchGenerateDataKey", "BatchGenerateDataKeyWithoutPlaintext":
			b := items(cfg.BatchSize, func(b []byte, _ int) []byte {
				b = append(append(b, `{"KeyId":`...), keyID...)
				return append(b, `,"KeySpec":"AES_256"}`...)
			})
			rw.reqs[op] = []rawRequest{newRawRequest(kmsdclient.TargetPrefix+op, b)}
		case "BatchEncrypt":
			b := items(cfg.BatchSize, func(b []byte, _ int) []byte {
				b = append(append(b, `{"KeyId":`...), keyID...)
				b = appendBlob(append(b, `,"Plaintext":`...), w.plaintext)
				return append(b, '}')
			})
			rw.reqs[op] = []rawRequest{newRawRequest(kmsdclient.TargetPrefix+op, b)}
		case "BatchDecrypt":
			b := items(cfg.BatchSize, func(b []byte, i int) []byte {
				b = appendBlob(append(b, `{"CiphertextBlob":`...), w.ciphertexts[i%len(w.ciphertexts)])
				return append(b, '}')
			})
			rw.reqs[op] = []rawRequest{newRawRequest(kmsdclient.TargetPrefix+op, b)}
		}
	}
	return rw
}

// rawWorker is one worker's reusable state.
type rawWorker struct {
	wl  *rawWorkload
	buf bytes.Buffer // batch answers
}

// do sends one op's request to t and reads the answer: a 2xx answer is a
// success (a batch answer's items are counted), any other status an
// *kmsdclient.APIError carrying the answer's __type, which ClassifyError
// reports as the SDK's errors are.
func (rw *rawWorker) do(ctx context.Context, t *target, op string, r *mrand.Rand) (outcome, error) {
	reqs := rw.wl.reqs[op]
	if len(reqs) == 0 {
		return outcome{}, fmt.Errorf("unknown op %s", op)
	}
	rq := &reqs[0]
	if len(reqs) > 1 {
		rq = &reqs[r.IntN(len(reqs))]
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.rawURL, bytes.NewReader(rq.body))
	if err != nil {
		return outcome{}, err
	}
	req.Header = http.Header{"Content-Type": contentTypeValue, "X-Amz-Target": rq.target}
	if err := rw.wl.signer.SignHTTP(ctx, rw.wl.creds, req, rq.hash, kmsdclient.SigningName, rw.wl.region, time.Now().UTC()); err != nil {
		return outcome{}, fmt.Errorf("signing %s: %w", op, err)
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return outcome{}, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return outcome{}, rawAPIError(op, resp)
	}
	if !IsBatchOp(op) {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return outcome{}, fmt.Errorf("%s: reading response: %w", op, err)
		}
		return outcome{items: 1}, nil
	}
	rw.buf.Reset()
	if _, err := rw.buf.ReadFrom(io.LimitReader(resp.Body, maxRawBatchBody+1)); err != nil {
		return outcome{}, fmt.Errorf("%s: reading response: %w", op, err)
	}
	if rw.buf.Len() > maxRawBatchBody {
		return outcome{}, fmt.Errorf("%w: %s: response larger than %d bytes", kmsdclient.ErrResponse, op, maxRawBatchBody)
	}
	o, n, err := scanBatchResults(rw.buf.Bytes())
	if err != nil {
		return outcome{}, fmt.Errorf("%w: %s: %v", kmsdclient.ErrResponse, op, err)
	}
	if n != rw.wl.batchSize {
		// As kmsdclient (SDK mode): a result count that is not the item
		// count fails the request.
		return outcome{}, fmt.Errorf("%w: %s: %d results for %d items", kmsdclient.ErrResponse, op, n, rw.wl.batchSize)
	}
	return o, nil
}

// rawAPIError reads an AWS JSON error answer ({"__type", "message"}), as
// the SDK and kmsdclient do: the type may be qualified
// ("com.amazonaws.kms#NotFoundException") or carry details after a colon;
// without one the X-Amzn-ErrorType header, then the status, names it.
func rawAPIError(op string, resp *http.Response) error {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxRawErrorBody))
	if err != nil {
		return fmt.Errorf("%s: reading HTTP %d response: %w", op, resp.StatusCode, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return kmsdclient.DecodeAPIError(op, resp, raw, resp.Header.Get("X-Amzn-Requestid"))
}

// Roles of the containers scanBatchResults walks through.
const (
	roleOther   = iota
	roleRoot    // the answer object
	roleResults // its "Results" array
	roleItem    // one result object
	roleError   // an item's "Error" object
)

// scanBatchResults counts a batch answer's results ({"Results":[{...},
// ...]}) and, of those, the items that failed alone (an "Error" object;
// "Error":null is no error, as in encoding/json) by their "__type",
// without decoding anything else: it only tracks nesting and the keys on
// the path root → Results → item → Error, skipping strings (with their
// escapes), numbers and literals. It expects well-formed JSON and rejects
// unbalanced or truncated input; it is not a full validator.
func scanBatchResults(b []byte) (o outcome, results int, err error) {
	var (
		kinds   [64]byte // '{' or '[' per open container
		roles   [64]byte
		depth   int
		pending []byte // the key whose value comes next
		isKey   bool   // the next string in this object is a key
		errType []byte // __type of the open Error object
		roots   int
	)
	addErr := func(code []byte) {
		if o.itemErrorTypes == nil {
			o.itemErrorTypes = map[string]uint64{}
		}
		s := string(code)
		if bytes.IndexByte(code, '\\') >= 0 {
			var u string
			if json.Unmarshal(append(append([]byte{'"'}, code...), '"'), &u) == nil {
				s = u
			}
		}
		o.itemErrorTypes[s]++
		o.itemErrors++
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch c {
		case ' ', '\t', '\r', '\n':
		case '{', '[':
			if depth == len(kinds) {
				return outcome{}, 0, fmt.Errorf("nested deeper than %d", len(kinds))
			}
			role := byte(roleOther)
			parent := byte(roleOther)
			if depth > 0 {
				parent = roles[depth-1]
			} else {
				roots++
				if roots > 1 {
					return outcome{}, 0, fmt.Errorf("more than one value")
				}
			}
			switch {
			case depth == 0 && c == '{':
				role = roleRoot
			case parent == roleRoot && c == '[' && string(pending) == "Results":
				role = roleResults
			case parent == roleResults && c == '{':
				role = roleItem
				results++
			case parent == roleItem && c == '{' && string(pending) == "Error":
				role = roleError
				errType = nil
			}
			kinds[depth], roles[depth] = c, role
			depth++
			pending = nil
			isKey = c == '{'
		case '}', ']':
			if depth == 0 || kinds[depth-1] != c-2 { // '{'+2 == '}', '['+2 == ']'
				return outcome{}, 0, fmt.Errorf("unbalanced %q at byte %d", c, i)
			}
			depth--
			if roles[depth] == roleError {
				addErr(errType)
			}
			pending = nil
			isKey = false
		case ',':
			isKey = depth > 0 && kinds[depth-1] == '{'
			pending = nil
		case ':':
			isKey = false
		case '"':
			if depth == 0 {
				return outcome{}, 0, fmt.Errorf("unexpected string at byte %d", i)
			}
			start := i + 1
			i++
			for ; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if i >= len(b) {
				return outcome{}, 0, fmt.Errorf("unterminated string")
			}
			s := b[start:i]
			if isKey {
				pending = s
				isKey = false
				continue
			}
			if depth > 0 && roles[depth-1] == roleError && string(pending) == "__type" {
				errType = s
			}
			pending = nil
		default:
			if depth == 0 {
				return outcome{}, 0, fmt.Errorf("unexpected %q at byte %d", c, i)
			}
			// A number or literal: skip to its end.
			for i+1 < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[i+1])) {
				i++
			}
			pending = nil
		}
	}
	if depth != 0 || roots != 1 {
		return outcome{}, 0, fmt.Errorf("truncated")
	}
	o.items = uint64(results) - o.itemErrors
	return o, results, nil
}
