package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/api"
	"github.com/kmsd/kmsd/service"
)

const testKeyID = "1234abcd-12ab-34cd-56ef-1234567890ab"

func testEvent(i int) api.AuditEvent {
	return api.AuditEvent{
		Operation: "Encrypt",
		Info: service.RequestInfo{
			RequestID: fmt.Sprintf("req-%d", i),
			Caller:    service.Caller{AccessKeyID: "AKIDEXAMPLE", ARN: "arn:aws:iam::111122223333:user/alice", AccountID: "111122223333"},
			SourceIP:  "127.0.0.1",
			UserAgent: "test",
		},
		Time:     time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC),
		Request:  []byte(`{"KeyId":"` + testKeyID + `","Plaintext":"c2VjcmV0","EncryptionContext":{"team":"a"}}`),
		Response: []byte(`{"KeyId":"arn:aws:kms:us-east-1:111122223333:key/` + testKeyID + `","CiphertextBlob":"Y2lwaGVy","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}`),
	}
}

func openTest(t *testing.T, dir string, mutate func(*Options)) *Writer {
	t.Helper()
	opts := Options{Dir: dir, NodeID: "n1", Region: "us-east-1", AccountID: "111122223333", DigestEvery: 4, NoSync: true}
	if mutate != nil {
		mutate(&opts)
	}
	w, err := Open(opts)
	require.NoError(t, err)
	return w
}

// writeLog writes n events to a fresh log, closes it and returns the file's
// lines and the node key.
func writeLog(t *testing.T, n int) ([]string, ed25519.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	w := openTest(t, dir, nil)
	for i := range n {
		require.NoError(t, w.Record(context.Background(), testEvent(i)))
	}
	require.NoError(t, w.Close())
	b, err := os.ReadFile(w.Path())
	require.NoError(t, err)
	return strings.SplitAfter(string(b), "\n")[:strings.Count(string(b), "\n")], w.PublicKey()
}

func verifyLines(t *testing.T, lines []string, opts VerifyOptions) *Report {
	t.Helper()
	rep, err := Verify(strings.NewReader(strings.Join(lines, "")), opts)
	require.NoError(t, err)
	return rep
}

func kinds(ps []Problem) []string {
	var k []string
	for _, p := range ps {
		k = append(k, p.Kind)
	}
	return k
}

func TestCleanLogVerifies(t *testing.T) {
	lines, pub := writeLog(t, 10)
	// header + 10 events + digests after events 4 and 8 + final digest.
	require.Len(t, lines, 14)
	rep := verifyLines(t, lines, VerifyOptions{PublicKey: pub})
	require.Empty(t, rep.Problems)
	require.Empty(t, rep.Warnings)
	require.True(t, rep.Final)
	require.True(t, rep.Trusted)
	require.Equal(t, 10, rep.Events)
	require.Equal(t, 3, rep.Digests)
	require.Equal(t, int64(13), rep.LastSeq)

	// The record shape.
	var ev map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &ev))
	require.Equal(t, "1.08", ev["eventVersion"])
	require.Equal(t, "2025-03-04T05:06:07Z", ev["eventTime"])
	require.Equal(t, "kms.amazonaws.com", ev["eventSource"])
	require.Equal(t, "Encrypt", ev["eventName"])
	require.Equal(t, "us-east-1", ev["awsRegion"])
	require.Equal(t, "127.0.0.1", ev["sourceIPAddress"])
	require.Equal(t, "test", ev["userAgent"])
	require.Equal(t, "req-0", ev["requestID"])
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, ev["eventID"])
	require.Equal(t, true, ev["readOnly"])
	require.Equal(t, "AwsApiCall", ev["eventType"])
	require.Equal(t, true, ev["managementEvent"])
	require.Equal(t, "111122223333", ev["recipientAccountId"])
	require.Equal(t, map[string]any{"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice",
		"accountId": "111122223333", "accessKeyId": "AKIDEXAMPLE", "userName": "alice"}, ev["userIdentity"])
	require.Equal(t, map[string]any{"keyId": testKeyID, "encryptionContext": map[string]any{"team": "a"}}, ev["requestParameters"])
	require.Equal(t, map[string]any{"keyId": "arn:aws:kms:us-east-1:111122223333:key/" + testKeyID, "encryptionAlgorithm": "SYMMETRIC_DEFAULT"}, ev["responseElements"])
	require.Equal(t, []any{map[string]any{"ARN": "arn:aws:kms:us-east-1:111122223333:key/" + testKeyID, "type": "AWS::KMS::Key", "accountId": "111122223333"}}, ev["resources"])
	require.NotContains(t, ev, "errorCode")
	require.EqualValues(t, 1, ev["kmsdSeq"])
	for _, l := range lines {
		require.NotContains(t, l, "c2VjcmV0") // the plaintext
		require.NotContains(t, l, "Y2lwaGVy") // the ciphertext
	}
}

