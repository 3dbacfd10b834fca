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

// summaryRef is the reference encoding of a summary record (batch.go):
// encoding/json of this struct, whose fields are in the record's order.
type summaryRef struct {
	EventVersion      string       `json:"eventVersion"`
	UserIdentity      UserIdentity `json:"userIdentity"`
	EventTime         string       `json:"eventTime"`
	EventSource       string       `json:"eventSource"`
	EventName         string       `json:"eventName"`
	AWSRegion         string       `json:"awsRegion"`
	SourceIPAddress   string       `json:"sourceIPAddress"`
	UserAgent         string       `json:"userAgent"`
	RequestParameters struct {
		ItemCount int `json:"itemCount"`
	} `json:"requestParameters"`
	ResponseElements struct {
		FailedItemCount int `json:"failedItemCount"`
	} `json:"responseElements"`
	AdditionalEventData struct {
		Items []itemRef `json:"items"`
	} `json:"additionalEventData"`
	RequestID          string     `json:"requestID"`
	EventID            string     `json:"eventID"`
	ReadOnly           bool       `json:"readOnly"`
	Resources          []Resource `json:"resources,omitempty"`
	EventType          string     `json:"eventType"`
	ManagementEvent    bool       `json:"managementEvent"`
	RecipientAccountID string     `json:"recipientAccountId"`
	EventCategory      string     `json:"eventCategory"`
	NodeID             string     `json:"kmsdNodeId,omitempty"`
}

// itemRef is an item's entry in summaryRef.
type itemRef struct {
	RequestID         string           `json:"requestID"`
	RequestParameters json.RawMessage  `json:"requestParameters"`
	ResponseElements  *json.RawMessage `json:"responseElements,omitempty"`
	ErrorCode         string           `json:"errorCode,omitempty"`
	ErrorMessage      string           `json:"errorMessage,omitempty"`
}

// wantSummary is the summary record of req's items with eventID id,
// derived from the per-event path: the head of BuildEvent of req, each
// item's filtered bodies, errors and resources as BuildEvent of the item
// has them (resources merged in first-seen order), encoded by encoding/json.
func wantSummary(t testing.TB, req api.AuditEvent, items []api.AuditEvent, id, region, account, node string) string {
	h := buildEvent(req, region, account, node, id)
	ref := summaryRef{EventVersion: h.EventVersion, UserIdentity: h.UserIdentity, EventTime: h.EventTime,
		EventSource: h.EventSource, EventName: h.EventName, AWSRegion: h.AWSRegion, SourceIPAddress: h.SourceIPAddress,
		UserAgent: h.UserAgent, RequestID: h.RequestID, EventID: id, ReadOnly: h.ReadOnly, EventType: h.EventType,
		ManagementEvent: h.ManagementEvent, RecipientAccountID: h.RecipientAccountID, EventCategory: h.EventCategory,
		NodeID: h.NodeID}
	ref.RequestParameters.ItemCount = len(items)
	ref.AdditionalEventData.Items = []itemRef{}
	seen := map[string]bool{}
	for _, it := range items {
		e := buildEvent(it, region, account, node, id)
		ir := itemRef{RequestID: e.RequestID, RequestParameters: e.RequestParameters}
		if it.ErrorCode != "" || it.ErrorMessage != "" {
			ir.ErrorCode, ir.ErrorMessage = it.ErrorCode, it.ErrorMessage
		} else {
			resp := e.ResponseElements
			ir.ResponseElements = &resp
		}
		if it.ErrorCode != "" {
			ref.ResponseElements.FailedItemCount++
		}
		ref.AdditionalEventData.Items = append(ref.AdditionalEventData.Items, ir)
		for _, r := range e.Resources {
			if !seen[r.ARN] {
				seen[r.ARN] = true
				ref.Resources = append(ref.Resources, r)
			}
		}
	}
	b, err := json.Marshal(ref)
	require.NoError(t, err)
	return string(b)
}

// testKeyID2 is a second key id.
const testKeyID2 = "5678abcd-12ab-34cd-56ef-1234567890ab"

// testEncoders is shared by the tests' batches, so that an encoder is
// reused after encoding other batches.
var testEncoders = make(encoderPool, 1)

// checkBatchEncoder encodes req's items with a pooled encoder and compares
// the record and its prehash with the reference.
func checkBatchEncoder(t testing.TB, req api.AuditEvent, items []api.AuditEvent, region, account, node string) {
	rnd := make([]byte, 16)
	_, _ = rand.Read(rnd)
	want := wantSummary(t, req, items, string(appendUUID(nil, rnd)), region, account, node)
	enc := testEncoders.get(region, account, node)
	defer testEncoders.put(enc)
	enc.encode(&req, items, rnd)
	require.Equal(t, want, string(enc.buf), "%d items", len(items))
	require.True(t, json.Valid(enc.buf))
	enc.hash.Write([]byte("}"))
	require.Equal(t, sha256Hex(enc.buf), hex.EncodeToString(enc.hash.Sum(nil)), "prehash")
}

