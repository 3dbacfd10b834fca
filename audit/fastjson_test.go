package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The fast paths (fastjson.go) must give the bytes the reference paths
// give, for every input.

const arnKey = "arn:aws:kms:us-east-1:111122223333:key/" + testKeyID

// sdkBodies are requests and responses as SDKs send and kmsd answers them:
// the fast path must take them (not fall back).
var sdkBodies = []string{
	`{"KeyId":"` + testKeyID + `","KeySpec":"AES_256"}`,
	`{"CiphertextBlob":"AQIDBAUGBwg=","KeyId":"` + arnKey + `","KeyMaterialId":"abc","Plaintext":"c2VjcmV0c2VjcmV0"}`,
	`{"KeyId":"alias/app","Plaintext":"c2VjcmV0","EncryptionContext":{"team":"a","purpose":"test"}}`,
	`{"CiphertextBlob":"Y2lwaGVy","EncryptionAlgorithm":"SYMMETRIC_DEFAULT","KeyId":"` + arnKey + `"}`,
	`{"CiphertextBlob":"Y2lwaGVy","DestinationKeyId":"` + testKeyID + `","SourceEncryptionContext":{"a":"b"},"GrantTokens":["t1","t2"]}`,
	`{"KeyId":"k","NumberOfBytes":32,"DryRun":false,"EncryptionContext":{}}`,
	`{"MacAlgorithm":"HMAC_SHA_256","Mac":"bWFj","MacValid":true,"KeyId":"k"}`,
	`{"KeyId":"k","SigningAlgorithms":["RSASSA_PSS_SHA_256","ECDSA_SHA_256"],"Message":"bXNn"}`,
	`{}`,
	` { "KeyId" : "k" , "EncryptionContext" : { "a" : "b c" , "d" : "e" } , "Plaintext" : "eA==" } `, // botocore style spacing
	"{\n\t\"KeyId\": \"" + testKeyID + "\",\n\t\"GrantTokens\": [ \"x\" ]\n}",
	`{"Plaintext":"c2VjcmV0"}`,
	`{"KeyId":null,"Description":null}`,
	`{"Limit":100,"Marker":"m","Truncated":true,"NextMarker":"n"}`,
	`{"KeyId":"k","NumberOfBytes":-0.5e+10}`,
	`{"TargetKeyId":"` + testKeyID + `","AliasName":"alias/x"}`,
	`{"SourceKeyId":"mrk-0123456789abcdef0123456789abcdef","KeyArn":"arn:aws:kms:eu-west-1:444455556666:key/` + testKeyID + `"}`,
	// Responses with members the filter recurses into.
	`{"KeyMetadata":{"AWSAccountId":"111122223333","Arn":"` + arnKey + `","CreationDate":1.765e+09,"CurrentKeyMaterialId":"ab12",` +
		`"CustomerMasterKeySpec":"SYMMETRIC_DEFAULT","Description":"","Enabled":true,"EncryptionAlgorithms":["SYMMETRIC_DEFAULT"],` +
		`"KeyId":"` + testKeyID + `","KeyManager":"CUSTOMER","KeySpec":"SYMMETRIC_DEFAULT","KeyState":"Enabled","KeyUsage":"ENCRYPT_DECRYPT",` +
		`"MultiRegion":false,"Origin":"AWS_KMS"}}`,
	`{"KeyMetadata":{"Arn":"` + arnKey + `","MultiRegion":true,"MultiRegionConfiguration":{"MultiRegionKeyType":"PRIMARY",` +
		`"PrimaryKey":{"Arn":"` + arnKey + `","Region":"us-east-1"},"ReplicaKeys":[{"Arn":"a1","Region":"eu-west-1"},{"Arn":"a2"}]}}}`,
	`{"Grants":[{"Constraints":{"EncryptionContextSubset":{"a":"b"}},"CreationDate":1.7e9,"GrantId":"g1","GranteePrincipal":"arn:aws:iam::111122223333:user/u",` +
		`"IssuingAccount":"arn:aws:iam::111122223333:root","KeyId":"` + arnKey + `","Name":"","Operations":["Encrypt","Decrypt"]},{"GrantId":"g2","Operations":[]}],"Truncated":false}`,
	`{"Keys":[{"KeyArn":"` + arnKey + `","KeyId":"` + testKeyID + `"},{"KeyArn":"a","KeyId":"b"}],"Truncated":true,"NextMarker":"m"}`,
	`{"Tags":[{"TagKey":"team","TagValue":"payments"},{"TagKey":"env","TagValue":""}],"Truncated":false}`,
	`{"Aliases":[],"Truncated":false}`,
	`{"KeyMetadata":{}}`,
}

