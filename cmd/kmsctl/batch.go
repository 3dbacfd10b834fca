package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kmsd/kmsd/kmsdclient"
)

// The batch commands use kmsd's Batch API (KmsdService.Batch*, through
// package kmsdclient): many items per request, one result per item. Inputs
// larger than kmsdclient.MaxItems go out as several requests, in order.
// Output is line-oriented: line i of stdout is item i's result (an empty
// line if it failed; the error goes to stderr with the item's number), so
// the output pairs up with the input by line. --output json prints
// {"Results": [...]} as the server answers it instead. A run with a failed
// item exits 1.

// batchClient is the batch API client for e's endpoint, region and
// credentials (as env.client).
func (e *env) batchClient() (*kmsdclient.Client, error) {
	id, secret, token := e.getenv("AWS_ACCESS_KEY_ID"), e.getenv("AWS_SECRET_ACCESS_KEY"), e.getenv("AWS_SESSION_TOKEN")
	if id == "" || secret == "" {
		id, secret, token = devCredential, devCredential, ""
	}
	return kmsdclient.New(kmsdclient.Options{
		Endpoint:    e.endpoint,
		Region:      e.region,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, token),
		MaxAttempts: 3,
	})
}

// chunks calls fn for [lo, hi) ranges of n items, at most MaxItems each.
func chunks(n int, fn func(lo, hi int) error) error {
	for lo := 0; lo < n; lo += kmsdclient.MaxItems {
		if err := fn(lo, min(n, lo+kmsdclient.MaxItems)); err != nil {
			return err
		}
	}
	return nil
}

// itemFailures collects failed items for the summary.
type itemFailures struct {
	e      *env
	failed int
	total  int
}

func (f *itemFailures) add(i int, ie *kmsdclient.ItemError) {
	f.total++
	if ie == nil {
		return
	}
	f.failed++
	fmt.Fprintf(f.e.stderr, "kmsctl: item %d: %s: %s\n", i+1, ie.Code, sanitize(ie.Message))
}

func (f *itemFailures) err() error {
	if f.failed == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d items failed", f.failed, f.total)
}

// readLines reads --in (a file, or - for stdin) as one item per line.
// A final line without a newline counts; a trailing "\r" is dropped.
func readLines(e *env, name string) ([][]byte, error) {
	var r io.Reader
	if name == "-" {
		r = e.stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var lines [][]byte
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 64<<10)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(bytes.TrimSuffix(sc.Bytes(), []byte("\r"))))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return lines, nil
}

