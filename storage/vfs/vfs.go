package vfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File is an open file. Writes go to the current offset, or always to the
// end when the file was opened with os.O_APPEND; reads use ReadAt and never
// move the offset, so one File may be read and written concurrently.
type File interface {
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync makes the file's contents durable (fsync). It says nothing about
	// the directory entry naming the file; see FS.SyncDir.
	Sync() error
	// Truncate changes the size of the file. It does not move the offset.
	Truncate(size int64) error
	// Stat describes the file; Size is the current length.
	Stat() (fs.FileInfo, error)
}

// FS is the file-system seam every storage file operation goes through, so
// tests can substitute a crashable or error-injecting implementation.
// Errors for missing files satisfy errors.Is(err, fs.ErrNotExist) in every
// implementation.
type FS interface {
	// OpenFile opens name with os.OpenFile flag semantics (O_RDONLY,
	// O_RDWR, O_CREATE, O_EXCL, O_TRUNC, O_APPEND).
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// Create creates or truncates name for reading and writing.
	Create(name string) (File, error)
	// Open opens name read-only.
	Open(name string) (File, error)
	// ReadDir lists a directory sorted by name.
	ReadDir(name string) ([]fs.DirEntry, error)
	// Rename atomically replaces newname with oldname. The change is
	// durable only after SyncDir of both parents.
	Rename(oldname, newname string) error
	// Remove deletes a file or an empty directory. Open handles keep
	// working, as on POSIX. Durable only after SyncDir of the parent.
	Remove(name string) error
	// RemoveAll deletes name and everything below it; a missing name is
	// not an error.
	RemoveAll(name string) error
	// MkdirAll creates name and any missing parents. New entries are
	// durable only after SyncDir of each parent.
	MkdirAll(name string, perm fs.FileMode) error
	// Stat describes name.
	Stat(name string) (fs.FileInfo, error)
	// SyncDir makes the entries of directory name (creations, removals,
	// renames) durable.
	SyncDir(name string) error
}

// OS returns the FS backed by the operating system.
func OS() FS { return osFS{} }

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (o osFS) Create(name string) (File, error) {
	return o.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
}

func (o osFS) Open(name string) (File, error) { return o.OpenFile(name, os.O_RDONLY, 0) }

func (osFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

func (osFS) Remove(name string) error { return os.Remove(name) }

func (osFS) RemoveAll(name string) error { return os.RemoveAll(name) }

func (osFS) MkdirAll(name string, perm fs.FileMode) error { return os.MkdirAll(name, perm) }

func (osFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

func (osFS) SyncDir(name string) error {
	d, err := os.Open(filepath.Clean(name))
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	return errors.Join(serr, cerr)
}
