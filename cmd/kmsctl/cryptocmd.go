package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// maxInput caps what --in reads: more than any KMS request may carry
// (kmsd caps request bodies at 1 MiB), so the server, not kmsctl, reports
// sizes it rejects.
const maxInput = 1 << 20

// readInput reads --in: a file, or stdin for "-".
func readInput(e *env, name string) ([]byte, error) {
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
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxInput {
		return nil, fmt.Errorf("read %s: more than %d bytes", name, maxInput)
	}
	return b, nil
}

func encryptCommand() *command {
	var (
		keyID     string
		plaintext optString
		in        string
		ctxFlag   kvFlag
	)
	return &command{
		name:  "encrypt",
		short: "Encrypt --plaintext, or the bytes of --in (a file, or - for stdin), and print the ciphertext in base64.",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&keyID, "key-id", "", "key id, key ARN, alias name or alias ARN (required)")
			fs.Var(&plaintext, "plaintext", "the plaintext, as a `string`")
			fs.StringVar(&in, "in", "", "read the plaintext from `FILE` (- for stdin)")
			fs.Var(&ctxFlag, "context", "encryption context pair `key=value` (repeatable)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("encrypt takes no arguments, got %q", args)
			}
			if keyID == "" {
				return usagef("--key-id is required")
			}
			encCtx, err := ctxFlag.asMap("context")
			if err != nil {
				return err
			}
			var data []byte
			switch {
			case plaintext.set && in != "":
				return usagef("give one of --plaintext and --in, not both")
			case plaintext.set:
				data = []byte(plaintext.val)
			case in != "":
				if data, err = readInput(e, in); err != nil {
					return err
				}
			default:
				return usagef("give --plaintext or --in")
			}
			rctx, cancel := e.reqCtx(ctx)
			defer cancel()
			out, err := e.client().Encrypt(rctx, &kms.EncryptInput{KeyId: &keyID, Plaintext: data, EncryptionContext: encCtx})
			clear(data)
			if err != nil {
				return err
			}
			b64 := base64.StdEncoding.EncodeToString(out.CiphertextBlob)
			if e.json() {
				return e.writeJSON(map[string]string{
					"KeyId":               deref(out.KeyId),
					"CiphertextBlob":      b64,
					"EncryptionAlgorithm": string(out.EncryptionAlgorithm),
				})
			}
			_, err = fmt.Fprintln(e.stdout, b64)
			return err
		},
	}
}

func decryptCommand() *command {
	var (
		keyID      string
		ciphertext optString
		in         string
		ctxFlag    kvFlag
	)
	return &command{
		name: "decrypt",
		short: "Decrypt --ciphertext (base64), or --in (a file, or - for stdin, holding the ciphertext in base64 or raw),\n" +
			"and write the plaintext, raw, to stdout (--output json: in base64).",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&keyID, "key-id", "", "require the ciphertext to be under this key (id, ARN, alias name or alias ARN)")
			fs.Var(&ciphertext, "ciphertext", "the ciphertext, in `base64`")
			fs.StringVar(&in, "in", "", "read the ciphertext from `FILE` (- for stdin), base64 or raw")
			fs.Var(&ctxFlag, "context", "encryption context pair `key=value` (repeatable)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("decrypt takes no arguments, got %q", args)
			}
			encCtx, err := ctxFlag.asMap("context")
			if err != nil {
				return err
			}
			var blob []byte
			switch {
			case ciphertext.set && in != "":
				return usagef("give one of --ciphertext and --in, not both")
			case ciphertext.set:
				if blob, err = decodeBase64(ciphertext.val); err != nil {
					return usagef("--ciphertext: not base64: %v", err)
				}
			case in != "":
				raw, err := readInput(e, in)
				if err != nil {
					return err
				}
				// What encrypt prints is base64; a file of raw ciphertext
				// (aws kms ... | base64 -d) is not valid base64.
				if blob, err = decodeBase64(string(raw)); err != nil {
					blob = raw
				}
			default:
				return usagef("give --ciphertext or --in")
			}
			if len(blob) == 0 {
				return usagef("the ciphertext is empty")
			}
			input := &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: encCtx}
			if keyID != "" {
				input.KeyId = &keyID
			}
			rctx, cancel := e.reqCtx(ctx)
			defer cancel()
			out, err := e.client().Decrypt(rctx, input)
			if err != nil {
				return err
			}
			defer clear(out.Plaintext)
			if e.json() {
				return e.writeJSON(map[string]string{
					"KeyId":               deref(out.KeyId),
					"Plaintext":           base64.StdEncoding.EncodeToString(out.Plaintext),
					"EncryptionAlgorithm": string(out.EncryptionAlgorithm),
				})
			}
			_, err = e.stdout.Write(out.Plaintext)
			return err
		},
	}
}

// decodeBase64 decodes standard base64, ignoring whitespace (line breaks
// of base64(1) included).
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r':
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(s)
}

// optString is a string flag that records whether it was given, so an
// explicit empty value is told apart from none.
type optString struct {
	val string
	set bool
}

func (o *optString) String() string {
	if o == nil {
		return ""
	}
	return o.val
}

func (o *optString) Set(v string) error {
	o.val, o.set = v, true
	return nil
}
