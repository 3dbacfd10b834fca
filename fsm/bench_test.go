package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkApplyFullWindow measures Apply in the steady state of a running
// cluster: the dedupe window is full, so every Apply also evicts an entry.
func BenchmarkApplyFullWindow(b *testing.B) {
	f := New()
	k := testKey("k1")
	data, err := Encode(withRequestID(createKey(k), "create"))
	if err != nil {
		b.Fatal(err)
	}
	f.Apply(&raft.Log{Type: raft.LogCommand, Index: 1, Data: data})
	logs := make([][]byte, DefaultDedupeWindow+b.N)
	for i := range logs {
		logs[i], err = Encode(withRequestID(updateDescription("k1", "d"), fmt.Sprintf("req-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
	}
	for i := range DefaultDedupeWindow {
		f.Apply(&raft.Log{Type: raft.LogCommand, Index: uint64(i + 2), Data: logs[i]})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		j := DefaultDedupeWindow + i
		f.Apply(&raft.Log{Type: raft.LogCommand, Index: uint64(j + 2), Data: logs[j]})
	}
}
