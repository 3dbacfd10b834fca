package audit

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/api"
	"github.com/kmsd/kmsd/service"
)

// wantBatch is what the batch encoder must produce for evs: appendEvent of
// buildEvent of each event, with the eventIDs of rnd.
func wantBatch(t testing.TB, evs []api.AuditEvent, rnd []byte, region, account, node string) []string {
	want := make([]string, len(evs))
	for i, ev := range evs {
		id := string(appendUUID(nil, rnd[16*i:]))
		e := buildEvent(ev, region, account, node, id)
		b := appendEvent(nil, &e)
		ref, err := json.Marshal(e)
		require.NoError(t, err)
		require.Equal(t, string(ref), string(b), "event %d: appendEvent and json.Marshal differ", i)
		want[i] = string(b)
	}
	return want
}

// testEncoders is shared by the tests' batches, so that an encoder is
// reused after encoding other events.
var testEncoders = make(encoderPool, 1)

// checkBatchEncoder encodes evs with a pooled encoder and compares every
// event and its prehash with the per-event path.
func checkBatchEncoder(t testing.TB, evs []api.AuditEvent, region, account, node string) {
	rnd := make([]byte, 16*len(evs))
	_, _ = rand.Read(rnd)
	want := wantBatch(t, evs, rnd, region, account, node)
	enc := testEncoders.get(region, account, node)
	defer testEncoders.put(enc)
	enc.encode(evs, rnd)
	require.Len(t, enc.ends, len(evs))
	start := 0
	for i, end := range enc.ends {
		got := enc.buf[start:end]
		require.Equal(t, want[i], string(got), "event %d of %d", i, len(evs))
		h := enc.hashes[i]
		h.Write([]byte("}"))
		require.Equal(t, sha256Hex(got), hex.EncodeToString(h.Sum(nil)), "prehash of event %d", i)
		start = end
	}
}

func sha256Hex(b []byte) string {
	h := newTestSHA256()
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// mixedEvents returns n events that share, or not, each of the parts the
// batch encoder reuses: callers, times (the same instant in other
// locations or with a monotonic reading too), operations, source IPs,
// user agents, errors and bodies (repeated, differing, odd, empty, nil).
func mixedEvents(r *mrand.Rand, n int) []api.AuditEvent {
	callers := []service.Caller{
		{ARN: "arn:aws:iam::111122223333:user/alice", AccountID: "111122223333", AccessKeyID: "AKIDEXAMPLE"},
		{ARN: "arn:aws:iam::111122223333:user/alice", AccountID: "111122223333", AccessKeyID: "AKIDOTHER"},
		{ARN: "arn:aws:iam::111122223333:user/alice", AccountID: "", AccessKeyID: "AKIDEXAMPLE"},
		{ARN: "arn:aws:iam::444455556666:root", AccountID: "444455556666"},
		{ARN: "arn:aws:sts::111122223333:assumed-role/admin/sess:1", AccountID: "111122223333", Policy: `{"x":1}`},
		{ARN: "arn:aws:iam::111122223333:user/<b>&bob", AccountID: "111122223333"},
		{},
	}
	base := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)
	times := []time.Time{
		base, base.In(time.FixedZone("x", 3600)), base.Add(time.Nanosecond), base.Add(time.Second),
		time.Now(), time.Now().Round(0), {},
	}
	ops := []string{"BatchGenerateDataKey", "CreateKey", "Encrypt", api.OperationUnknown, "Odd<op>"}
	ips := []string{"192.0.2.10", "192.0.2.11", ""}
	uas := []string{"aws-sdk-go-v2/1.36.3", "café \u2028", ""}
	bodies := append(append([]string{}, sdkBodies...), oddBodies...)
	pick := func(prev string) string {
		switch r.IntN(4) {
		case 0, 1:
			return prev // repeated: the memo is reused
		}
		return bodies[r.IntN(len(bodies))]
	}
	var req, resp string
	evs := make([]api.AuditEvent, n)
	// Each event starts from the one before it and changes each head input
	// with probability 1/change: one at a time, several or none.
	change := 1 + r.IntN(8)
	ev := api.AuditEvent{Operation: ops[0], Time: times[0], Info: service.RequestInfo{Caller: callers[0], SourceIP: ips[0], UserAgent: uas[0]}}
	for i := range evs {
		if r.IntN(change) == 0 {
			ev.Operation = ops[r.IntN(len(ops))]
		}
		if r.IntN(change) == 0 {
			ev.Time = times[r.IntN(len(times))]
		}
		if r.IntN(change) == 0 {
			ev.Info.Caller = callers[r.IntN(len(callers))]
		}
		if r.IntN(change) == 0 {
			ev.Info.SourceIP = ips[r.IntN(len(ips))]
		}
		if r.IntN(change) == 0 {
			ev.Info.UserAgent = uas[r.IntN(len(uas))]
		}
		ev.ErrorCode, ev.ErrorMessage = "", ""
		ev.Info.RequestID = fmt.Sprintf("batch#%d", i)
		req, resp = pick(req), pick(resp)
		ev.Request, ev.Response = []byte(req), []byte(resp)
		switch r.IntN(8) {
		case 0:
			ev.Request = nil
		case 1:
			ev.Response, ev.ErrorCode, ev.ErrorMessage = nil, "NotFoundException", "no <such> key"
		}
		evs[i] = ev
	}
	return evs
}