// oddBodies take the reference path, or exercise its corners.
var oddBodies = []string{
	``, `   `, `null`, `[]`, `[1,2]`, `"str"`, `1`, `true`, `not json`, `{`, `{"KeyId"`, `{"KeyId":}`, `{"KeyId":"k",}`,
	`{"KeyId":"k"} x`, `{"KeyId":"k"}{}`, `{,}`, `{"a":1,,"b":2}`,
	`{"KeyId":"a","KeyId":"b"}`,                     // duplicate: the last wins
	`{"KeyId":{"x":1},"KeyId":"b"}`,                 // duplicate, first dropped
	`{"KeyId":"b","KeyId":{"x":1}}`,                 // duplicate, last dropped
	`{"EncryptionContext":{"a":"<b>&"}}`,            // HTML escaping
	`{"KeyId":"k\u003cx"}`,                          // escapes are kept as written
	`{"KeyId":"caf\u00e9"}`,                         // escaped non-ASCII
	`{"KeyId":"café"}`,                              // raw non-ASCII
	"{\"KeyId\":\"a\u2028b\"}",                      // escaped by encoding/json
	"{\"KeyId\":\"a\xffb\"}",                        // invalid UTF-8
	`{"keyid":"` + testKeyID + `"}`,                 // case-folded member name
	`{"KEYID":"` + testKeyID + `","KeyId":"other"}`, // both spellings
	`{"Key\u0049d":"` + testKeyID + `"}`,            // escaped member name
	`{"KeyId":42}`,                                  // wrong type: resources skip the body
	`{"KeyId":["a","b"]}`,                           // scalar list
	`{"KeyId":[{"a":1}]}`,                           // list of objects: dropped
	`{"KeyId":[["a"]]}`,                             // list of lists: dropped
	`{"KeyId":[1, [2]]}`,                            // mixed
	`{"KeyId":{}}`,                                  // object: dropped
	`{"KeyMetadata":{"Arn":"` + arnKey + `","KeyState":"Enabled","Secret":"x"}}`,
	`{"KeyMetadata":{"arn":"` + arnKey + `"}}`, // case-folded nested name
	`{"KeyMetadata":null}`, // recurse into null
	`{"KeyMetadata":"s"}`,  // wrong type
	`{"Keys":[{"KeyId":"a","KeyArn":"b"},{"KeyId":"c"},"s",null,[1]]}`,
	`{"Tags":[{"TagKey":"k","TagValue":"v"}],"Policy":"{\"Version\":\"2012-10-17\"}"}`,
	`{"EncryptionContext":{"a":"b","a":"c"}}`, // duplicate inside a verbatim value: kept as is
	`{"EncryptionContext":[1,{"x":[true,false,null]}]}`,
	`{"KeyId":"k","NumberOfBytes":01}`,   // bad number
	`{"KeyId":"k","NumberOfBytes":1.}`,   // bad number
	`{"KeyId":"k","NumberOfBytes":-}`,    // bad number
	`{"KeyId":"k","NumberOfBytes":1e}`,   // bad number
	`{"KeyId":"k","NumberOfBytes":1E+2}`, // good number
	`{"KeyId":"k","DryRun":tru}`,         // bad literal
	`{"KeyId":"a\x01b"}`,                 // control character
	`{"KeyId":"a\qb"}`,                   // bad escape
	`{"KeyId":"a\u12"}`,                  // short \u escape
	"{\"KeyId\":\"k\"}\n",                // trailing newline
	"\v{\"KeyId\":\"k\"}",                // not JSON whitespace
	`{"EncryptionContext":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `}`, // deep
	`{"Plaintext":"c2VjcmV0","GrantTokens":["t"],"Recipient":{"AttestationDocument":"x"}}`,
	// Recursion corners.
	`{"KeyMetadata":{"Arn":"a","Arn":"b"}}`,                   // duplicate inside a recursed object
	`{"KeyMetadata":{"Arn":"a"},"KeyMetadata":{"KeyId":"b"}}`, // duplicate recursed member
	`{"KeyMetadata":{"Arn":"a"},"KeyMetadata":null}`,          // duplicate, last dropped
	`{"KeyMetadata":{"Description":"<b>&"}}`,                  // HTML escaping inside
	`{"KeyMetadata":{"Description":"café","KeyId":"k"}}`,      // non-ASCII inside
	`{"Tags":[{"TagKey":"k","TagValue":"<v>"}]}`,              // HTML inside a list
	`{"Tags":["a<b",1]}`,                                      // HTML scalar in a list
	`{"Tags":[ {"TagKey" : "k"} , null , true , 1.5e3 , "x" , [ ] , [[{"TagKey":"n"}]] ]}`,
	`{"Tags":[{}],"Keys":[[]],"Aliases":[{"AliasName":"alias/a","TargetKeyId":"t","Other":{"x":1}}]}`,
	`{"Grants":[{"Constraints":{"EncryptionContextEquals":{"a":"<"}}}]}`, // verbatim value with HTML inside a recursed object
	`{"Grants":[{"Constraints":{"EncryptionContextEquals":{"b":"1","a":"2"}}}]}`,
	`{"KeyMetadata":{"KeyId":"k","Secret":{"Plaintext":"c2VjcmV0"},"Enabled":true}}`,
	`{"KeyMetadata":{"keyId":"lower","KeyId":"upper"}}`,
	`{"Tags":` + strings.Repeat(`[`, 12) + strings.Repeat(`]`, 12) + `}`, // deeper than the fast recursion
	`{"KeyMetadata":` + strings.Repeat(`{"KeyMetadata":`, 10) + `{}` + strings.Repeat(`}`, 10) + `}`,
	`{"Tags":[1,2,]}`, `{"Tags":[,1]}`, `{"Tags":[{"TagKey":"k"}`, // malformed
}

// checkFast compares the fast paths with the references on body.
func checkFast(t *testing.T, body []byte) {
	t.Helper()
	require.Equal(t, string(filterSlow(body)), string(Filter(body)), "Filter(%q)", body)
	if out := Filter(body); out != nil {
		require.True(t, json.Valid(out), "Filter(%q) = %q is not JSON", body, out)
	}
	var buf [16]member
	ms, ok := parseTop(body, buf[:0])
	fast := resourceSet{region: "us-east-1", account: "111122223333"}
	fast.addBody(body, ms, ok)
	slow := resourceSet{region: "us-east-1", account: "111122223333"}
	slow.addSlow(body)
	require.Equal(t, slow.out, fast.out, "resources of %q", body)
}

func TestFastPathsMatchReference(t *testing.T) {
	for _, b := range append(append([]string{}, sdkBodies...), oddBodies...) {
		checkFast(t, []byte(b))
	}
}

// TestFastPathTaken checks that what SDKs send does not fall back: the
// fast path is what runs in production.
func TestFastPathTaken(t *testing.T) {
	for _, b := range sdkBodies {
		var buf [16]member
		ms, ok := parseTop([]byte(b), buf[:0])
		require.True(t, ok, "parseTop(%s)", b)
		_, ok = filterMembers(ms)
		require.True(t, ok, "filterMembers(%s)", b)
		_, _, ok = resourceIDs(ms)
		require.True(t, ok, "resourceIDs(%s)", b)
	}
}

func TestFilterFastDropsSecrets(t *testing.T) {
	got := Filter([]byte(`{"KeyId":"k","Plaintext":"c2VjcmV0","CiphertextBlob":"Y2lwaGVy","GrantTokens":["tok"],"EncryptionContext":{"a":"b"}}`))
	require.Equal(t, `{"encryptionContext":{"a":"b"},"keyId":"k"}`, string(got))
}

// events for appendEvent: every field set and unset, strings that
// encoding/json escapes.
func appendEventCases() []Event {
	odd := []string{"", "plain", `q"uote`, `back\slash`, "<html>&", "tab\tnew\nline\r", "\x00\x1f\x7f", "café", "a\u2028b\u2029",
		"bad\xffutf8", "\U0001F600", "/slash/"}
	var out []Event
	for i, s := range odd {
		e := buildEvent(testEvent(i), "us-east-1", "111122223333", "n1", "0f0e0d0c-0b0a-4908-8706-050403020100")
		e.UserIdentity.UserName = s
		e.UserAgent = s
		e.ErrorMessage = s
		e.EventName = s
		if i%2 == 0 {
			e.Resources = nil
			e.RequestParameters = nil
			e.NodeID = ""
			e.UserIdentity = UserIdentity{Type: s}
		}
		if i%3 == 0 {
			e.ResponseElements = Filter([]byte(`{"KeyMetadata":{"Arn":"<a>","KeyState":"` + s + `"}}`))
			e.Resources = append(e.Resources, Resource{ARN: s, Type: "AWS::KMS::Key", AccountID: s})
		}
		out = append(out, e)
	}
	return out
}