// runBatch sends n items as requests of at most MaxItems (call sends items
// [lo, hi) and returns their results, in order) and reports every result:
// check returns its error (after any client-side check, which may set
// one), which goes to stderr; then, with --output json, the result is kept
// for one {"Results": [...]} document at the end, else printResult writes its
// line. forget, if set, clears a result's secrets once it is written.
func runBatch[R any](ctx context.Context, e *env, n int,
	call func(ctx context.Context, lo, hi int) ([]R, error),
	check func(*R) *kmsdclient.ItemError,
	printResult func(*R) error,
	forget func(*R),
) error {
	if forget == nil {
		forget = func(*R) {}
	}
	fails := &itemFailures{e: e}
	var all []R
	err := chunks(n, func(lo, hi int) error {
		rctx, cancel := e.reqCtx(ctx)
		defer cancel()
		results, err := call(rctx, lo, hi)
		if err != nil {
			return err
		}
		for i := range results {
			r := &results[i]
			fails.add(lo+i, check(r))
			if e.json() {
				all = append(all, *r)
				continue
			}
			err := printResult(r)
			forget(r)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if e.json() {
		err := e.writeJSON(map[string]any{"Results": all})
		for i := range all {
			forget(&all[i])
		}
		if err != nil {
			return err
		}
	}
	return fails.err()
}

func batchGenerateDataKeyCommand() *command {
	var (
		keyID        string
		count        int
		keySpec      string
		numBytes     int
		withoutPlain bool
		ctxFlag      kvFlag
	)
	return &command{
		name: "batch generate-data-key",
		short: "Generate --count data keys under --key-id in as few requests as possible. Each line of output is one data key:\n" +
			"its ciphertext and its plaintext, in base64, separated by a tab (only the ciphertext with --without-plaintext).",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&keyID, "key-id", "", "key id, key ARN, alias name or alias ARN (required)")
			fs.IntVar(&count, "count", 1, "number of data keys")
			fs.StringVar(&keySpec, "key-spec", "", "AES_256 or AES_128 (default AES_256 unless --number-of-bytes)")
			fs.IntVar(&numBytes, "number-of-bytes", 0, "data key length in bytes, instead of --key-spec")
			fs.BoolVar(&withoutPlain, "without-plaintext", false, "return the encrypted data keys only (GenerateDataKeyWithoutPlaintext)")
			fs.Var(&ctxFlag, "context", "encryption context pair `key=value` (repeatable; the same for every key)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("batch generate-data-key takes no arguments, got %q", args)
			}
			if keyID == "" {
				return usagef("--key-id is required")
			}
			if count < 1 {
				return usagef("--count must be at least 1")
			}
			if keySpec == "" && numBytes == 0 {
				keySpec = "AES_256"
			}
			encCtx, err := ctxFlag.asMap("context")
			if err != nil {
				return err
			}
			c, err := e.batchClient()
			if err != nil {
				return err
			}
			call := func(ctx context.Context, lo, hi int) ([]kmsdclient.DataKeyResult, error) {
				items := make([]kmsdclient.DataKeyItem, hi-lo)
				for i := range items {
					items[i] = kmsdclient.DataKeyItem{KeyId: keyID, KeySpec: keySpec, NumberOfBytes: int32(numBytes), EncryptionContext: encCtx}
				}
				in := &kmsdclient.BatchGenerateDataKeyInput{Items: items}
				var out *kmsdclient.BatchGenerateDataKeyOutput
				var err error
				if withoutPlain {
					out, err = c.BatchGenerateDataKeyWithoutPlaintext(ctx, in)
				} else {
					out, err = c.BatchGenerateDataKey(ctx, in)
				}
				if err != nil {
					return nil, err
				}
				return out.Results, nil
			}
			printResult := func(r *kmsdclient.DataKeyResult) error {
				line := ""
				if r.Error == nil {
					line = base64.StdEncoding.EncodeToString(r.CiphertextBlob)
					if !withoutPlain {
						line += "\t" + base64.StdEncoding.EncodeToString(r.Plaintext)
					}
				}
				_, err := fmt.Fprintln(e.stdout, line)
				return err
			}
			return runBatch(ctx, e, count, call, func(r *kmsdclient.DataKeyResult) *kmsdclient.ItemError { return r.Error },
				printResult, func(r *kmsdclient.DataKeyResult) { clear(r.Plaintext) })
		},
	}
}

func batchEncryptCommand() *command {
	var (
		keyID   string
		in      string
		b64     bool
		ctxFlag kvFlag
	)
	return &command{
		name: "batch encrypt",
		short: "Encrypt every line of --in (a file, or - for stdin) as its own plaintext under --key-id, and print one\n" +
			"ciphertext per line, in base64. Lines are raw text, or base64 with --base64 (for binary plaintexts).",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&keyID, "key-id", "", "key id, key ARN, alias name or alias ARN (required)")
			fs.StringVar(&in, "in", "", "read the plaintexts, one per line, from `FILE` (- for stdin) (required)")
			fs.BoolVar(&b64, "base64", false, "the lines are base64 of the plaintexts")
			fs.Var(&ctxFlag, "context", "encryption context pair `key=value` (repeatable; the same for every item)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("batch encrypt takes no arguments, got %q", args)
			}
			if keyID == "" || in == "" {
				return usagef("--key-id and --in are required")
			}
			encCtx, err := ctxFlag.asMap("context")
			if err != nil {
				return err
			}
			lines, err := readLines(e, in)
			if err != nil {
				return err
			}
			defer func() {
				for _, l := range lines {
					clear(l)
				}
			}()
			if len(lines) == 0 {
				return usagef("%s has no lines", in)
			}
			items := make([]kmsdclient.EncryptItem, len(lines))
			for i, l := range lines {
				pt := l
				if b64 {
					if pt, err = base64.StdEncoding.DecodeString(string(l)); err != nil {
						return usagef("line %d: not base64", i+1)
					}
				}
				items[i] = kmsdclient.EncryptItem{KeyId: keyID, Plaintext: pt, EncryptionContext: encCtx}
			}
			c, err := e.batchClient()
			if err != nil {
				return err
			}
			call := func(ctx context.Context, lo, hi int) ([]kmsdclient.EncryptResult, error) {
				out, err := c.BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{Items: items[lo:hi]})
				if err != nil {
					return nil, err
				}
				return out.Results, nil
			}
			printResult := func(r *kmsdclient.EncryptResult) error {
				line := ""
				if r.Error == nil {
					line = base64.StdEncoding.EncodeToString(r.CiphertextBlob)
				}
				_, err := fmt.Fprintln(e.stdout, line)
				return err
			}
			err = runBatch(ctx, e, len(items), call, func(r *kmsdclient.EncryptResult) *kmsdclient.ItemError { return r.Error }, printResult, nil)
			if b64 {
				for _, it := range items {
					clear(it.Plaintext)
				}
			}
			return err
		},
	}
}

