package service

import (
	"testing"

	"github.com/kmsd/kmsd/fsm"
)

func TestMaterialIDCache(t *testing.T) {
	var c materialIDCache
	var v fsm.KeyVersion
	for i := range maxMaterialIDs + 10 {
		v.VersionID[0], v.VersionID[1], v.VersionID[2] = byte(i), byte(i>>8), byte(i>>16)
		if got, want := c.get(v), keyMaterialID(v); got != want {
			t.Fatalf("version %d: %s, want %s", i, got, want)
		}
		if got := c.get(v); got != keyMaterialID(v) {
			t.Fatalf("version %d cached wrong: %s", i, got)
		}
		if len(c.ids) > maxMaterialIDs {
			t.Fatalf("cache grew past its bound: %d", len(c.ids))
		}
	}
}