func TestAppendEventMatchesMarshal(t *testing.T) {
	for _, e := range appendEventCases() {
		want, err := json.Marshal(e)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendEvent(nil, &e)))
	}
}

func FuzzFastPaths(f *testing.F) {
	for _, b := range append(append([]string{}, sdkBodies...), oddBodies...) {
		f.Add([]byte(b), "ua")
	}
	f.Fuzz(func(t *testing.T, body []byte, s string) {
		checkFast(t, body)
		ev := testEvent(0)
		ev.Request, ev.Response, ev.Info.UserAgent, ev.ErrorMessage = body, body, s, s
		e := buildEvent(ev, "us-east-1", "111122223333", s, "id")
		want, err := json.Marshal(e)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendEvent(nil, &e)))
	})
}

// TestRecordOutputUnchanged checks a record written by the Writer against
// json.Marshal of its Event plus the chain fields.
func TestRecordOutputUnchanged(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, nil)
	ev := testEvent(7)
	require.NoError(t, w.Record(context.Background(), ev))
	require.NoError(t, w.Close())
	lines, err := readLines(w.Path())
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &got))
	want := BuildEvent(ev, "us-east-1", "111122223333", "n1")
	b, err := json.Marshal(want)
	require.NoError(t, err)
	var wantMap map[string]any
	require.NoError(t, json.Unmarshal(b, &wantMap))
	wantMap["eventID"] = got["eventID"]
	wantMap["kmsdSeq"] = float64(1)
	wantMap["kmsdPrevHash"] = got["kmsdPrevHash"]
	require.Equal(t, wantMap, got)
	// And the bytes: the event's JSON then the chain fields.
	e := buildEvent(ev, "us-east-1", "111122223333", "n1", got["eventID"].(string))
	b, err = json.Marshal(e)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(lines[1], string(b[:len(b)-1])+`,"kmsdSeq":1,"kmsdPrevHash":"`), lines[1])
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"), nil
}

