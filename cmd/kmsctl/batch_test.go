package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
)

func TestBatchCommands(t *testing.T) {
	srv := testserver.Start(t)
	ck, err := srv.Client.CreateKey(context.Background(), &kms.CreateKeyInput{})
	require.NoError(t, err)
	key := aws.ToString(ck.KeyMetadata.KeyId)

	// 1,005 data keys: two requests; each line is ciphertext TAB plaintext.
	out := mustCLI(t, srv, "", "batch", "generate-data-key", "--key-id", key, "--count", "1005", "--context", "app=cli")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 1005)
	var cts, pts []string
	for _, l := range lines {
		f := strings.Split(l, "\t")
		require.Len(t, f, 2, l)
		pt, err := base64.StdEncoding.DecodeString(f[1])
		require.NoError(t, err)
		require.Len(t, pt, 32)
		cts, pts = append(cts, f[0]), append(pts, f[1])
	}
	// batch decrypt gives the same data keys back, in order.
	dec := mustCLI(t, srv, strings.Join(cts, "\n")+"\n", "batch", "decrypt", "--in", "-", "--base64", "--context", "app=cli")
	require.Equal(t, strings.Join(pts, "\n")+"\n", dec)
	// The SDK agrees on one of them.
	blob, err := base64.StdEncoding.DecodeString(cts[1004])
	require.NoError(t, err)
	sdk, err := srv.Client.Decrypt(context.Background(), &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"app": "cli"}})
	require.NoError(t, err)
	require.Equal(t, pts[1004], base64.StdEncoding.EncodeToString(sdk.Plaintext))

	// Without plaintext: ciphertexts only.
	out = mustCLI(t, srv, "", "batch", "generate-data-key", "--key-id", key, "--count", "3", "--without-plaintext", "--key-spec", "AES_128")
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		require.NotContains(t, l, "\t")
		blob, err := base64.StdEncoding.DecodeString(l)
		require.NoError(t, err)
		d, err := srv.Client.Decrypt(context.Background(), &kms.DecryptInput{CiphertextBlob: blob})
		require.NoError(t, err)
		require.Len(t, d.Plaintext, 16)
	}

	// encrypt each line, decrypt each line: the same text.
	text := "first line\nsecond line\r\n\nfourth, after an empty line (which fails: empty plaintext)\n"
	code, encOut, errOut := cli(t, text, "--endpoint", srv.URL, "batch", "encrypt", "--key-id", key, "--in", "-")
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "kmsctl: item 3: ValidationException")
	require.Contains(t, errOut, "1 of 4 items failed")
	encLines := strings.Split(strings.TrimSuffix(encOut, "\n"), "\n")
	require.Len(t, encLines, 4)
	require.Empty(t, encLines[2], "a failed item leaves its line empty")
	ok := []string{encLines[0], encLines[1], encLines[3]}
	dec = mustCLI(t, srv, strings.Join(ok, "\n"), "batch", "decrypt", "--in", "-")
	require.Equal(t, "first line\nsecond line\nfourth, after an empty line (which fails: empty plaintext)\n", dec)

	// A wrong key for decryption fails every item; JSON output is the
	// server's shape.
	other, err := srv.Client.CreateKey(context.Background(), &kms.CreateKeyInput{})
	require.NoError(t, err)
	code, jsonOut, errOut := cli(t, encLines[0]+"\n", "--endpoint", srv.URL, "--output", "json", "batch", "decrypt", "--in", "-", "--key-id", aws.ToString(other.KeyMetadata.KeyId))
	require.Equal(t, 1, code, errOut)
	var res struct {
		Results []struct {
			Error *struct {
				Code string `json:"__type"`
			} `json:"Error"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(jsonOut), &res), jsonOut)
	require.Len(t, res.Results, 1)
	require.Equal(t, "IncorrectKeyException", res.Results[0].Error.Code)

	// Binary plaintexts with --base64 both ways.
	bin := []string{base64.StdEncoding.EncodeToString([]byte("a\nb\x00c")), base64.StdEncoding.EncodeToString([]byte{0xff})}
	encOut = mustCLI(t, srv, strings.Join(bin, "\n"), "batch", "encrypt", "--key-id", key, "--base64", "--in", "-", "--context", "k=v")
	dec = mustCLI(t, srv, encOut, "batch", "decrypt", "--base64", "--in", "-", "--context", "k=v")
	require.Equal(t, strings.Join(bin, "\n")+"\n", dec)
	// Raw output cannot carry a line break inside a plaintext.
	code, dec, errOut = cli(t, encOut, "--endpoint", srv.URL, "batch", "decrypt", "--in", "-", "--context", "k=v")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "item 1: kmsctl: the plaintext has a line break: use --base64")
	require.Equal(t, "\n\xff\n", dec)
	// Unknown key: every item fails, exit 1.
	code, _, errOut = cli(t, "x\n", "--endpoint", srv.URL, "batch", "encrypt", "--key-id", "alias/none", "--in", "-")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "item 1: NotFoundException")
}

func TestBatchCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"batch", "generate-data-key"},
		{"batch", "generate-data-key", "--key-id", "k", "--count", "0"},
		{"batch", "encrypt", "--key-id", "k"},
		{"batch", "decrypt"},
		{"batch", "encrypt", "--key-id", "k", "--in", "-", "--base64"},
	} {
		code, _, errOut := cli(t, "!!!\n", args...)
		require.Equal(t, 2, code, fmt.Sprint(args, errOut))
	}
	code, out, _ := cli(t, "", "batch", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "kmsctl batch generate-data-key")
}
