// Package vfs is the file-system seam of package storage: every file the
// storage layer touches goes through the FS interface, so tests can run the
// same code against the operating system (OS), an in-memory tree that
// simulates power loss (NewCrashableMem, CrashClone), or a wrapper that
// fails chosen operations (NewErrorFS).
//
// # Durability model
//
// The interface follows POSIX: File.Write reaches the page cache,
// File.Sync makes a file's contents durable, and changes to a directory
// (create, remove, rename) are durable only after SyncDir on that
// directory. Code that wants a new file to survive a crash must therefore
// Sync the file and then SyncDir its parent, and an atomic replacement is
// write temp, Sync, Rename, SyncDir (see storage's checkpoint files).
//
// The crashable MemFS implements exactly this model: CrashClone keeps each
// file's contents as of its last Sync and each directory's entries as of its
// last SyncDir, and throws the rest away. CrashCloneRandom keeps a random
// part of the unsynced state too, which produces torn and zero-filled tails
// like a real disk.
//
// # Example
//
//	mem := vfs.NewCrashableMem()
//	f, _ := mem.Create("/d/x")      // parent created earlier with MkdirAll
//	f.Write([]byte("hello"))
//	f.Sync()
//	after := mem.CrashClone()       // "/d/x" is gone unless "/d" was SyncDir'd
package vfs