// TestGroupCommit: records that arrive while a batch is being written are
// written together in the next batch, and no Record returns before the
// batch holding its record is written and fsynced.
func TestGroupCommit(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("nosync=%t", noSync), func(t *testing.T) {
			w := openTest(t, t.TempDir(), func(o *Options) { o.NoSync = noSync; o.DigestEvery = 1000 })
			release := make(chan struct{})
			entered := make(chan struct{}, 1)
			var once sync.Once
			testHookBeforeWrite = func() {
				once.Do(func() { // the first batch only
					entered <- struct{}{}
					<-release
				})
			}
			t.Cleanup(func() { testHookBeforeWrite = nil })

			const waiters = 20
			results := make(chan error, waiters+1)
			go func() { results <- w.Record(context.Background(), testEvent(0)) }()
			<-entered // the first record's batch is being written
			for i := range waiters {
				go func() { results <- w.Record(context.Background(), testEvent(i+1)) }()
			}
			// Wait until every waiter has chained its record (1 header + 1 + waiters).
			deadline := time.Now().Add(20 * time.Second)
			for {
				w.mu.Lock()
				gen := w.gen
				w.mu.Unlock()
				if gen == 2+waiters {
					break
				}
				require.True(t, time.Now().Before(deadline), "records not chained: gen %d", gen)
				time.Sleep(time.Millisecond) // polling a condition, with a deadline
			}
			select {
			case err := <-results:
				t.Fatalf("a Record returned (%v) before its batch was written", err)
			default:
			}
			w.mu.Lock()
			batchesBefore := w.batches
			w.mu.Unlock()
			close(release)
			for range waiters + 1 {
				require.NoError(t, <-results)
			}
			w.mu.Lock()
			batches := w.batches - batchesBefore
			w.mu.Unlock()
			// The held batch, then every waiter's record in one more.
			require.Equal(t, uint64(2), batches)
			require.NoError(t, w.Close())
			rep := verifyFile(t, w.Path(), w.PublicKey())
			require.True(t, rep.OK(), "%v", rep.Problems)
			require.Equal(t, waiters+1, rep.Events)
		})
	}
}

