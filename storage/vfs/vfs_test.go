package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// fsSuite runs the same behavioural checks against every implementation.
func fsSuite(t *testing.T, newFS func(t *testing.T) (FS, string)) {
	t.Run("WriteReadTruncate", func(t *testing.T) {
		t.Parallel()
		fsys, root := newFS(t)
		name := filepath.Join(root, "f")
		f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, "hello ")
		mustWrite(t, f, "world")
		buf := make([]byte, 5)
		if n, err := f.ReadAt(buf, 6); err != nil || n != 5 || string(buf) != "world" {
			t.Fatalf("ReadAt: %d %v %q", n, err, buf)
		}
		if _, err := f.ReadAt(buf, 9); !errors.Is(err, io.EOF) {
			t.Fatalf("short ReadAt: %v", err)
		}
		if err := f.Truncate(5); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, "!") // O_APPEND writes land at the new end
		if st, err := f.Stat(); err != nil || st.Size() != 6 {
			t.Fatalf("Stat: %v %v", st, err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		g, err := fsys.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		all := make([]byte, 6)
		if _, err := g.ReadAt(all, 0); err != nil || string(all) != "hello!" {
			t.Fatalf("reopen: %q %v", all, err)
		}
		if _, err := g.Write([]byte("x")); err == nil {
			t.Fatal("write to read-only handle succeeded")
		}
	})
	t.Run("DirOps", func(t *testing.T) {
		t.Parallel()
		fsys, root := newFS(t)
		d := filepath.Join(root, "a", "b")
		if err := fsys.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"z", "y"} {
			f, err := fsys.Create(filepath.Join(d, n))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		if _, err := fsys.OpenFile(filepath.Join(d, "z"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("O_EXCL: %v", err)
		}
		if err := fsys.Rename(filepath.Join(d, "z"), filepath.Join(d, "x")); err != nil {
			t.Fatal(err)
		}
		ents, err := fsys.ReadDir(d)
		if err != nil || len(ents) != 2 || ents[0].Name() != "x" || ents[1].Name() != "y" {
			t.Fatalf("ReadDir: %v %v", ents, err)
		}
		if err := fsys.SyncDir(d); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Remove(filepath.Join(d, "x")); err != nil {
			t.Fatal(err)
		}
		if _, err := fsys.Stat(filepath.Join(d, "x")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Stat removed: %v", err)
		}
		if _, err := fsys.Open(filepath.Join(d, "nope")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open missing: %v", err)
		}
		if err := fsys.RemoveAll(filepath.Join(root, "a")); err != nil {
			t.Fatal(err)
		}
		if err := fsys.RemoveAll(filepath.Join(root, "a")); err != nil {
			t.Fatalf("RemoveAll of missing: %v", err)
		}
		if st, err := fsys.Stat(root); err != nil || !st.IsDir() {
			t.Fatalf("root: %v %v", st, err)
		}
	})
}

func mustWrite(t *testing.T, f File, s string) {
	t.Helper()
	if n, err := f.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("Write: %d %v", n, err)
	}
}

func TestFSSuiteOS(t *testing.T) {
	t.Parallel()
	fsSuite(t, func(t *testing.T) (FS, string) { return OS(), t.TempDir() })
}

func TestFSSuiteMem(t *testing.T) {
	t.Parallel()
	fsSuite(t, func(t *testing.T) (FS, string) {
		m := NewCrashableMem()
		if err := m.MkdirAll("/root", 0o755); err != nil {
			t.Fatal(err)
		}
		return m, "/root"
	})
}

func TestFSSuiteErrorFSPassThrough(t *testing.T) {
	t.Parallel()
	fsSuite(t, func(t *testing.T) (FS, string) { return NewErrorFS(OS()), t.TempDir() })
}

func readAll(t *testing.T, fsys FS, name string) []byte {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	st, _ := f.Stat()
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return b
}