// The batch encoder writes every event as the per-event path does, however
// its parts repeat or differ from one event to the next, and whatever a
// pooled encoder encoded before.
func TestBatchEncoderMatchesPerEvent(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	for iter := range 300 {
		region, account, node := "us-east-1", "111122223333", "n1"
		if iter%3 == 1 {
			region, account, node = "eu-west-1", "444455556666", ""
		}
		checkBatchEncoder(t, mixedEvents(r, 1+r.IntN(40)), region, account, node)
	}
	checkBatchEncoder(t, apiBatchEvents(1000, false), "us-east-1", "111122223333", "n1")
	checkBatchEncoder(t, apiBatchEvents(1000, true), "us-east-1", "111122223333", "n1")
}

// Events that share all but their caller or time get their own identity
// and eventTime: checked in the written records.
func TestRecordBatchMixedCallersAndTimes(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, func(o *Options) { o.DigestEvery = 100 })
	evs := apiBatchEvents(6, false)
	evs[1].Info.Caller.ARN = "arn:aws:iam::111122223333:user/bob"
	evs[2].Time = evs[2].Time.Add(time.Second)
	evs[3].Info.Caller.AccessKeyID = "AKIDOTHER"
	evs[4].Time = evs[4].Time.In(time.FixedZone("x", -7200)) // the same instant
	evs[5].Info.Caller = service.Caller{ARN: "arn:aws:iam::444455556666:root"}
	require.NoError(t, w.RecordBatch(context.Background(), evs))
	require.NoError(t, w.Close())

	recs := eventRecords(t, w.Path())
	require.Len(t, recs, len(evs))
	type ident struct {
		Type, ARN, AccountID, AccessKeyID, UserName, PrincipalID string
	}
	want := []struct {
		user ident
		time string
	}{
		{ident{"IAMUser", "arn:aws:iam::111122223333:user/alice", "111122223333", "AKIDEXAMPLE", "alice", ""}, "2025-03-04T05:06:07Z"},
		{ident{"IAMUser", "arn:aws:iam::111122223333:user/bob", "111122223333", "AKIDEXAMPLE", "bob", ""}, "2025-03-04T05:06:07Z"},
		{ident{"IAMUser", "arn:aws:iam::111122223333:user/alice", "111122223333", "AKIDEXAMPLE", "alice", ""}, "2025-03-04T05:06:08Z"},
		{ident{"IAMUser", "arn:aws:iam::111122223333:user/alice", "111122223333", "AKIDOTHER", "alice", ""}, "2025-03-04T05:06:07Z"},
		{ident{"IAMUser", "arn:aws:iam::111122223333:user/alice", "111122223333", "AKIDEXAMPLE", "alice", ""}, "2025-03-04T05:06:07Z"},
		{ident{"Root", "arn:aws:iam::444455556666:root", "444455556666", "", "", "444455556666"}, "2025-03-04T05:06:07Z"},
	}
	for i, rec := range recs {
		var got struct {
			UserIdentity ident  `json:"userIdentity"`
			EventTime    string `json:"eventTime"`
			RequestID    string `json:"requestID"`
		}
		require.NoError(t, json.Unmarshal([]byte(rec), &got))
		require.Equal(t, want[i].user, got.UserIdentity, "record %d", i)
		require.Equal(t, want[i].time, got.EventTime, "record %d", i)
		require.Equal(t, evs[i].Info.RequestID, got.RequestID)
	}
}