func sha256Hex(b []byte) string {
	h := newTestSHA256()
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// mixedEvents returns n events that share, or not, their bodies
// (repeated, differing, odd, empty, nil; the batch encoder filters a body
// only when it differs from the previous item's) and errors, and also
// their callers, times, operations, source IPs and user agents, which a
// summary record takes from the request instead.
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

// batchRequest is the request event of items: the first item's head,
// with the batch's own request id.
func batchRequest(items []api.AuditEvent) api.AuditEvent {
	req := api.AuditEvent{Operation: "BatchGenerateDataKey", Info: service.RequestInfo{RequestID: "batch"}}
	if len(items) > 0 {
		req.Operation, req.Info, req.Time = items[0].Operation, items[0].Info, items[0].Time
		req.Info.RequestID = "batch"
	}
	return req
}

// The summary record holds every item as the per-event path would filter
// it, however bodies and errors repeat or differ from one item to the
// next, and whatever a pooled encoder encoded before. (mixedEvents also
// varies the items' heads, which the summary ignores: it takes req's.)
func TestBatchEncoderMatchesReference(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	for iter := range 300 {
		region, account, node := "us-east-1", "111122223333", "n1"
		if iter%3 == 1 {
			region, account, node = "eu-west-1", "444455556666", ""
		}
		items := mixedEvents(r, 1+r.IntN(40))
		checkBatchEncoder(t, batchRequest(items), items, region, account, node)
	}
	for _, perItem := range []bool{false, true} {
		items := apiBatchEvents(1000, perItem)
		checkBatchEncoder(t, apiBatchRequest(items), items, "us-east-1", "111122223333", "n1")
	}
}

// The summary's head is the request's: its caller, time, operation and
// request id; each item keeps its own request id and outcome.
func TestRecordBatchSummaryRecord(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, func(o *Options) { o.DigestEvery = 100 })
	items := apiBatchEvents(4, false)
	items[1].Response, items[1].ErrorCode, items[1].ErrorMessage = nil, "DisabledException", "key <k> is disabled"
	items[2].Request = []byte(`{"KeyId":"alias/app","KeySpec":"AES_256","Plaintext":"c2VjcmV0"}`)
	items[3].Request = []byte(`{"KeyId":"` + testKeyID2 + `","KeySpec":"AES_256","EncryptionContext":{"tenant":"a"}}`)
	items[3].Response = []byte(`{"KeyId":"arn:aws:kms:us-east-1:111122223333:key/` + testKeyID2 + `","Plaintext":"c2VjcmV0","CiphertextBlob":"Y2lwaGVy"}`)
	req := apiBatchRequest(items)
	require.NoError(t, w.RecordBatch(context.Background(), req, items))
	require.NoError(t, w.Close())

	recs := eventRecords(t, w.Path())
	require.Len(t, recs, 1)
	require.NotContains(t, recs[0], "c2VjcmV0")
	require.NotContains(t, recs[0], "Y2lwaGVy")
	var got struct {
		UserIdentity struct{ ARN, UserName string } `json:"userIdentity"`
		EventTime    string                         `json:"eventTime"`
		EventName    string                         `json:"eventName"`
		RequestID    string                         `json:"requestID"`
		ReadOnly     bool                           `json:"readOnly"`
		ErrorCode    *string                        `json:"errorCode"`
		Params       struct{ ItemCount int }        `json:"requestParameters"`
		Elements     struct{ FailedItemCount int }  `json:"responseElements"`
		Additional   struct {
			Items []struct {
				RequestID         string            `json:"requestID"`
				RequestParameters map[string]any    `json:"requestParameters"`
				ResponseElements  map[string]string `json:"responseElements"`
				ErrorCode         string            `json:"errorCode"`
				ErrorMessage      string            `json:"errorMessage"`
			} `json:"items"`
		} `json:"additionalEventData"`
		Resources []Resource `json:"resources"`
	}
	require.NoError(t, json.Unmarshal([]byte(recs[0]), &got))
	require.Equal(t, "arn:aws:iam::111122223333:user/alice", got.UserIdentity.ARN)
	require.Equal(t, "2025-03-04T05:06:07Z", got.EventTime)
	require.Equal(t, "BatchGenerateDataKey", got.EventName)
	require.Equal(t, req.Info.RequestID, got.RequestID)
	require.True(t, got.ReadOnly)
	require.Nil(t, got.ErrorCode, "the request as a whole succeeded")
	require.Equal(t, 4, got.Params.ItemCount)
	require.Equal(t, 1, got.Elements.FailedItemCount)
	require.Len(t, got.Additional.Items, 4)
	for i, it := range got.Additional.Items {
		require.Equal(t, items[i].Info.RequestID, it.RequestID)
	}
	require.Equal(t, "DisabledException", got.Additional.Items[1].ErrorCode)
	require.Equal(t, "key <k> is disabled", got.Additional.Items[1].ErrorMessage)
	require.Nil(t, got.Additional.Items[1].ResponseElements)
	require.Equal(t, "alias/app", got.Additional.Items[2].RequestParameters["keyId"])
	require.Equal(t, map[string]any{"tenant": "a"}, got.Additional.Items[3].RequestParameters["encryptionContext"])
	require.Equal(t, "arn:aws:kms:us-east-1:111122223333:key/"+testKeyID, got.Additional.Items[0].ResponseElements["keyId"])
	require.Len(t, got.Additional.Items[0].ResponseElements["keyMaterialId"], 64)
	// Each key once, in first-seen order; the alias is not a resource.
	require.Equal(t, []Resource{
		{ARN: "arn:aws:kms:us-east-1:111122223333:key/" + testKeyID, Type: "AWS::KMS::Key", AccountID: "111122223333"},
		{ARN: "arn:aws:kms:us-east-1:111122223333:key/" + testKeyID2, Type: "AWS::KMS::Key", AccountID: "111122223333"},
	}, got.Resources)
}