func TestMemCrashCloneDropsUnsynced(t *testing.T) {
	t.Parallel()
	m := NewCrashableMem()
	if err := m.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	f, _ := m.OpenFile("/d/log", os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	mustWrite(t, f, "synced")
	f.Sync()
	mustWrite(t, f, "-lost")

	// The directory entry was never synced: the file is gone.
	if _, err := m.CrashClone().Stat("/d/log"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unsynced entry survived: %v", err)
	}
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	c := m.CrashClone()
	if got := readAll(t, c, "/d/log"); string(got) != "synced" {
		t.Fatalf("after crash %q", got)
	}

	// Truncating below the synced size is itself unsynced.
	f.Truncate(2)
	if got := readAll(t, m.CrashClone(), "/d/log"); string(got) != "synced" {
		t.Fatalf("unsynced truncate survived: %q", got)
	}
	f.Sync()
	if got := readAll(t, m.CrashClone(), "/d/log"); string(got) != "sy" {
		t.Fatalf("synced truncate lost: %q", got)
	}

	// An unsynced rename and an unsynced remove are undone.
	m.Rename("/d/log", "/d/renamed")
	if _, err := m.CrashClone().Stat("/d/log"); err != nil {
		t.Fatalf("unsynced rename took effect: %v", err)
	}
	m.SyncDir("/d")
	m.Remove("/d/renamed")
	if _, err := m.CrashClone().Stat("/d/renamed"); err != nil {
		t.Fatalf("unsynced remove took effect: %v", err)
	}
	// The handle outlives its name, as on POSIX.
	mustWrite(t, f, "x")
	if _, err := f.Stat(); err != nil {
		t.Fatal(err)
	}
}

func TestMemCrashCloneRandomKeepsSynced(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		m := NewCrashableMem()
		m.MkdirAll("/d", 0o755)
		m.SyncDir("/")
		m.SyncDir("/d")
		f, _ := m.OpenFile("/d/f", os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
		m.SyncDir("/d")
		mustWrite(t, f, "durable")
		f.Sync()
		mustWrite(t, f, "volatile")
		got := readAll(t, m.CrashCloneRandom(rng), "/d/f")
		if !bytes.HasPrefix(got, []byte("durable")) || len(got) > len("durablevolatile") {
			t.Fatalf("iteration %d: %q", i, got)
		}
		tail := got[len("durable"):]
		if !bytes.HasPrefix([]byte("volatile"), tail) && !bytes.Equal(tail, make([]byte, len(tail))) {
			t.Fatalf("iteration %d: tail %q is neither a prefix nor zeros", i, tail)
		}
	}
}

func TestMemNonCrashableKeepsEverything(t *testing.T) {
	t.Parallel()
	m := NewMem()
	m.MkdirAll("/d", 0o755)
	f, _ := m.Create("/d/f")
	mustWrite(t, f, "abc")
	if got := readAll(t, m.CrashClone(), "/d/f"); string(got) != "abc" {
		t.Fatalf("%q", got)
	}
	if m.String() == "" {
		t.Fatal("empty String")
	}
}

func TestErrorFSFailsNth(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		rule Rule
		op   func(fsys FS, f File) error
		// fails lists which of five attempts must fail.
		fails [5]bool
	}{
		{"second sync", Rule{Op: OpSync, Nth: 2}, func(_ FS, f File) error { return f.Sync() }, [5]bool{false, true}},
		{"sticky write", Rule{Op: OpWrite, Nth: 3, Sticky: true}, func(_ FS, f File) error { _, err := f.Write([]byte("x")); return err }, [5]bool{false, false, true, true, true}},
		{"first rename", Rule{Op: OpRename, Nth: 1}, func(fsys FS, _ File) error { return fsys.Rename("/f", "/f") }, [5]bool{true}},
		{"syncdir filtered", Rule{Op: OpSyncDir, Nth: 1, Match: func(p string) bool { return p == "/other" }}, func(fsys FS, _ File) error { return fsys.SyncDir("/") }, [5]bool{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := NewErrorFS(NewCrashableMem())
			f, err := e.Create("/f")
			if err != nil {
				t.Fatal(err)
			}
			e.Add(tc.rule)
			for i, want := range tc.fails {
				err := tc.op(e, f)
				if want != (err != nil) {
					t.Fatalf("attempt %d: err %v, want failure %v", i+1, err, want)
				}
				if err != nil && !errors.Is(err, ErrInjected) {
					t.Fatalf("attempt %d: %v is not ErrInjected", i+1, err)
				}
			}
			if e.Count(tc.rule.Op) != 5 {
				t.Fatalf("count %d", e.Count(tc.rule.Op))
			}
		})
	}
}

func TestErrorFSCustomErrorAndReset(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	e := NewErrorFS(NewMem())
	e.FailNth(OpCreate, 1, boom)
	if _, err := e.Create("/x"); !errors.Is(err, boom) {
		t.Fatalf("create: %v", err)
	}
	e.Add(Rule{Op: OpRemove, Nth: 1, Sticky: true})
	e.Reset()
	if _, err := e.Create("/x"); err != nil {
		t.Fatal(err)
	}
	if err := e.Remove("/x"); err != nil {
		t.Fatalf("rule survived Reset: %v", err)
	}
}
