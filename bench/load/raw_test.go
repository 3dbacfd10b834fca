package load

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/internal/testserver"
	"github.com/kmsd/kmsd/kmsdclient"
)

// TestScanBatchResults checks the scan against encoding/json plus
// countItems (what SDK mode does) on answers whose error messages and
// unknown members hold everything that could confuse a scan: quotes,
// backslashes, braces, brackets, "Error" keys at other depths, null.
func TestScanBatchResults(t *testing.T) {
	r := mrand.New(mrand.NewPCG(5, 6))
	nasty := []string{`a "quoted" }]{[ msg`, `back\slash\`, `"Error":{"__type":"X"}`, "ünï\u2028code\x01", `\"`, ``}
	codes := []string{"NotFoundException", "DisabledException", "KMSInvalidStateException", `Odd"Code\`, ""}
	for round := range 300 {
		n := r.IntN(40)
		type item struct {
			CiphertextBlob []byte                `json:"CiphertextBlob,omitempty"`
			KeyId          string                `json:"KeyId,omitempty"`
			Extra          any                   `json:"Extra,omitempty"`
			Error          *kmsdclient.ItemError `json:"Error"`
		}
		var resp struct {
			Meta    any    `json:"Meta,omitempty"`
			Results []item `json:"Results"`
			Tail    any    `json:"Tail,omitempty"`
		}
		resp.Results = []item{}
		if r.IntN(3) == 0 {
			resp.Meta = map[string]any{"Results": []any{map[string]any{"Error": map[string]string{"__type": "Decoy"}}}}
		}
		if r.IntN(3) == 0 {
			resp.Tail = []any{1.5e3, true, nil, "x"}
		}
		for range n {
			it := item{KeyId: "arn:aws:kms:us-east-1:111122223333:key/" + fmt.Sprint(r.IntN(1000))}
			switch r.IntN(4) {
			case 0:
				it.Error = &kmsdclient.ItemError{Code: codes[r.IntN(len(codes))], Message: nasty[r.IntN(len(nasty))]}
				it.KeyId = ""
			case 1:
				it.Extra = map[string]any{"Error": map[string]string{"__type": "Decoy", "message": nasty[r.IntN(len(nasty))]}, "n": []int{1, 2}}
			}
			it.CiphertextBlob = make([]byte, r.IntN(50))
			resp.Results = append(resp.Results, it)
		}
		var body []byte
		var err error
		if round%2 == 0 {
			body, err = json.Marshal(resp)
		} else {
			body, err = json.MarshalIndent(resp, " ", "\t")
		}
		if err != nil {
			t.Fatal(err)
		}
		var dec struct {
			Results []struct {
				Error *kmsdclient.ItemError `json:"Error"`
			} `json:"Results"`
		}
		if err := json.Unmarshal(body, &dec); err != nil {
			t.Fatal(err)
		}
		want := countItems(len(dec.Results), func(i int) *kmsdclient.ItemError { return dec.Results[i].Error })
		got, results, err := scanBatchResults(body)
		if err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		if results != len(dec.Results) || got.items != want.items || got.itemErrors != want.itemErrors ||
			!(len(got.itemErrorTypes) == 0 && len(want.itemErrorTypes) == 0 || reflect.DeepEqual(got.itemErrorTypes, want.itemErrorTypes)) {
			t.Fatalf("scan %d results %+v, decode %d results %+v\n%s", results, got, len(dec.Results), want, body)
		}
	}
	for _, bad := range []string{``, `{`, `{"Results":[{}]`, `{"Results":[{"a":"x}]}`, `{"Results":[}]}`, `{}}`, `{}{}`, `"x"`, `1`, `]`} {
		if _, _, err := scanBatchResults([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestRawBodies checks that raw mode's batch bodies are byte-identical to
// what kmsdclient (SDK mode) sends, and that the single-op bodies carry
// the run's key, plaintext and ciphertexts.
func TestRawBodies(t *testing.T) {
	mix, err := ParseMix(strings.Join(Ops, ","))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Mix: mix, BatchSize: 7, Region: "us-east-1"}
	w := &workload{keyID: `alias/odd"<key>`, plaintext: []byte("plain\x00text")}
	for i := range 3 {
		w.ciphertexts = append(w.ciphertexts, []byte{byte(i), 0xff, 0xfe})
	}
	for i := range cfg.BatchSize {
		w.dataKeyItems = append(w.dataKeyItems, kmsdclient.DataKeyItem{KeyId: w.keyID, KeySpec: "AES_256"})
		w.encryptItems = append(w.encryptItems, kmsdclient.EncryptItem{KeyId: w.keyID, Plaintext: w.plaintext})
		w.decryptItems = append(w.decryptItems, kmsdclient.DecryptItem{CiphertextBlob: w.ciphertexts[i%len(w.ciphertexts)]})
	}
	rw := newRawWorkload(cfg, w)
	for _, c := range []struct {
		op string
		in any
	}{
		{"BatchGenerateDataKey", kmsdclient.BatchGenerateDataKeyInput{Items: w.dataKeyItems}},
		{"BatchGenerateDataKeyWithoutPlaintext", kmsdclient.BatchGenerateDataKeyInput{Items: w.dataKeyItems}},
		{"BatchEncrypt", kmsdclient.BatchEncryptInput{Items: w.encryptItems}},
		{"BatchDecrypt", kmsdclient.BatchDecryptInput{Items: w.decryptItems}},
	} {
		want, _ := json.Marshal(c.in)
		reqs := rw.reqs[c.op]
		if len(reqs) != 1 || !bytes.Equal(reqs[0].body, want) || reqs[0].target[0] != kmsdclient.TargetPrefix+c.op {
			t.Errorf("%s: %v", c.op, reqs)
		}
	}
	b64 := base64.StdEncoding.EncodeToString
	for op, want := range map[string][]map[string]string{
		"GenerateDataKey":                 {{"KeyId": w.keyID, "KeySpec": "AES_256"}},
		"GenerateDataKeyWithoutPlaintext": {{"KeyId": w.keyID, "KeySpec": "AES_256"}},
		"Encrypt":                         {{"KeyId": w.keyID, "Plaintext": b64(w.plaintext)}},
		"DescribeKey":                     {{"KeyId": w.keyID}},
		"CreateKey":                       {{"Description": "kmsd bench load (CreateKey op)"}},
		"Decrypt":                         {{"CiphertextBlob": b64(w.ciphertexts[0])}, {"CiphertextBlob": b64(w.ciphertexts[1])}, {"CiphertextBlob": b64(w.ciphertexts[2])}},
		"ReEncrypt": {{"CiphertextBlob": b64(w.ciphertexts[0]), "DestinationKeyId": w.keyID},
			{"CiphertextBlob": b64(w.ciphertexts[1]), "DestinationKeyId": w.keyID}, {"CiphertextBlob": b64(w.ciphertexts[2]), "DestinationKeyId": w.keyID}},
	} {
		reqs := rw.reqs[op]
		if len(reqs) != len(want) {
			t.Fatalf("%s: %d bodies", op, len(reqs))
		}
		for i, rq := range reqs {
			var got map[string]string
			if err := json.Unmarshal(rq.body, &got); err != nil || !reflect.DeepEqual(got, want[i]) || rq.target[0] != "TrentService."+op {
				t.Errorf("%s: %s (%v), target %v", op, rq.body, err, rq.target)
			}
		}
	}
}

func runRaw(t *testing.T, cfg Config) (*Result, string) {
	t.Helper()
	var progress bytes.Buffer
	cfg.Progress = &progress
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var rep bytes.Buffer
	WriteReport(&rep, res)
	t.Logf("progress:\n%s\nreport:\n%s", progress.String(), rep.String())
	return res, rep.String()
}

// TestRunRawOps drives every op in raw mode against a real node: no
// errors, one item per single-op request, BatchSize items per batch one.
func TestRunRawOps(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	srv := testserver.Start(t)
	mix, err := ParseMix("GenerateDataKey=4,GenerateDataKeyWithoutPlaintext=1,Encrypt=1,Decrypt=2,ReEncrypt=1,DescribeKey=1,CreateKey=1," +
		"BatchGenerateDataKey=1,BatchGenerateDataKeyWithoutPlaintext=1,BatchEncrypt=1,BatchDecrypt=1")
	if err != nil {
		t.Fatal(err)
	}
	res, rep := runRaw(t, Config{
		Endpoints: []string{srv.URL}, Region: testserver.Region, AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret",
		Mix: mix, Concurrency: 4, BatchSize: 25, PlaintextSize: 64, Client: ClientRaw,
		Warmup: 300 * time.Millisecond, Duration: 1500 * time.Millisecond,
	})
	if res.Client != ClientRaw || !strings.Contains(rep, "client raw") {
		t.Errorf("client mode %q not reported", res.Client)
	}
	if res.OK == 0 || res.Errors != 0 {
		t.Fatalf("ok %d errors %d %v", res.OK, res.Errors, res.ErrorExamples)
	}
	checkOpItems(t, res, mix, 25)
	if b, err := json.Marshal(res); err != nil || !bytes.Contains(b, []byte(`"client":"raw"`)) {
		t.Errorf("JSON without the client mode: %v", err)
	}
	if _, err := Run(context.Background(), Config{Endpoints: []string{srv.URL}, AccessKeyID: "a", SecretAccessKey: "b",
		Mix: mix, Duration: time.Second, Client: "curl"}); err == nil || !strings.Contains(err.Error(), "want sdk or raw") {
		t.Errorf("client curl: %v", err)
	}
}

// TestRawErrorsMatchSDK runs the same failing workload in both modes: a
// disabled key fails GenerateDataKey as a whole and every batch item
// alone, and both modes must count the same error types.
func TestRawErrorsMatchSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	srv := testserver.Start(t)
	ctx := context.Background()
	key, err := srv.Client.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(key.KeyMetadata.KeyId)
	if _, err := srv.Client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &id}); err != nil {
		t.Fatal(err)
	}
	mix, err := ParseMix("GenerateDataKey=1,BatchGenerateDataKey=1,DescribeKey=1")
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		errs, itemErrs map[string]uint64
	}
	modes := map[string]summary{}
	for _, mode := range []string{ClientSDK, ClientRaw} {
		res, _ := runRaw(t, Config{
			Endpoints: []string{srv.URL}, Region: testserver.Region, AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret",
			Mix: mix, Concurrency: 3, BatchSize: 10, KeyID: id, Client: mode, Duration: 800 * time.Millisecond,
		})
		gdk, batch, desc := res.Ops["GenerateDataKey"], res.Ops["BatchGenerateDataKey"], res.Ops["DescribeKey"]
		if gdk.OK != 0 || gdk.Errors == 0 || gdk.ErrorsByType["DisabledException"] != gdk.Errors {
			t.Errorf("%s: GenerateDataKey on a disabled key: %+v", mode, gdk)
		}
		if batch.OK == 0 || batch.Items != 0 || batch.ItemErrors != batch.OK*10 || batch.ItemErrorsByType["DisabledException"] != batch.ItemErrors {
			t.Errorf("%s: BatchGenerateDataKey on a disabled key: %+v", mode, batch)
		}
		if desc.OK == 0 || desc.Errors != 0 {
			t.Errorf("%s: DescribeKey: %+v", mode, desc)
		}
		modes[mode] = summary{errs: map[string]uint64{}, itemErrs: map[string]uint64{}}
		for k := range res.ErrorsByType {
			modes[mode].errs[k] = 1
		}
		for k := range batch.ItemErrorsByType {
			modes[mode].itemErrs[k] = 1
		}
	}
	if !reflect.DeepEqual(modes[ClientSDK], modes[ClientRaw]) {
		t.Errorf("error types differ: sdk %+v, raw %+v", modes[ClientSDK], modes[ClientRaw])
	}
}

// TestRawNotFound sends raw requests for a key that does not exist: each is
// a NotFoundException, counted by type as SDK mode counts it.
func TestRawNotFound(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	srv := testserver.Start(t)
	cfg := Config{Endpoints: []string{srv.URL}, Region: testserver.Region, AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret",
		Mix: Mix{{Op: "GenerateDataKey", Weight: 1}, {Op: "BatchEncrypt", Weight: 1}}, Duration: time.Second, Client: ClientRaw, BatchSize: 3}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	ts, err := newTargets(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	missing := "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000"
	w := &workload{keyID: missing, plaintext: []byte("x")}
	for range cfg.BatchSize {
		w.encryptItems = append(w.encryptItems, kmsdclient.EncryptItem{KeyId: missing, Plaintext: w.plaintext})
	}
	rw := &rawWorker{wl: newRawWorkload(&cfg, w)}
	rec := newRecorder(cfg.Endpoints, cfg.Mix)
	rec.setPhase(phaseMeasure)
	r := mrand.New(mrand.NewPCG(1, 1))
	for range 3 {
		out, err := rw.do(context.Background(), &ts[0], "GenerateDataKey", r)
		if kind := ClassifyError(err); kind != "NotFoundException" {
			t.Fatalf("GenerateDataKey of a missing key: %v (%s)", err, kind)
		}
		rec.record("GenerateDataKey", 0, time.Millisecond, err, out)
		out, err = rw.do(context.Background(), &ts[0], "BatchEncrypt", r)
		if err != nil || out.items != 0 || out.itemErrors != 3 || out.itemErrorTypes["NotFoundException"] != 3 {
			t.Fatalf("BatchEncrypt of a missing key: %+v %v", out, err)
		}
		rec.record("BatchEncrypt", 0, time.Millisecond, err, out)
	}
	if s := rec.ops["GenerateDataKey"]; s.errors != 3 || s.byType["NotFoundException"] != 3 || rec.byType["NotFoundException"] != 3 ||
		!strings.Contains(rec.examples["NotFoundException"], "NotFoundException") {
		t.Errorf("recorded %+v, examples %v", s, rec.examples)
	}
	if s := rec.ops["BatchEncrypt"]; s.ok != 3 || s.itemErrors != 9 || s.itemByType["NotFoundException"] != 9 {
		t.Errorf("batch recorded %+v", s)
	}
}

const rawCreds = `{"account_id": "111122223333", "credentials": [
 {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "arn": "arn:aws:iam::111122223333:root"},
 {"access_key_id": "AKIDDAVE", "secret_access_key": "dave-secret", "arn": "arn:aws:iam::111122223333:user/dave",
  "policy": {"Version": "2012-10-17", "Statement": [
   {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Describe*"], "Resource": "arn:aws:kms:*:111122223333:key/*"}]}}
]}`

// TestRawSigV4 runs raw mode against a node that verifies SigV4: the right
// secret is accepted for single and batch ops, a principal without
// kms:GenerateDataKey gets AccessDeniedException, and a wrong secret gets
// InvalidSignatureException, never a success.
func TestRawSigV4(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	srv := testserver.StartWithAuth(t, []byte(rawCreds))
	const rootSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	mix, err := ParseMix("GenerateDataKey=2,Decrypt=1,BatchEncrypt=1")
	if err != nil {
		t.Fatal(err)
	}
	base := Config{Endpoints: []string{srv.URL}, Region: testserver.Region, Concurrency: 2, BatchSize: 5,
		Client: ClientRaw, Duration: 800 * time.Millisecond}

	root := base
	root.AccessKeyID, root.SecretAccessKey, root.Mix = "AKIDEXAMPLE", rootSecret, mix
	res, _ := runRaw(t, root)
	if res.Errors != 0 || res.Ops["GenerateDataKey"].OK == 0 || res.Ops["Decrypt"].OK == 0 || res.Ops["BatchEncrypt"].Items == 0 {
		t.Fatalf("signed raw requests: %+v %v", res.Ops, res.ErrorExamples)
	}

	dave := base
	dave.AccessKeyID, dave.SecretAccessKey, dave.KeyID = "AKIDDAVE", "dave-secret", res.KeyID
	dave.Mix = Mix{{Op: "GenerateDataKey", Weight: 1}, {Op: "Encrypt", Weight: 1}}
	res, _ = runRaw(t, dave)
	gdk, enc := res.Ops["GenerateDataKey"], res.Ops["Encrypt"]
	if gdk.OK != 0 || gdk.Errors == 0 || gdk.ErrorsByType["AccessDeniedException"] != gdk.Errors || enc.OK == 0 || enc.Errors != 0 {
		t.Errorf("dave: GenerateDataKey %+v, Encrypt %+v", gdk, enc)
	}

	// A wrong secret: setup (SDK) would fail, so the raw requests are sent
	// directly, with the key root made.
	wrong := base
	wrong.AccessKeyID, wrong.SecretAccessKey, wrong.Mix = "AKIDEXAMPLE", "not-the-secret", mix
	if err := wrong.defaults(); err != nil {
		t.Fatal(err)
	}
	ts, err := newTargets(&wrong)
	if err != nil {
		t.Fatal(err)
	}
	w := &workload{keyID: res.KeyID, plaintext: []byte("x"), ciphertexts: [][]byte{[]byte("not a ciphertext")}}
	for range wrong.BatchSize {
		w.encryptItems = append(w.encryptItems, kmsdclient.EncryptItem{KeyId: w.keyID, Plaintext: w.plaintext})
	}
	rw := &rawWorker{wl: newRawWorkload(&wrong, w)}
	r := mrand.New(mrand.NewPCG(2, 2))
	for _, op := range []string{"GenerateDataKey", "Decrypt", "BatchEncrypt"} {
		out, err := rw.do(context.Background(), &ts[0], op, r)
		if kind := ClassifyError(err); kind != "InvalidSignatureException" || out.items != 0 {
			t.Errorf("%s with a wrong secret: %+v %v (%s)", op, out, err, kind)
		}
	}
}