// eventRecords returns the event records of the file at path.
func eventRecords(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var recs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"kmsdRecordType"`) {
			recs = append(recs, sc.Text())
		}
	}
	require.NoError(t, sc.Err())
	return recs
}

// The eventIDs of a batch (and of consecutive batches) are distinct
// version 4 UUIDs, and every written record is the per-event encoding of
// its event with the chain fields after it.
func TestRecordBatchEventIDsAndBytes(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, func(o *Options) { o.DigestEvery = 300 })
	evs := apiBatchEvents(1000, false)
	require.NoError(t, w.RecordBatch(context.Background(), evs))
	require.NoError(t, w.RecordBatch(context.Background(), evs))
	require.NoError(t, w.Close())
	rep := verifyFile(t, w.Path(), w.PublicKey())
	require.True(t, rep.OK(), "%v", rep.Problems)
	require.Equal(t, 2000, rep.Events)

	recs := eventRecords(t, w.Path())
	require.Len(t, recs, 2000)
	seen := make(map[string]bool, len(recs))
	for i, rec := range recs {
		var got struct {
			EventID string `json:"eventID"`
		}
		require.NoError(t, json.Unmarshal([]byte(rec), &got))
		require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, got.EventID)
		require.False(t, seen[got.EventID], "eventID %s repeated", got.EventID)
		seen[got.EventID] = true
		e := buildEvent(evs[i%1000], "us-east-1", "111122223333", "n1", got.EventID)
		b, err := json.Marshal(e)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(rec, string(b[:len(b)-1])+`,"kmsdSeq":`), "record %d: %s", i, rec)
	}
}

// identitySplitN is identity as it was written first, the reference.
func identitySplitN(arn, account, akid string) UserIdentity {
	u := UserIdentity{ARN: arn, AccountID: account, AccessKeyID: akid, Type: "Unknown"}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" {
		if u.AccountID == "" {
			u.AccountID = parts[4]
		}
		res := parts[5]
		switch {
		case parts[2] == "iam" && res == "root":
			u.Type, u.PrincipalID = "Root", u.AccountID
		case parts[2] == "iam" && strings.HasPrefix(res, "user/"):
			u.Type = "IAMUser"
			u.UserName = res[strings.LastIndexByte(res, '/')+1:]
		case parts[2] == "sts" && strings.HasPrefix(res, "assumed-role/"):
			u.Type = "AssumedRole"
		case parts[2] == "iam" && strings.HasPrefix(res, "role/"):
			u.Type = "AssumedRole"
		}
	}
	return u
}

// isKeyIDDecode is isKeyID as it was written first, the reference.
func isKeyIDDecode(s string) bool {
	if h, ok := strings.CutPrefix(s, "mrk-"); ok {
		_, err := hex.DecodeString(h)
		return err == nil && len(h) == 32
	}
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// uuidHex is newUUID's formatting as it was written first, the reference.
func uuidHex(r []byte) string {
	var b [16]byte
	copy(b[:], r)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

var identityCases = []string{
	"", ":", "arn", "arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:user/path/bob",
	"arn:aws:sts::111122223333:assumed-role/admin/sess-1", "arn:aws:iam::111122223333:role/r",
	"arn:aws:iam::111122223333:user/a:b:c", "arn:aws:iam::111122223333", "arn:aws:iam:::root", "arn::::::",
	"ARN:aws:iam::111122223333:root", "x:aws:iam::111122223333:root", "arn:aws:sts::1:assumed-role",
}

var keyIDCases = []string{
	"", testKeyID, strings.ToUpper(testKeyID), "mrk-0123456789abcdef0123456789abcdef", "mrk-0123456789ABCDEF0123456789abcdeg",
	"mrk-0123456789abcdef0123456789abcde", "mrk-", "1234abcd-12ab-34cd-56ef-1234567890a\u00e9", "1234abcd_12ab-34cd-56ef-1234567890ab",
	"1234abcd-12ab-34cd-56ef-1234567890abc", "alias/x", "mrk-0123456789abcdef0123456789abcdef0",
}

func TestRewrittenHelpersMatchReferences(t *testing.T) {
	for _, arn := range identityCases {
		for _, acct := range []string{"", "999988887777"} {
			require.Equal(t, identitySplitN(arn, acct, "AK"), identity(arn, acct, "AK"), "%q %q", arn, acct)
		}
	}
	for _, s := range keyIDCases {
		require.Equal(t, isKeyIDDecode(s), isKeyID(s), "%q", s)
		require.Equal(t, isKeyIDDecode(s), isKeyID([]byte(s)), "%q", s)
	}
	r := make([]byte, 16)
	for range 1000 {
		_, _ = rand.Read(r)
		require.Equal(t, uuidHex(r), string(appendUUID(nil, r)))
	}
	for _, b := range [][]byte{make([]byte, 16), []byte(strings.Repeat("\xff", 16))} {
		require.Equal(t, uuidHex(b), string(appendUUID(nil, b)))
	}
}

// FuzzBatchEncoder checks the batch encoder against the per-event path on
// batches of fuzzed bodies, callers and strings, repeated and not.
func FuzzBatchEncoder(f *testing.F) {
	for i, b := range append(append([]string{}, sdkBodies...), oddBodies...) {
		f.Add([]byte(b), []byte(sdkBodies[i%len(sdkBodies)]), identityCases[i%len(identityCases)], keyIDCases[i%len(keyIDCases)], uint8(i))
	}
	f.Fuzz(func(t *testing.T, b1, b2 []byte, arn, s string, pattern uint8) {
		require.Equal(t, identitySplitN(arn, s, s), identity(arn, s, s))
		require.Equal(t, isKeyIDDecode(s), isKeyID(s))
		base := testEvent(0)
		evs := make([]api.AuditEvent, 8)
		for i := range evs {
			ev := base
			ev.Info.RequestID = s
			ev.Request, ev.Response = b1, b2
			if pattern&(1<<i) != 0 {
				ev.Request, ev.Response = b2, b1
				ev.Info.Caller.ARN, ev.Info.UserAgent = arn, s
				ev.Time = ev.Time.Add(time.Duration(i) * 300 * time.Millisecond)
			}
			if i == 5 {
				ev.Operation, ev.ErrorMessage = s, s
			}
			evs[i] = ev
		}
		checkBatchEncoder(t, evs, "us-east-1", "111122223333", s)
	})
}
