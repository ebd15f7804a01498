//go:build unix

package metadata

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// checkDirFree fails if another etcd server, in this process or another,
// has the data dir open. etcd itself would wait for the backend's file lock
// forever (bbolt flock without timeout), so StartEmbedded probes the same
// lock without blocking first. Two servers racing to start on one fresh
// dir can still slip past; that is a deployment error the probe does not
// try to cover.
func checkDirFree(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "member", "snap", "db"), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("metadata: probe etcd data dir %s: %w", dir, err)
	}
	defer f.Close() // also drops the probe's lock
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("metadata: etcd data dir %s is in use by another etcd server", dir)
		}
		return fmt.Errorf("metadata: probe etcd data dir %s: %w", dir, err)
	}
	return nil
}