func batchDecryptCommand() *command {
	var (
		keyID   string
		in      string
		b64     bool
		ctxFlag kvFlag
	)
	return &command{
		name: "batch decrypt",
		short: "Decrypt every line of --in (a file, or - for stdin; one base64 ciphertext per line, as batch encrypt prints)\n" +
			"and print one plaintext per line: raw, or base64 with --base64 (needed for plaintexts with line breaks).",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&keyID, "key-id", "", "require every ciphertext to be under this key")
			fs.StringVar(&in, "in", "", "read the ciphertexts, one per line, from `FILE` (- for stdin) (required)")
			fs.BoolVar(&b64, "base64", false, "print the plaintexts in base64")
			fs.Var(&ctxFlag, "context", "encryption context pair `key=value` (repeatable; the same for every item)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("batch decrypt takes no arguments, got %q", args)
			}
			if in == "" {
				return usagef("--in is required")
			}
			encCtx, err := ctxFlag.asMap("context")
			if err != nil {
				return err
			}
			lines, err := readLines(e, in)
			if err != nil {
				return err
			}
			if len(lines) == 0 {
				return usagef("%s has no lines", in)
			}
			items := make([]kmsdclient.DecryptItem, len(lines))
			for i, l := range lines {
				blob, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(l)))
				if err != nil {
					return usagef("line %d: not base64", i+1)
				}
				items[i] = kmsdclient.DecryptItem{CiphertextBlob: blob, KeyId: keyID, EncryptionContext: encCtx}
			}
			c, err := e.batchClient()
			if err != nil {
				return err
			}
			call := func(ctx context.Context, lo, hi int) ([]kmsdclient.DecryptResult, error) {
				out, err := c.BatchDecrypt(ctx, &kmsdclient.BatchDecryptInput{Items: items[lo:hi]})
				if err != nil {
					return nil, err
				}
				return out.Results, nil
			}
			// A raw plaintext with a line break would break the one line
			// per item output.
			check := func(r *kmsdclient.DecryptResult) *kmsdclient.ItemError {
				if r.Error == nil && !b64 && !e.json() && bytes.ContainsAny(r.Plaintext, "\r\n") {
					clear(r.Plaintext)
					r.Error = &kmsdclient.ItemError{Code: "kmsctl", Message: "the plaintext has a line break: use --base64"}
				}
				return r.Error
			}
			printResult := func(r *kmsdclient.DecryptResult) error {
				var err error
				switch {
				case r.Error != nil:
					_, err = fmt.Fprintln(e.stdout)
				case b64:
					_, err = fmt.Fprintln(e.stdout, base64.StdEncoding.EncodeToString(r.Plaintext))
				default:
					if _, err = e.stdout.Write(r.Plaintext); err == nil {
						_, err = io.WriteString(e.stdout, "\n")
					}
				}
				return err
			}
			return runBatch(ctx, e, len(items), call, check, printResult, func(r *kmsdclient.DecryptResult) { clear(r.Plaintext) })
		},
	}
}