// eventRecords returns the event records of the file at path.
func eventRecords(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var recs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"kmsdRecordType"`) {
			recs = append(recs, sc.Text())
		}
	}
	require.NoError(t, sc.Err())
	return recs
}

// Consecutive batches get distinct version 4 eventIDs, and every written
// record is the reference encoding of its batch with the chain fields
// after it.
func TestRecordBatchEventIDsAndBytes(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, func(o *Options) { o.DigestEvery = 300 })
	items := apiBatchEvents(1000, false)
	req := apiBatchRequest(items)
	for range 3 {
		require.NoError(t, w.RecordBatch(context.Background(), req, items))
	}
	require.NoError(t, w.Close())
	rep := verifyFile(t, w.Path(), w.PublicKey())
	require.True(t, rep.OK(), "%v", rep.Problems)
	require.Equal(t, 3, rep.Events)

	recs := eventRecords(t, w.Path())
	require.Len(t, recs, 3)
	seen := make(map[string]bool, len(recs))
	for i, rec := range recs {
		var got struct {
			EventID string `json:"eventID"`
		}
		require.NoError(t, json.Unmarshal([]byte(rec), &got))
		require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, got.EventID)
		require.False(t, seen[got.EventID], "eventID %s repeated", got.EventID)
		seen[got.EventID] = true
		want := wantSummary(t, req, items, got.EventID, "us-east-1", "111122223333", "n1")
		require.True(t, strings.HasPrefix(rec, want[:len(want)-1]+`,"kmsdSeq":`), "record %d: %.300s", i, rec)
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

// FuzzBatchEncoder checks the summary encoder against the reference on
// batches of fuzzed bodies, request ids and error strings, repeated and
// not.
func FuzzBatchEncoder(f *testing.F) {
	for i, b := range append(append([]string{}, sdkBodies...), oddBodies...) {
		f.Add([]byte(b), []byte(sdkBodies[i%len(sdkBodies)]), identityCases[i%len(identityCases)], keyIDCases[i%len(keyIDCases)], uint8(i))
	}
	f.Fuzz(func(t *testing.T, b1, b2 []byte, arn, s string, pattern uint8) {
		require.Equal(t, identitySplitN(arn, s, s), identity(arn, s, s))
		require.Equal(t, isKeyIDDecode(s), isKeyID(s))
		base := testEvent(0)
		base.Info.Caller.ARN, base.Info.UserAgent = arn, s
		items := make([]api.AuditEvent, 8)
		for i := range items {
			ev := base
			ev.Info.RequestID = s + "#" + fmt.Sprint(i)
			ev.Request, ev.Response = b1, b2
			if pattern&(1<<i) != 0 {
				ev.Request, ev.Response = b2, b1
			}
			if i == 5 {
				ev.Response, ev.ErrorCode, ev.ErrorMessage = nil, s, s
			}
			items[i] = ev
		}
		req := base
		req.Info.RequestID, req.Operation = s, s
		checkBatchEncoder(t, req, items, "us-east-1", "111122223333", s)
	})
}