func TestTamperDetected(t *testing.T) {
	lines, pub := writeLog(t, 10)
	// Line numbers (1-based): 1 header, 2-5 events 0-3, 6 digest, 7-10
	// events 4-7, 11 digest, 12-13 events 8-9, 14 final digest.
	cp := func() []string { return append([]string(nil), lines...) }
	tests := []struct {
		name   string
		tamper func() []string
		kind   string
		line   int // of the problem of that kind
	}{
		{"modify a field", func() []string {
			l := cp()
			l[2] = strings.Replace(l[2], `"sourceIPAddress":"127.0.0.1"`, `"sourceIPAddress":"10.0.0.9"`, 1)
			return l
		}, KindModified, 3},
		{"modify the last event", func() []string {
			l := cp()
			l[12] = strings.Replace(l[12], `"eventName":"Encrypt"`, `"eventName":"Decrypt"`, 1)
			return l
		}, KindModified, 13},
		{"modify into junk", func() []string {
			l := cp()
			l[3] = "{not json\n"
			return l
		}, KindMalformed, 4},
		{"delete a line", func() []string {
			l := cp()
			return append(l[:4], l[5:]...)
		}, KindDeleted, 5},
		{"delete the header", func() []string { return cp()[1:] }, KindHeader, 1},
		{"insert a copy", func() []string {
			l := cp()
			return append(l[:5], append([]string{l[2]}, l[5:]...)...)
		}, KindInserted, 6},
		{"insert a forged record", func() []string {
			l := cp()
			forged := strings.Replace(l[3], `"req-2"`, `"req-x"`, 1)
			return append(l[:4], append([]string{forged}, l[4:]...)...)
		}, KindInserted, 5},
		{"swap two", func() []string {
			l := cp()
			l[7], l[8] = l[8], l[7]
			return l
		}, KindReordered, 9},
		{"truncate the end", func() []string { return cp()[:12] }, KindTruncated, 0},
		{"truncate after a digest", func() []string { return cp()[:11] }, KindTruncated, 0},
		{"cut mid-line", func() []string {
			l := cp()
			l[13] = l[13][:20]
			return l
		}, KindTruncated, 14},
		{"bad signature", func() []string {
			l := cp()
			l[5] = strings.Replace(l[5], `"reason":"periodic"`, `"reason":"rotate"`, 1)
			return l
		}, KindBadSignature, 6},
		{"forged final digest", func() []string {
			l := cp()
			var d map[string]any
			require.NoError(t, json.Unmarshal([]byte(l[13]), &d))
			d["signature"] = strings.Repeat("A", 86) + "=="
			b, _ := json.Marshal(d)
			l[13] = string(b) + "\n"
			return l
		}, KindBadSignature, 14},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := verifyLines(t, tt.tamper(), VerifyOptions{PublicKey: pub})
			require.False(t, rep.OK())
			var found bool
			for _, p := range rep.Problems {
				if p.Kind == tt.kind && p.Line == tt.line {
					found = true
				}
			}
			require.True(t, found, "want %s at line %d, got %v", tt.kind, tt.line, rep.Problems)
		})
	}

	t.Run("swap names only the moved record", func(t *testing.T) {
		l := cp()
		l[7], l[8] = l[8], l[7]
		rep := verifyLines(t, l, VerifyOptions{PublicKey: pub})
		require.Equal(t, []string{KindReordered}, kinds(rep.Problems), "%v", rep.Problems)
	})
	t.Run("modification names only the modified record", func(t *testing.T) {
		l := cp()
		l[2] = strings.Replace(l[2], `"userAgent":"test"`, `"userAgent":"evil"`, 1)
		rep := verifyLines(t, l, VerifyOptions{PublicKey: pub})
		require.Len(t, rep.Problems, 1, "%v", rep.Problems)
		require.Equal(t, int64(2), rep.Problems[0].Seq)
	})
	t.Run("another key", func(t *testing.T) {
		other, _, _ := ed25519.GenerateKey(rand.Reader)
		rep := verifyLines(t, lines, VerifyOptions{PublicKey: other})
		require.Contains(t, kinds(rep.Problems), KindKey)
	})
	t.Run("whole file re-signed with another key", func(t *testing.T) {
		// Without a trusted key a consistent forgery passes; with one it
		// does not.
		forged, _ := writeLog(t, 3)
		require.True(t, verifyLines(t, forged, VerifyOptions{}).OK())
		require.Contains(t, kinds(verifyLines(t, forged, VerifyOptions{PublicKey: pub}).Problems), KindKey)
	})
	t.Run("open file", func(t *testing.T) {
		rep := verifyLines(t, lines[:12], VerifyOptions{PublicKey: pub, AllowOpen: true})
		require.True(t, rep.OK(), "%v", rep.Problems)
		require.Contains(t, kinds(rep.Warnings), KindUnsigned)
		require.Equal(t, int64(9), rep.Signed)
	})
	t.Run("empty", func(t *testing.T) {
		rep := verifyLines(t, nil, VerifyOptions{})
		require.Equal(t, []string{KindTruncated}, kinds(rep.Problems))
	})
}

