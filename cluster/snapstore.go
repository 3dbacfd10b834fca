package cluster

import (
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// privateSnapshotStore is raft's file snapshot store with owner-only
// permissions: raft creates each snapshot's directory 0755 and its files
// 0644, and a snapshot holds the whole state (wrapped key material
// included). The parent directory is already 0700; this narrows the
// snapshot itself too, when it is complete.
type privateSnapshotStore struct {
	*raft.FileSnapshotStore
	dir string // <raft dir>/snapshots
}

// Create wraps the sink so Close tightens permissions.
func (s *privateSnapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &privateSink{SnapshotSink: sink, dir: s.dir}, nil
}

type privateSink struct {
	raft.SnapshotSink
	dir string
}

// Close finishes the snapshot and makes it owner-only.
func (p *privateSink) Close() error {
	if err := p.SnapshotSink.Close(); err != nil {
		return err
	}
	return restrictTree(filepath.Join(p.dir, p.ID()))
}

// restrictTree makes a directory tree owner-only: 0700 dirs, 0600 files.
func restrictTree(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o600)
		if d.IsDir() {
			mode = 0o700
		}
		return os.Chmod(path, mode)
	})
}
