package vfs

import (
	"errors"
	"io/fs"
	"os"
	"sync"
)

// ErrInjected is the error ErrorFS returns when a Rule has no Err of its
// own.
var ErrInjected = errors.New("vfs: injected error")

// Op names an operation ErrorFS can fail.
type Op int

// Operations counted by ErrorFS. File-level operations (OpWrite, OpSync,
// OpTruncate) are counted across every file the FS opened.
const (
	OpWrite Op = iota
	OpSync
	OpTruncate
	OpSyncDir
	OpRename
	OpCreate // OpenFile with O_CREATE, and Create
	OpRemove // Remove and RemoveAll
	numOps
)

// Rule injects a failure: the Nth call (1-based, counted from when the
// rule was added) of Op whose path satisfies Match fails with Err. With
// Sticky, that call and every later matching call fail.
type Rule struct {
	Op     Op
	Nth    int
	Err    error
	Sticky bool
	// Match filters by path (the file's name for file operations, the
	// first argument otherwise); nil matches everything.
	Match func(path string) bool
}

type ruleState struct {
	Rule
	seen int
	done bool
}

// ErrorFS wraps an FS and fails chosen operations, in the spirit of
// pebble's errorfs, so tests can check that storage never acknowledges
// data after a failed write or fsync. It is safe for concurrent use.
type ErrorFS struct {
	inner FS
	mu    struct {
		sync.Mutex
		rules  []*ruleState
		counts [numOps]int
	}
}

// NewErrorFS wraps inner; with no rules it passes everything through.
func NewErrorFS(inner FS) *ErrorFS { return &ErrorFS{inner: inner} }

// Add installs r.
func (e *ErrorFS) Add(r Rule) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.rules = append(e.mu.rules, &ruleState{Rule: r})
}

// FailNth makes the nth next call of op fail once with err (ErrInjected
// if nil).
func (e *ErrorFS) FailNth(op Op, n int, err error) { e.Add(Rule{Op: op, Nth: n, Err: err}) }

// Reset removes all rules.
func (e *ErrorFS) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.rules = nil
}

// Count reports how many times op was attempted, failed or not.
func (e *ErrorFS) Count(op Op) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mu.counts[op]
}

// maybeFail counts one attempt of op on path and returns the injected
// error, if any.
func (e *ErrorFS) maybeFail(op Op, path string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.counts[op]++
	var fail error
	for _, r := range e.mu.rules {
		if r.Op != op || r.done || (r.Match != nil && !r.Match(path)) {
			continue
		}
		r.seen++
		if r.seen < r.Nth {
			continue
		}
		if !r.Sticky {
			r.done = true
		}
		if fail == nil {
			fail = r.Err
			if fail == nil {
				fail = ErrInjected
			}
		}
	}
	return fail
}

// OpenFile implements FS.
func (e *ErrorFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if flag&os.O_CREATE != 0 {
		if err := e.maybeFail(OpCreate, name); err != nil {
			return nil, pathErr("open", name, err)
		}
	}
	f, err := e.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &errorFile{File: f, fs: e, name: name}, nil
}

// Create implements FS.
func (e *ErrorFS) Create(name string) (File, error) {
	if err := e.maybeFail(OpCreate, name); err != nil {
		return nil, pathErr("create", name, err)
	}
	f, err := e.inner.Create(name)
	if err != nil {
		return nil, err
	}
	return &errorFile{File: f, fs: e, name: name}, nil
}

// Open implements FS.
func (e *ErrorFS) Open(name string) (File, error) {
	f, err := e.inner.Open(name)
	if err != nil {
		return nil, err
	}
	return &errorFile{File: f, fs: e, name: name}, nil
}

// ReadDir implements FS.
func (e *ErrorFS) ReadDir(name string) ([]fs.DirEntry, error) { return e.inner.ReadDir(name) }

// Rename implements FS.
func (e *ErrorFS) Rename(oldname, newname string) error {
	if err := e.maybeFail(OpRename, oldname); err != nil {
		return &fs.PathError{Op: "rename", Path: oldname, Err: err}
	}
	return e.inner.Rename(oldname, newname)
}

// Remove implements FS.
func (e *ErrorFS) Remove(name string) error {
	if err := e.maybeFail(OpRemove, name); err != nil {
		return pathErr("remove", name, err)
	}
	return e.inner.Remove(name)
}

// RemoveAll implements FS.
func (e *ErrorFS) RemoveAll(name string) error {
	if err := e.maybeFail(OpRemove, name); err != nil {
		return pathErr("removeall", name, err)
	}
	return e.inner.RemoveAll(name)
}

// MkdirAll implements FS.
func (e *ErrorFS) MkdirAll(name string, perm fs.FileMode) error { return e.inner.MkdirAll(name, perm) }

// Stat implements FS.
func (e *ErrorFS) Stat(name string) (fs.FileInfo, error) { return e.inner.Stat(name) }

// SyncDir implements FS.
func (e *ErrorFS) SyncDir(name string) error {
	if err := e.maybeFail(OpSyncDir, name); err != nil {
		return pathErr("syncdir", name, err)
	}
	return e.inner.SyncDir(name)
}

type errorFile struct {
	File
	fs   *ErrorFS
	name string
}

func (f *errorFile) Write(p []byte) (int, error) {
	if err := f.fs.maybeFail(OpWrite, f.name); err != nil {
		return 0, pathErr("write", f.name, err)
	}
	return f.File.Write(p)
}

func (f *errorFile) Sync() error {
	if err := f.fs.maybeFail(OpSync, f.name); err != nil {
		return pathErr("sync", f.name, err)
	}
	return f.File.Sync()
}

func (f *errorFile) Truncate(size int64) error {
	if err := f.fs.maybeFail(OpTruncate, f.name); err != nil {
		return pathErr("truncate", f.name, err)
	}
	return f.File.Truncate(size)
}
