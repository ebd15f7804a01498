package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MemFS is an in-memory FS. Relative and absolute names address the same
// tree ("a/b" and "/a/b" are one file). All operations serialize on one
// mutex: it is built for tests, not speed.
//
// A crashable MemFS (NewCrashableMem) also remembers what has been made
// durable: file contents as of the last File.Sync and directory entries as
// of the last SyncDir. CrashClone returns the state a machine would find
// after losing power now, the way pebble's vfs.NewCrashableMem does.
type MemFS struct {
	mu        sync.Mutex
	root      *memNode
	crashable bool
}

// memNode is an inode: a file or a directory. A node may be reachable
// through several names after an unsynced rename, like a hard link.
type memNode struct {
	dir     bool
	mode    fs.FileMode
	modTime time.Time

	// File contents. The durable contents are synced when diverged, else
	// data[:syncedLen]: while only appends happen past syncedLen, no copy
	// is needed.
	data      []byte
	synced    []byte
	syncedLen int
	diverged  bool

	// Directory entries, live and as of the last SyncDir.
	children       map[string]*memNode
	syncedChildren map[string]*memNode
}

// NewMem returns an empty in-memory FS whose CrashClone loses nothing.
func NewMem() *MemFS { return &MemFS{root: newDir()} }

// NewCrashableMem returns an empty in-memory FS that tracks durability, so
// CrashClone drops unsynced data and unsynced directory entries.
func NewCrashableMem() *MemFS { return &MemFS{root: newDir(), crashable: true} }

func newDir() *memNode {
	return &memNode{
		dir: true, mode: fs.ModeDir | 0o755, modTime: time.Now(),
		children: map[string]*memNode{}, syncedChildren: map[string]*memNode{},
	}
}

// durable returns the file contents that survive a crash.
func (n *memNode) durable() []byte {
	if n.diverged {
		return n.synced
	}
	return n.data[:n.syncedLen]
}

// protect copies the durable contents before a change below syncedLen.
func (n *memNode) protect(from int64) {
	if !n.diverged && from < int64(n.syncedLen) {
		n.synced = bytes.Clone(n.data[:n.syncedLen])
		n.diverged = true
	}
}

func (n *memNode) sync() {
	n.synced, n.diverged, n.syncedLen = nil, false, len(n.data)
}

func splitPath(name string) []string {
	clean := strings.Trim(filepath.ToSlash(filepath.Clean(name)), "/")
	if clean == "" || clean == "." {
		return nil
	}
	return strings.Split(clean, "/")
}

func pathErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

// walk returns the node for parts; mu must be held.
func (m *MemFS) walkLocked(parts []string) (*memNode, bool) {
	n := m.root
	for _, p := range parts {
		if !n.dir {
			return nil, false
		}
		c, ok := n.children[p]
		if !ok {
			return nil, false
		}
		n = c
	}
	return n, true
}

// parentLocked returns the directory holding name and the last element.
func (m *MemFS) parentLocked(op, name string) (*memNode, string, error) {
	parts := splitPath(name)
	if len(parts) == 0 {
		return nil, "", pathErr(op, name, fs.ErrInvalid)
	}
	dir, ok := m.walkLocked(parts[:len(parts)-1])
	if !ok || !dir.dir {
		return nil, "", pathErr(op, name, fs.ErrNotExist)
	}
	return dir, parts[len(parts)-1], nil
}

// OpenFile implements FS.
func (m *MemFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parentLocked("open", name)
	if err != nil {
		return nil, err
	}
	n, ok := dir.children[base]
	switch {
	case ok && n.dir:
		return nil, pathErr("open", name, errors.New("is a directory"))
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", name, fs.ErrExist)
	case !ok && flag&os.O_CREATE == 0:
		return nil, pathErr("open", name, fs.ErrNotExist)
	case !ok:
		n = &memNode{mode: perm, modTime: time.Now()}
		dir.children[base] = n
	}
	writable := flag&(os.O_WRONLY|os.O_RDWR) != 0
	if flag&os.O_TRUNC != 0 && writable {
		n.protect(0)
		n.data = n.data[:0]
		n.modTime = time.Now()
	}
	return &memFile{fs: m, n: n, name: name, writable: writable, appendOnly: flag&os.O_APPEND != 0}, nil
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	return m.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
}

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) { return m.OpenFile(name, os.O_RDONLY, 0) }

