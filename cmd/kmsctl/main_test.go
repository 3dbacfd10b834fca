package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
)

// cli runs kmsctl in-process with an empty environment.
func cli(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return cliEnv(t, nil, stdin, args...)
}

func cliEnv(t *testing.T, environ map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, args, strings.NewReader(stdin), &out, &errOut, func(k string) string { return environ[k] })
	return code, out.String(), errOut.String()
}

// mustCLI runs kmsctl against srv and requires exit 0.
func mustCLI(t *testing.T, srv *testserver.Server, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, stdin, append([]string{"--endpoint", srv.URL}, args...)...)
	require.Equal(t, 0, code, "kmsctl %q: stderr: %s", args, errOut)
	return out
}

func TestKeysAndCrypto(t *testing.T) {
	srv := testserver.Start(t)

	// keys create with description, tags and an alias (JSON to learn the id).
	var created keyView
	out := mustCLI(t, srv, "", "--output", "json", "keys", "create",
		"--description", "payments key", "--tag", "team=platform", "--tag", "env=dev", "--alias", "alias/payments")
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	require.NotEmpty(t, created.KeyID)
	require.Equal(t, "Enabled", created.KeyState)
	require.Equal(t, "payments key", created.Description)
	require.Equal(t, []string{"alias/payments"}, created.Aliases)
	require.Equal(t, map[string]string{"team": "platform", "env": "dev"}, created.Tags)

	// A second key, table output, global flag after the command.
	out = mustCLI(t, srv, "", "keys", "create", "--output", "table")
	require.Contains(t, out, "KEY ID")
	require.Contains(t, out, "SYMMETRIC_DEFAULT")
	var second string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "KEY" && f[1] == "ID" {
			second = f[2]
		}
	}
	require.NotEmpty(t, second)

	t.Run("list table", func(t *testing.T) {
		out := mustCLI(t, srv, "", "keys", "list")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 3, out)
		for _, col := range []string{"KEY ID", "STATE", "USAGE", "SPEC", "CREATED", "ALIASES", "DESCRIPTION"} {
			require.Contains(t, lines[0], col)
		}
		var sawFirst, sawSecond bool
		for _, l := range lines[1:] {
			switch {
			case strings.HasPrefix(l, created.KeyID):
				sawFirst = true
				require.Contains(t, l, "alias/payments")
				require.Contains(t, l, "payments key")
				require.Contains(t, l, "Enabled")
				require.Contains(t, l, "ENCRYPT_DECRYPT")
			case strings.HasPrefix(l, second):
				sawSecond = true
			}
		}
		require.True(t, sawFirst && sawSecond, out)
	})

	t.Run("list json", func(t *testing.T) {
		out := mustCLI(t, srv, "", "keys", "list", "--output", "json")
		var keys []keyView
		require.NoError(t, json.Unmarshal([]byte(out), &keys))
		require.Len(t, keys, 2)
		byID := map[string]keyView{}
		for _, k := range keys {
			byID[k.KeyID] = k
		}
		require.Equal(t, []string{"alias/payments"}, byID[created.KeyID].Aliases)
		require.Equal(t, "payments key", byID[created.KeyID].Description)
		require.Equal(t, []string{}, byID[second].Aliases)
		require.NotNil(t, byID[second].CreationDate)
	})

	t.Run("describe by alias", func(t *testing.T) {
		out := mustCLI(t, srv, "", "keys", "describe", "alias/payments")
		require.Contains(t, out, created.KeyID)
		require.Contains(t, out, "payments key")
		require.Contains(t, out, "env=dev, team=platform")
		require.Contains(t, out, "alias/payments")

		out = mustCLI(t, srv, "", "--output", "json", "keys", "describe", "alias/payments")
		var k keyView
		require.NoError(t, json.Unmarshal([]byte(out), &k))
		require.Equal(t, created.KeyID, k.KeyID)
		require.Equal(t, created.Tags, k.Tags)
		require.Equal(t, created.Arn, k.Arn)
	})

	t.Run("describe missing key", func(t *testing.T) {
		code, out, errOut := cli(t, "", "--endpoint", srv.URL, "keys", "describe", "alias/nope")
		require.Equal(t, 1, code)
		require.Empty(t, out)
		require.Contains(t, errOut, "NotFoundException")
	})

	t.Run("create with taken alias", func(t *testing.T) {
		code, _, errOut := cli(t, "", "--endpoint", srv.URL, "keys", "create", "--alias", "alias/payments")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "AlreadyExistsException")
		require.Contains(t, errOut, "created key")
	})

	t.Run("encrypt decrypt", func(t *testing.T) {
		ct := strings.TrimSpace(mustCLI(t, srv, "", "encrypt", "--key-id", "alias/payments",
			"--context", "team=platform", "--context", "purpose=test", "--plaintext", "attack at dawn"))
		blob, err := base64.StdEncoding.DecodeString(ct)
		require.NoError(t, err)
		require.NotEmpty(t, blob)

		// --ciphertext, context in another order.
		out := mustCLI(t, srv, "", "decrypt", "--context", "purpose=test", "--context", "team=platform", "--ciphertext", ct)
		require.Equal(t, "attack at dawn", out)

		// Piped through stdin, with the key id checked.
		out = mustCLI(t, srv, ct+"\n", "decrypt", "--key-id", created.KeyID,
			"--context", "team=platform", "--context", "purpose=test", "--in", "-")
		require.Equal(t, "attack at dawn", out)

		// A file of raw ciphertext, JSON output.
		path := filepath.Join(t.TempDir(), "msg.enc")
		require.NoError(t, os.WriteFile(path, blob, 0o600))
		out = mustCLI(t, srv, "", "--output", "json", "decrypt",
			"--context", "team=platform", "--context", "purpose=test", "--in", path)
		var dec map[string]string
		require.NoError(t, json.Unmarshal([]byte(out), &dec))
		require.Equal(t, base64.StdEncoding.EncodeToString([]byte("attack at dawn")), dec["Plaintext"])
		require.Equal(t, created.Arn, dec["KeyId"])

		// Wrong or missing context: InvalidCiphertextException, nothing on stdout.
		for _, ctxArgs := range [][]string{
			{"--context", "team=platform", "--context", "purpose=other"},
			{"--context", "team=platform"},
			{},
		} {
			args := append([]string{"--endpoint", srv.URL, "decrypt", "--ciphertext", ct}, ctxArgs...)
			code, out, errOut := cli(t, "", args...)
			require.Equal(t, 1, code, "context %v", ctxArgs)
			require.Empty(t, out)
			require.Contains(t, errOut, "InvalidCiphertextException")
			require.Contains(t, errOut, "Decrypt")
		}

		// Under the wrong key id: IncorrectKeyException.
		code, _, errOut := cli(t, "", "--endpoint", srv.URL, "decrypt", "--key-id", second,
			"--context", "team=platform", "--context", "purpose=test", "--ciphertext", ct)
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "IncorrectKeyException")
	})

	t.Run("encrypt from stdin json", func(t *testing.T) {
		out := mustCLI(t, srv, "binary\x00data", "--output", "json", "encrypt", "--key-id", second, "--in", "-")
		var enc map[string]string
		require.NoError(t, json.Unmarshal([]byte(out), &enc))
		require.Equal(t, "SYMMETRIC_DEFAULT", enc["EncryptionAlgorithm"])
		require.Contains(t, enc["KeyId"], second)
		out = mustCLI(t, srv, "", "decrypt", "--ciphertext", enc["CiphertextBlob"])
		require.Equal(t, "binary\x00data", out)
	})

	t.Run("credentials from environment", func(t *testing.T) {
		code, out, errOut := cliEnv(t, map[string]string{
			"KMSD_ENDPOINT":         srv.URL,
			"AWS_REGION":            testserver.Region,
			"AWS_ACCESS_KEY_ID":     "AKIDEXAMPLE",
			"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		}, "", "keys", "describe", "alias/payments")
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, created.KeyID)
		require.NotContains(t, out+errOut, "wJalrXUtnFEMI")
	})
}