func TestRotationAndRestart(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, func(o *Options) { o.MaxBytes = 4 << 10 })
	for i := range 40 {
		require.NoError(t, w.Record(context.Background(), testEvent(i)))
	}
	require.NoError(t, w.Close())
	require.ErrorIs(t, w.Record(context.Background(), testEvent(0)), ErrClosed)
	// A restart continues the chain in a new file.
	w = openTest(t, dir, nil)
	require.NoError(t, w.Record(context.Background(), testEvent(99)))
	require.NoError(t, w.Close())

	files, err := Files(dir)
	require.NoError(t, err)
	require.Greater(t, len(files), 3)
	pub, err := ReadPublicKey(filepath.Join(dir, PubFile))
	require.NoError(t, err)
	require.True(t, pub.Equal(w.PublicKey()))
	reps, err := VerifyFiles(files, VerifyOptions{PublicKey: pub})
	require.NoError(t, err)
	events := 0
	for _, r := range reps {
		require.True(t, r.OK(), "%s: %v", r.File, r.Problems)
		require.True(t, r.Final)
		events += r.Events
	}
	require.Equal(t, 41, events)

	// Cutting the final digest off a middle file breaks the link to the
	// next file and leaves the file without a final digest.
	b, err := os.ReadFile(files[1])
	require.NoError(t, err)
	b = b[:bytes.LastIndexByte(b[:len(b)-1], '\n')+1]
	require.NoError(t, os.WriteFile(files[1], b, 0o600))
	reps, err = VerifyFiles(files, VerifyOptions{PublicKey: pub})
	require.NoError(t, err)
	require.Contains(t, kinds(reps[1].Problems), KindTruncated)
	require.Contains(t, kinds(reps[2].Problems), KindLink)

	// Deleting a whole middle file: the next one no longer links.
	reps, err = VerifyFiles([]string{files[0], files[2]}, VerifyOptions{PublicKey: pub})
	require.NoError(t, err)
	require.True(t, reps[0].OK())
	require.Equal(t, []string{KindDeleted}, kinds(reps[1].Problems))
}