// ReadDir implements FS.
func (m *MemFS) ReadDir(name string) ([]fs.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.walkLocked(splitPath(name))
	if !ok || !n.dir {
		return nil, pathErr("readdir", name, fs.ErrNotExist)
	}
	names := make([]string, 0, len(n.children))
	for k := range n.children {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]fs.DirEntry, len(names))
	for i, k := range names {
		out[i] = fs.FileInfoToDirEntry(n.children[k].info(k))
	}
	return out, nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	odir, obase, err := m.parentLocked("rename", oldname)
	if err != nil {
		return err
	}
	n, ok := odir.children[obase]
	if !ok {
		return pathErr("rename", oldname, fs.ErrNotExist)
	}
	ndir, nbase, err := m.parentLocked("rename", newname)
	if err != nil {
		return err
	}
	if t, ok := ndir.children[nbase]; ok && t.dir && len(t.children) > 0 {
		return pathErr("rename", newname, errors.New("directory not empty"))
	}
	delete(odir.children, obase)
	ndir.children[nbase] = n
	return nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parentLocked("remove", name)
	if err != nil {
		return err
	}
	n, ok := dir.children[base]
	if !ok {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	if n.dir && len(n.children) > 0 {
		return pathErr("remove", name, errors.New("directory not empty"))
	}
	delete(dir.children, base)
	return nil
}

// RemoveAll implements FS.
func (m *MemFS) RemoveAll(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parentLocked("removeall", name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	delete(dir.children, base)
	return nil
}

// MkdirAll implements FS.
func (m *MemFS) MkdirAll(name string, _ fs.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.root
	for _, p := range splitPath(name) {
		c, ok := n.children[p]
		if !ok {
			c = newDir()
			n.children[p] = c
		} else if !c.dir {
			return pathErr("mkdir", name, errors.New("not a directory"))
		}
		n = c
	}
	return nil
}

// Stat implements FS.
func (m *MemFS) Stat(name string) (fs.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	parts := splitPath(name)
	n, ok := m.walkLocked(parts)
	if !ok {
		return nil, pathErr("stat", name, fs.ErrNotExist)
	}
	base := "/"
	if len(parts) > 0 {
		base = parts[len(parts)-1]
	}
	return n.info(base), nil
}

// SyncDir implements FS.
func (m *MemFS) SyncDir(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.walkLocked(splitPath(name))
	if !ok || !n.dir {
		return pathErr("syncdir", name, fs.ErrNotExist)
	}
	n.syncedChildren = make(map[string]*memNode, len(n.children))
	for k, v := range n.children {
		n.syncedChildren[k] = v
	}
	return nil
}

// CrashClone returns a new crashable MemFS holding what would survive a
// power loss now: file contents as of each file's last Sync, reachable
// through directory entries as of each directory's last SyncDir. On a
// MemFS from NewMem everything survives. Open handles on m are unaffected.
func (m *MemFS) CrashClone() *MemFS {
	return m.crashClone(nil)
}

// CrashCloneRandom is CrashClone where unsynced state survives partially,
// chosen by rng, as on real disks: each unsynced directory change is kept
// or lost independently, and each file keeps its synced bytes plus a random
// prefix of the bytes appended since (sometimes zero-filled, as when the
// file size reached disk before the data). Synced data always survives.
func (m *MemFS) CrashCloneRandom(rng *rand.Rand) *MemFS {
	return m.crashClone(rng)
}

func (m *MemFS) crashClone(rng *rand.Rand) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	memo := map[*memNode]*memNode{}
	return &MemFS{root: m.cloneNode(m.root, rng, memo), crashable: true}
}

func (m *MemFS) cloneNode(n *memNode, rng *rand.Rand, memo map[*memNode]*memNode) *memNode {
	if c, ok := memo[n]; ok {
		return c
	}
	if !n.dir {
		c := &memNode{mode: n.mode, modTime: n.modTime, data: m.survivingData(n, rng)}
		c.sync()
		memo[n] = c
		return c
	}
	c := newDir()
	c.mode, c.modTime = n.mode, n.modTime
	memo[n] = c
	for name, child := range m.survivingEntries(n, rng) {
		c.children[name] = m.cloneNode(child, rng, memo)
		c.syncedChildren[name] = c.children[name]
	}
	return c
}

