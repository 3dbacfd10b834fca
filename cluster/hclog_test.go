package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func decodeLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	buf.Reset()
	return out
}

func TestHCLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: LevelTrace, AddSource: true})
	l := newHCLogger(slog.New(h).With("node_id", "n1"), "raft")

	l.Trace("t", "a", 1)
	l.Debug("d")
	l.Info("i")
	l.Warn("w")
	l.Error("e", "error", errors.New("boom"))
	l.Log(hclog.Info, "via Log")
	recs := decodeLines(t, &buf)
	require.Len(t, recs, 6)
	for i, want := range []string{"DEBUG-4", "DEBUG", "INFO", "WARN", "ERROR", "INFO"} {
		assert.Equal(t, want, recs[i]["level"], recs[i]["msg"])
		assert.Equal(t, "raft", recs[i]["logger"])
		assert.Equal(t, "n1", recs[i]["node_id"])
		src, _ := recs[i]["source"].(map[string]any)
		assert.Contains(t, src["file"], "hclog_test.go", "source is the caller")
	}
	assert.EqualValues(t, 1, recs[0]["a"])
	assert.Equal(t, "boom", recs[4]["error"])

	// Named, With, odd arguments, hclog's value wrappers.
	sub := l.Named("net").With("peer", "n2")
	assert.Equal(t, "raft.net", sub.Name())
	assert.Equal(t, []any{"peer", "n2"}, sub.ImpliedArgs())
	sub.Info("hello", "n", hclog.Hex(255), "f", hclog.Fmt("%d-%s", 7, "x"), "dangling")
	recs = decodeLines(t, &buf)
	require.Len(t, recs, 1)
	assert.Equal(t, "raft.net", recs[0]["logger"])
	assert.Equal(t, "n2", recs[0]["peer"])
	assert.Equal(t, "0xff", recs[0]["n"])
	assert.Equal(t, "7-x", recs[0]["f"])
	assert.Equal(t, "dangling", recs[0]["EXTRA_VALUE_AT_END"])
	assert.Equal(t, "x", l.ResetNamed("x").Name())

	// Levels follow the handler, and SetLevel can raise them.
	assert.True(t, l.IsTrace())
	assert.Equal(t, hclog.Trace, l.GetLevel())
	l.SetLevel(hclog.Warn)
	assert.False(t, sub.IsInfo(), "level is shared with derived loggers")
	sub.Info("dropped")
	assert.Empty(t, decodeLines(t, &buf))
	assert.Equal(t, hclog.Warn, l.GetLevel())

	var ibuf bytes.Buffer
	info := newHCLogger(slog.New(slog.NewJSONHandler(&ibuf, nil)), "raft")
	assert.False(t, info.IsDebug())
	assert.True(t, info.IsInfo())
	assert.Equal(t, hclog.Info, info.GetLevel())
	info.Debug("dropped")
	assert.Empty(t, ibuf.String())

	// Standard library logger with level inference (memberlist style).
	std := info.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	std.Printf("[WARN] memberlist: something %d", 1)
	std.Printf("[DEBUG] memberlist: hidden")
	recs = decodeLines(t, &ibuf)
	require.Len(t, recs, 1)
	assert.Equal(t, "WARN", recs[0]["level"])
	assert.Equal(t, "memberlist: something 1", recs[0]["msg"])
}