func TestCrashThenRestart(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, nil)
	for i := range 6 {
		require.NoError(t, w.Record(context.Background(), testEvent(i)))
	}
	w.f.Close() // crash: no final digest
	w2 := openTest(t, dir, nil)
	require.NoError(t, w2.Record(context.Background(), testEvent(7)))
	require.NoError(t, w2.Close())
	files, err := Files(dir)
	require.NoError(t, err)
	require.Len(t, files, 2)

	// Alone, the crashed file looks truncated.
	reps, err := VerifyFiles(files[:1], VerifyOptions{PublicKey: w.PublicKey()})
	require.NoError(t, err)
	require.Contains(t, kinds(reps[0].Problems), KindTruncated)
	// With its successor, which records the crash and links to its end, it
	// is a warning.
	reps, err = VerifyFiles(files, VerifyOptions{PublicKey: w.PublicKey()})
	require.NoError(t, err)
	for _, r := range reps {
		require.True(t, r.OK(), "%s: %v", r.File, r.Problems)
	}
	require.Contains(t, kinds(reps[0].Warnings), KindUnsigned)
	require.Contains(t, kinds(reps[0].Warnings), KindTruncated)
}

func TestWriteFailureIsSticky(t *testing.T) {
	w := openTest(t, t.TempDir(), nil)
	require.NoError(t, w.Record(context.Background(), testEvent(0)))
	w.f.Close() // every later write fails
	require.Error(t, w.Record(context.Background(), testEvent(1)))
	require.Error(t, w.Record(context.Background(), testEvent(2)))
}

func TestConcurrentRecordsWithFsync(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, func(o *Options) { o.NoSync = false; o.DigestEvery = 7; o.MaxBytes = 16 << 10 })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				if err := w.Record(context.Background(), testEvent(g*100+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, w.Close())
	files, err := Files(dir)
	require.NoError(t, err)
	reps, err := VerifyFiles(files, VerifyOptions{PublicKey: w.PublicKey()})
	require.NoError(t, err)
	events := 0
	for _, r := range reps {
		require.True(t, r.OK(), "%s: %v", r.File, r.Problems)
		events += r.Events
	}
	require.Equal(t, 200, events)
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, nil)
	require.NoError(t, w.Close())
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	fi, err = os.Stat(w.Path())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	// The key survives a restart.
	w2 := openTest(t, dir, nil)
	require.NoError(t, w2.Close())
	require.True(t, w.PublicKey().Equal(w2.PublicKey()))
}

func TestFilter(t *testing.T) {
	secret := `"c2VjcmV0"`
	tests := []struct{ in, want string }{
		{`{"KeyId":"k","Plaintext":` + secret + `,"GrantTokens":["tok"],"EncryptionContext":{"a":"b"}}`,
			`{"encryptionContext":{"a":"b"},"keyId":"k"}`},
		{`{"CiphertextBlob":` + secret + `,"KeyId":"k","GrantTokens":["t"]}`, `{"keyId":"k"}`},
		{`{"KeyId":"k","PublicKey":"cHVi","PrivateKeyPlaintext":` + secret + `,"PrivateKeyCiphertextBlob":` + secret + `,"KeyPairSpec":"RSA_2048"}`,
			`{"keyId":"k","keyPairSpec":"RSA_2048","publicKey":"cHVi"}`},
		{`{"Mac":` + secret + `,"Message":` + secret + `,"MacAlgorithm":"HMAC_SHA_256","MacValid":true}`,
			`{"macAlgorithm":"HMAC_SHA_256","macValid":true}`},
		{`{"Signature":` + secret + `,"SigningAlgorithm":"ECDSA_SHA_256"}`, `{"signingAlgorithm":"ECDSA_SHA_256"}`},
		{`{"KeyMetadata":{"Arn":"a","KeyState":"Enabled","SomeNewField":` + secret + `}}`, `{"keyMetadata":{"arn":"a","keyState":"Enabled"}}`},
		{`{"Tags":[{"TagKey":"k","TagValue":"v"}],"Policy":"{\"Version\":\"2012-10-17\"}"}`,
			`{"policy":"{\"Version\":\"2012-10-17\"}","tags":[{"tagKey":"k","tagValue":"v"}]}`},
		{`{"GrantToken":"tok","GrantId":"g"}`, `{"grantId":"g"}`},
		{`{"KeyId":{"Plaintext":` + secret + `}}`, `null`}, // wrong shape: dropped
		{`{"Plaintext":` + secret + `}`, `null`},
		{``, `null`},
		{`not json`, `null`},
		{`[1,2]`, `null`},
	}
	for _, tt := range tests {
		got := Filter([]byte(tt.in))
		if got == nil {
			got = []byte("null")
		}
		require.JSONEq(t, tt.want, string(got), tt.in)
	}
}

