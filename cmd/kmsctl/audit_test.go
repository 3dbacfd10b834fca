package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/api"
	"github.com/kmsd/kmsd/audit"
	"github.com/kmsd/kmsd/service"
)

// writeAuditLog writes n events to a new audit log in dir and closes it
// (close=false leaves it as a crashed node would).
func writeAuditLog(t *testing.T, dir string, n int, close bool) string {
	t.Helper()
	w, err := audit.Open(audit.Options{Dir: dir, NodeID: "n1", Region: "us-east-1", AccountID: "111122223333", DigestEvery: 5, NoSync: true})
	require.NoError(t, err)
	for range n {
		require.NoError(t, w.Record(context.Background(), api.AuditEvent{
			Operation: "DescribeKey",
			Info:      service.RequestInfo{RequestID: "r", Caller: service.Caller{ARN: "arn:aws:iam::111122223333:root"}},
			Time:      time.Now(),
			Request:   []byte(`{"KeyId":"alias/x"}`),
		}))
	}
	if close {
		require.NoError(t, w.Close())
	}
	return w.Path()
}

func TestAuditVerify(t *testing.T) {
	dir := t.TempDir()
	file := writeAuditLog(t, dir, 12, true)
	pub := filepath.Join(dir, audit.PubFile)

	code, out, errOut := cli(t, "", "audit", "verify", "--pubkey", pub, dir)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, file+": OK (12 events, 3 digests, closed)")
	require.NotContains(t, out, "note:")

	code, out, _ = cli(t, "", "audit", "verify", file)
	require.Equal(t, 0, code)
	require.Contains(t, out, "note: signatures were checked against the key in each file's header")

	code, out, _ = cli(t, "", "--output", "json", "audit", "verify", "--pubkey", pub, file)
	require.Equal(t, 0, code)
	var reps []audit.Report
	require.NoError(t, json.Unmarshal([]byte(out), &reps))
	require.Len(t, reps, 1)
	require.True(t, reps[0].Final)
	require.True(t, reps[0].Trusted)

	// Tampering: delete line 4 (seq 3) and swap lines 9 and 10.
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	lines := strings.SplitAfter(string(b), "\n")
	lines[8], lines[9] = lines[9], lines[8]
	lines = append(lines[:3], lines[4:]...)
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(lines, "")), 0o600))
	code, out, errOut = cli(t, "", "audit", "verify", "--pubkey", pub, file)
	require.Equal(t, 1, code)
	require.Contains(t, out, "2 PROBLEM(S)")
	require.Contains(t, out, "deleted: record seq 3 is missing before line 4")
	require.Contains(t, out, "line 9: reordered: seq 8 comes after seq 9")
	require.Contains(t, errOut, "audit verify: 2 problem(s) in 1 of 1 file(s)")
}

func TestAuditVerifyOpenFile(t *testing.T) {
	dir := t.TempDir()
	writeAuditLog(t, dir, 7, false)
	code, out, _ := cli(t, "", "audit", "verify", dir)
	require.Equal(t, 1, code)
	require.Contains(t, out, "truncated: no final digest")

	code, out, errOut := cli(t, "", "audit", "verify", "--allow-open", dir)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "warning: unsigned: 2 records after the last digest (seq 7..8)")
}

func TestAuditVerifyUsage(t *testing.T) {
	code, _, errOut := cli(t, "", "audit", "verify")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "give one or more audit files")
	code, _, errOut = cli(t, "", "audit", "verify", filepath.Join(t.TempDir(), "missing"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no such file")
	code, _, errOut = cli(t, "", "audit", "verify", "--pubkey", filepath.Join(t.TempDir(), "nope"), "x")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "--pubkey")
	code, out, _ := cli(t, "", "audit", "verify", "-h")
	require.Equal(t, 0, code)
	require.Contains(t, out, "--allow-open")
}
