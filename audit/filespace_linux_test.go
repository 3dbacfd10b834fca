package audit

import (
	"context"
	"os"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// allocated is the size and disk space of the file at path.
func allocated(t *testing.T, path string) (size, blocks int64) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size(), fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// residentPages counts the pages of the file at path in the page cache.
func residentPages(t *testing.T, path string) (resident, pages int) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	require.NoError(t, err)
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	for _, v := range vec {
		if v&1 != 0 {
			resident++
		}
	}
	return resident, len(vec)
}

// While a file is written, blocks are reserved past its end without
// changing its size or content, and the synced pages behind its end leave
// the page cache; closing or rotating it gives the reserve back.
func TestFileSpaceReservesDropsAndReleases(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, func(o *Options) { o.NoSync = false; o.MaxBytes = 64 << 20 })
	for i := range 5 {
		req, items := testBatch(i*100, 100)
		require.NoError(t, w.RecordBatch(context.Background(), req, items))
	}
	if w.space.noAlloc || w.space.noDrop {
		t.Skipf("this file system does not reserve blocks or drop pages (fallocate KEEP_SIZE or fadvise DONTNEED refused)")
	}
	path := w.Path()
	size, blocks := allocated(t, path)
	require.Greater(t, blocks, size+preallocChunk/2, "blocks reserved past the end")
	require.Equal(t, w.space.end, size, "size is what was written")
	resident, pages := residentPages(t, path)
	require.Greater(t, pages, 8)
	require.LessOrEqual(t, resident, 1, "only the page holding the end stays cached (of %d)", pages)
	require.NoError(t, w.Close())

	size2, blocks2 := allocated(t, path)
	require.Greater(t, size2, size, "final digest")
	require.Less(t, blocks2, size2+64<<10, "reserve released at close")
	rep := verifyFile(t, path, w.PublicKey())
	require.True(t, rep.OK(), "%v", rep.Problems)
	require.Equal(t, 5, rep.Events)

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

// A writer that did not close its file (a crash) left its reserve behind:
// the next Open gives it back without changing the file, whose chain still
// verifies up to the crash.
func TestFileSpaceReserveOfACrashedWriterReleased(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, func(o *Options) { o.NoSync = false; o.MaxBytes = 64 << 20 })
	req, items := testBatch(0, 50)
	require.NoError(t, w.RecordBatch(context.Background(), req, items))
	if w.space.noAlloc {
		t.Skipf("this file system does not reserve blocks (fallocate KEEP_SIZE refused)")
	}
	path := w.Path()
	size, blocks := allocated(t, path)
	require.Greater(t, blocks, size+preallocChunk/2)
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	// w is abandoned without Close, as a crash would leave it.
	w2 := openTest(t, dir, func(o *Options) { o.NoSync = false })
	defer w2.Close()
	size2, blocks2 := allocated(t, path)
	require.Equal(t, size, size2)
	require.Less(t, blocks2, size2+64<<10, "reserve released")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, before, after, "content unchanged")
	rep := verifyFile(t, path, w.PublicKey())
	require.Equal(t, 1, rep.Events)
}
