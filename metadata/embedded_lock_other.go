//go:build !unix

package metadata

// checkDirFree cannot probe etcd's lock on this platform; a data dir in
// use makes StartEmbedded wait instead of failing.
func checkDirFree(string) error { return nil }