func (m *MemFS) survivingData(n *memNode, rng *rand.Rand) []byte {
	if !m.crashable {
		return bytes.Clone(n.data)
	}
	durable := n.durable()
	if rng == nil {
		return bytes.Clone(durable)
	}
	if n.diverged {
		if rng.IntN(2) == 0 {
			return bytes.Clone(durable)
		}
		return bytes.Clone(n.data)
	}
	extra := len(n.data) - n.syncedLen
	if extra <= 0 {
		return bytes.Clone(durable)
	}
	keep := n.syncedLen + rng.IntN(extra+1)
	out := bytes.Clone(n.data[:keep])
	if rng.IntN(5) == 0 {
		clear(out[n.syncedLen:])
	}
	return out
}

func (m *MemFS) survivingEntries(n *memNode, rng *rand.Rand) map[string]*memNode {
	if !m.crashable {
		return n.children
	}
	if rng == nil {
		return n.syncedChildren
	}
	names := make([]string, 0, len(n.children)+len(n.syncedChildren))
	for k := range n.children {
		names = append(names, k)
	}
	for k := range n.syncedChildren {
		if _, ok := n.children[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	out := make(map[string]*memNode, len(names))
	for _, k := range names {
		live, inLive := n.children[k]
		synced, inSynced := n.syncedChildren[k]
		switch {
		case inLive && inSynced && live == synced:
			out[k] = live
		case inLive && inSynced:
			out[k] = []*memNode{live, synced}[rng.IntN(2)]
		case rng.IntN(2) == 0 && inLive:
			out[k] = live
		case rng.IntN(2) == 0 && inSynced:
			out[k] = synced
		}
	}
	return out
}

// String lists every file with its live and durable sizes, for test
// failure messages.
func (m *MemFS) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sb strings.Builder
	var walk func(prefix string, n *memNode)
	walk = func(prefix string, n *memNode) {
		names := make([]string, 0, len(n.children))
		for k := range n.children {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			c := n.children[k]
			p := path.Join(prefix, k)
			if c.dir {
				sb.WriteString(p + "/\n")
				walk(p, c)
				continue
			}
			sb.WriteString(p)
			sb.WriteString(" live=")
			sb.WriteString(strconv.Itoa(len(c.data)))
			sb.WriteString(" durable=")
			sb.WriteString(strconv.Itoa(len(c.durable())))
			sb.WriteString("\n")
		}
	}
	walk("/", m.root)
	return sb.String()
}

func (n *memNode) info(name string) fs.FileInfo {
	return memInfo{name: name, size: int64(len(n.data)), mode: n.mode, modTime: n.modTime, dir: n.dir}
}

type memInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
	dir     bool
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return i.mode }
func (i memInfo) ModTime() time.Time { return i.modTime }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }

// memFile is an open handle. It keeps its node after the name is removed,
// as POSIX file descriptors do.
type memFile struct {
	fs         *MemFS
	n          *memNode
	name       string
	pos        int64
	writable   bool
	appendOnly bool
	closed     bool
}

func (f *memFile) check(op string, write bool) error {
	if f.closed {
		return pathErr(op, f.name, fs.ErrClosed)
	}
	if write && !f.writable {
		return pathErr(op, f.name, fs.ErrPermission)
	}
	return nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("read", f.name, fs.ErrInvalid)
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	n := f.n
	if f.appendOnly {
		f.pos = int64(len(n.data))
	}
	n.protect(f.pos)
	if end := f.pos + int64(len(p)); end > int64(len(n.data)) {
		n.data = slices.Grow(n.data, int(end)-len(n.data))[:end]
	}
	copy(n.data[f.pos:], p)
	f.pos += int64(len(p))
	n.modTime = time.Now()
	return len(p), nil
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("sync", false); err != nil {
		return err
	}
	f.n.sync()
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", f.name, fs.ErrInvalid)
	}
	n := f.n
	n.protect(size)
	if size <= int64(len(n.data)) {
		n.data = n.data[:size]
	} else {
		n.data = append(n.data, make([]byte, size-int64(len(n.data)))...)
	}
	n.modTime = time.Now()
	return nil
}

func (f *memFile) Stat() (fs.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("stat", false); err != nil {
		return nil, err
	}
	return f.n.info(path.Base(filepath.ToSlash(f.name))), nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return pathErr("close", f.name, fs.ErrClosed)
	}
	f.closed = true
	return nil
}