func TestBuildEvent(t *testing.T) {
	for arn, typ := range map[string]string{
		"arn:aws:iam::111122223333:root":                      "Root",
		"arn:aws:iam::111122223333:user/path/bob":             "IAMUser",
		"arn:aws:sts::111122223333:assumed-role/admin/sess-1": "AssumedRole",
		"": "Unknown",
	} {
		ev := testEvent(0)
		ev.Info.Caller.ARN = arn
		require.Equal(t, typ, BuildEvent(ev, "us-east-1", "111122223333", "n1").UserIdentity.Type, arn)
	}
	ev := testEvent(0)
	ev.Operation, ev.Response, ev.ErrorCode, ev.ErrorMessage = "ScheduleKeyDeletion", nil, "NotFoundException", "no such key"
	ev.Request = []byte(`{"KeyId":"alias/x"}`)
	e := BuildEvent(ev, "us-east-1", "111122223333", "n1")
	require.False(t, e.ReadOnly)
	require.Equal(t, "NotFoundException", e.ErrorCode)
	require.Equal(t, "no such key", e.ErrorMessage)
	require.Empty(t, e.Resources) // an alias does not resolve here
	require.Nil(t, e.ResponseElements)
	ev.Request = []byte(`{"SourceKeyId":"mrk-0123456789abcdef0123456789abcdef","DestinationKeyId":"arn:aws:kms:eu-west-1:444455556666:key/` + testKeyID + `"}`)
	e = BuildEvent(ev, "us-east-1", "111122223333", "n1")
	require.Equal(t, []Resource{
		{ARN: "arn:aws:kms:us-east-1:111122223333:key/mrk-0123456789abcdef0123456789abcdef", Type: "AWS::KMS::Key", AccountID: "111122223333"},
		{ARN: "arn:aws:kms:eu-west-1:444455556666:key/" + testKeyID, Type: "AWS::KMS::Key", AccountID: "444455556666"},
	}, e.Resources)
}

// BenchmarkRecord measures one record's cost with and without fsync
// (group commit shares fsyncs between concurrent callers): ns/op is wall
// time per record, cpu-µs/op the process's CPU (user+system, getrusage)
// per record, fsync's kernel time included.
func BenchmarkRecord(b *testing.B) {
	for _, sync := range []bool{false, true} {
		for _, par := range []bool{false, true} {
			b.Run(fmt.Sprintf("fsync=%t/parallel=%t", sync, par), func(b *testing.B) {
				w, err := Open(Options{Dir: b.TempDir(), NodeID: "n1", Region: "us-east-1", AccountID: "111122223333", NoSync: !sync})
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close()
				ev := testEvent(0)
				b.ReportAllocs()
				cpu0 := cpuTime()
				defer func() {
					b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
				}()
				if par {
					b.SetParallelism(16) // 32 callers on 2 cores, as load -c 32
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := w.Record(context.Background(), ev); err != nil {
								b.Error(err)
								return
							}
						}
					})
					return
				}
				for b.Loop() {
					if err := w.Record(context.Background(), ev); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
