//go:build linux

package broker

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestSendfileReturnsItsError: a failing sendfile(2) (here a source file
// opened write-only, EBADF) is reported, not replaced by the socket
// poller's nil result.
func TestSendfileReturnsItsError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			_, _ = c.Read(make([]byte, 1))
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "seg"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	handled, err := sendfile(rc, f, 0, 4096)
	if !handled || err == nil {
		t.Fatalf("sendfile from a write-only file: handled %v err %v, want the sendfile error", handled, err)
	}
}