func verifyFile(t *testing.T, path string, pub []byte) *Report {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	rep, err := Verify(bytes.NewReader(b), VerifyOptions{PublicKey: pub})
	require.NoError(t, err)
	return rep
}

// TestGroupCommitFailure: when a batch cannot be written, every record in
// it fails (no answer without a record) and so does every later one.
func TestGroupCommitFailure(t *testing.T) {
	w := openTest(t, t.TempDir(), nil)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var once sync.Once
	testHookBeforeWrite = func() {
		once.Do(func() {
			entered <- struct{}{}
			<-release
		})
	}
	t.Cleanup(func() { testHookBeforeWrite = nil })
	results := make(chan error, 6)
	go func() { results <- w.Record(context.Background(), testEvent(0)) }()
	<-entered
	// The file goes away under the held batch.
	w.mu.Lock()
	f := w.f
	w.mu.Unlock()
	require.NoError(t, f.Close())
	for i := range 5 {
		go func() { results <- w.Record(context.Background(), testEvent(i+1)) }()
	}
	close(release)
	for range 6 {
		require.Error(t, <-results)
	}
	require.Error(t, w.Record(context.Background(), testEvent(9)))
}

// TestRecordsRaceClose: records racing rotation and Close either fail or
// are in the log, verifiably (no success without a record).
func TestRecordsRaceClose(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("nosync=%t", noSync), func(t *testing.T) {
			dir := t.TempDir()
			w := openTest(t, dir, func(o *Options) { o.NoSync = noSync; o.DigestEvery = 5; o.MaxBytes = 8 << 10 })
			var ok sync.Map
			var wg sync.WaitGroup
			started := make(chan struct{}, 32)
			for g := range 32 {
				wg.Go(func() {
					started <- struct{}{}
					for i := 0; ; i++ {
						id := g*10000 + i
						err := w.Record(context.Background(), testEvent(id))
						if err != nil {
							require.ErrorIs(t, err, ErrClosed)
							return
						}
						ok.Store(fmt.Sprintf("req-%d", id), true)
					}
				})
			}
			for range 32 {
				<-started
			}
			// Let records flow until a few files have been rotated.
			deadline := time.Now().Add(20 * time.Second)
			for {
				files, err := Files(dir)
				require.NoError(t, err)
				if len(files) >= 3 {
					break
				}
				require.True(t, time.Now().Before(deadline), "no rotation")
				time.Sleep(time.Millisecond) // polling a condition, with a deadline
			}
			require.NoError(t, w.Close())
			wg.Wait()

			files, err := Files(dir)
			require.NoError(t, err)
			reps, err := VerifyFiles(files, VerifyOptions{PublicKey: w.PublicKey()})
			require.NoError(t, err)
			logged := map[string]bool{}
			for i, r := range reps {
				require.True(t, r.OK(), "%s: %v", r.File, r.Problems)
				require.True(t, r.Final, "%s", r.File)
				lines, err := readLines(files[i])
				require.NoError(t, err)
				for _, l := range lines {
					var rec struct {
						RequestID string `json:"requestID"`
					}
					require.NoError(t, json.Unmarshal([]byte(l), &rec))
					if rec.RequestID != "" {
						logged[rec.RequestID] = true
					}
				}
			}
			n := 0
			ok.Range(func(k, _ any) bool {
				require.True(t, logged[k.(string)], "%s succeeded but is not in the log", k)
				n++
				return true
			})
			require.Positive(t, n)
		})
	}
}
