package audit

import (
	"context"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// allocated is the disk space of the file at path.
func allocated(t *testing.T, path string) (size, blocks int64) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size(), fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// While a file is written, blocks are reserved past its end without
// changing its size or content; closing or rotating it gives them back.
func TestPreallocationReservesAndReleases(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, func(o *Options) { o.NoSync = false; o.MaxBytes = 64 << 20 })
	req, items := testBatch(0, 100)
	require.NoError(t, w.RecordBatch(context.Background(), req, items))
	if w.prealloc.failed {
		t.Skipf("this file system does not reserve blocks (fallocate FALLOC_FL_KEEP_SIZE refused)")
	}
	path := w.Path()
	size, blocks := allocated(t, path)
	require.Greater(t, blocks, size+preallocChunk/2, "blocks reserved past the end")
	require.Equal(t, w.prealloc.end, size, "size is what was written")
	require.NoError(t, w.Close())

	size2, blocks2 := allocated(t, path)
	require.Greater(t, size2, size, "final digest")
	require.Less(t, blocks2, size2+64<<10, "reserve released at close")
	rep := verifyFile(t, path, w.PublicKey())
	require.True(t, rep.OK(), "%v", rep.Problems)

	// Rotation releases the old file's reserve.
	dir = t.TempDir()
	w = openTest(t, dir, func(o *Options) { o.MaxBytes = 32 << 10 })
	for i := range 20 {
		req, items := testBatch(i*10, 10)
		require.NoError(t, w.RecordBatch(context.Background(), req, items))
	}
	files, err := Files(dir)
	require.NoError(t, err)
	require.Greater(t, len(files), 2)
	for _, f := range files[:len(files)-1] {
		size, blocks := allocated(t, f)
		require.Less(t, blocks, size+64<<10, "%s: reserve released at rotation", f)
	}
	require.NoError(t, w.Close())
	reps, err := VerifyFiles(files, VerifyOptions{PublicKey: w.PublicKey()})
	require.NoError(t, err)
	for _, r := range reps {
		require.True(t, r.OK(), "%s: %v", r.File, r.Problems)
	}
}