func TestUnreachableEndpoint(t *testing.T) {
	code, out, errOut := cli(t, "", "--endpoint", closedAddr(t), "--timeout", "5s", "keys", "list")
	require.Equal(t, 1, code)
	require.Empty(t, out)
	require.Contains(t, errOut, "kmsctl: ")
	require.Contains(t, errOut, "ListKeys")
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stdout for exit 0, in stderr otherwise
	}{
		{"help", []string{"help"}, 0, "Usage:"},
		{"-h", []string{"-h"}, 0, "Usage:"},
		{"--help", []string{"--help"}, 0, "cluster status"},
		{"command -h", []string{"encrypt", "-h"}, 0, "--key-id"},
		{"group help", []string{"keys", "--help"}, 0, "keys describe KEY"},
		{"no command", nil, 2, "no command given"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"no subcommand", []string{"keys"}, 2, "no subcommand"},
		{"unknown subcommand", []string{"keys", "delete"}, 2, `unknown subcommand "delete"`},
		{"cluster no subcommand", []string{"cluster"}, 2, "cluster status"},
		{"unknown global flag", []string{"--bogus", "keys", "list"}, 2, "bogus"},
		{"unknown command flag", []string{"keys", "list", "--bogus"}, 2, "Usage: kmsctl keys list"},
		{"bad output", []string{"--output", "xml", "keys", "list"}, 2, "--output"},
		{"bad output after command", []string{"keys", "list", "--output", "yaml"}, 2, "--output"},
		{"bad endpoint", []string{"--endpoint", "127.0.0.1:8080", "keys", "list"}, 2, "--endpoint"},
		{"bad timeout", []string{"--timeout", "-1s", "keys", "list"}, 2, "--timeout"},
		{"list with args", []string{"keys", "list", "extra"}, 2, "no arguments"},
		{"describe without key", []string{"keys", "describe"}, 2, "one KEY"},
		{"describe two keys", []string{"keys", "describe", "a", "b"}, 2, "one KEY"},
		{"bad tag", []string{"keys", "create", "--tag", "novalue"}, 2, "key=value"},
		{"duplicate tag", []string{"keys", "create", "--tag", "a=1", "--tag", "a=2"}, 2, "given twice"},
		{"bad alias", []string{"keys", "create", "--alias", "payments"}, 2, "alias/"},
		{"encrypt without key", []string{"encrypt", "--plaintext", "x"}, 2, "--key-id is required"},
		{"encrypt without input", []string{"encrypt", "--key-id", "k"}, 2, "--plaintext or --in"},
		{"encrypt two inputs", []string{"encrypt", "--key-id", "k", "--plaintext", "x", "--in", "-"}, 2, "not both"},
		{"bad context", []string{"encrypt", "--key-id", "k", "--plaintext", "x", "--context", "=v"}, 2, "key=value"},
		{"decrypt without input", []string{"decrypt"}, 2, "--ciphertext or --in"},
		{"decrypt bad base64", []string{"decrypt", "--ciphertext", "***"}, 2, "not base64"},
		{"decrypt empty", []string{"decrypt", "--ciphertext", ""}, 2, "empty"},
		{"status with args", []string{"cluster", "status", "now"}, 2, "no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A closed endpoint: usage errors must not reach the network.
			args := append([]string{"--endpoint", "http://127.0.0.1:1"}, tc.args...)
			code, out, errOut := cli(t, "", args...)
			require.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", out, errOut)
			if tc.code == 0 {
				require.Contains(t, out, tc.want)
				require.Empty(t, errOut)
			} else {
				require.Contains(t, errOut, tc.want)
				require.Contains(t, errOut, "Usage")
				require.Empty(t, out)
			}
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	var g globals
	g.output = "table"
	fs := newTestFlagSet(&g)
	pos, err := parseInterspersed(fs, []string{"a", "--output", "json", "b", "--", "--output", "c"})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "--output", "c"}, pos)
	require.Equal(t, "json", g.output)
}
