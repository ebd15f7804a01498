package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errListenerUsed means kfake asked for a second listener; --serve-fake
// runs exactly one broker on the one address it was given.
var errListenerUsed = errors.New("sluice-bench: kfake asked for a second listener")

// serveFake runs franz-go's kfake as a one-broker cluster on addr until ctx
// ends (SIGINT or SIGTERM in main). It keeps everything in memory. kfake
// itself always binds 127.0.0.1 on a port it is given; we hand it a listener
// on addr instead, so addr is also what it advertises in Metadata and must
// be an address clients can dial (not ":port").
//
// With releaseMemory, the heap freed by deleted topics is handed back to
// the operating system shortly after each DeleteTopics (see
// releaseAfterDeletes), outside any measured phase.
func serveFake(ctx context.Context, addr string, releaseMemory bool, stderr io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve-fake: %w", err)
	}
	given := false
	listen := func(string, string) (net.Listener, error) {
		if given {
			return nil, errListenerUsed
		}
		given = true
		return ln, nil
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.ListenFn(listen))
	if err != nil {
		ln.Close()
		return fmt.Errorf("serve-fake: start kfake: %w", err)
	}
	fmt.Fprintf(stderr, "sluice-bench: kfake reference broker on %s, pid %d; SIGINT or SIGTERM stops it\n",
		strings.Join(cluster.ListenAddrs(), ","), os.Getpid())
	if releaseMemory {
		releaseAfterDeletes(ctx, cluster)
	}
	<-ctx.Done()
	cluster.Close()
	return nil
}

// releaseAfterDeletes returns the fake's free heap to the operating system
// a moment after every DeleteTopics request, until ctx ends.
//
// Why: the benchmark deletes its topic after every cell. Sluice's data of
// that topic was page cache, which goes back to the kernel; kfake's was Go
// heap, which the Go runtime keeps for reuse. On a virtual machine whose
// free memory is handed back to the host (free page reporting), writing
// into memory that was given back costs several times more than writing
// into memory a process kept, so without this the reference would write
// each cell into warm memory it kept from the previous cell while Sluice
// writes into cold memory. With it, both start each cell from the kernel's
// free memory. The release runs between cells, not during a measured phase.
func releaseAfterDeletes(ctx context.Context, cluster *kfake.Cluster) {
	deleted := make(chan struct{}, 1)
	cluster.ControlKey(int16(kmsg.DeleteTopics), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case deleted <- struct{}{}:
		default:
		}
		return nil, nil, false // observe only; kfake handles the request
	})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-deleted:
			}
			select { // let kfake finish the deletion first
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			debug.FreeOSMemory()
		}
	}()
}

// freePorts prints n distinct TCP ports that were free on 127.0.0.1 a moment
// ago, space separated. All n listeners are open at once, so the ports
// differ; another process may still take one before the caller binds it.
func freePorts(n int, stdout io.Writer) error {
	var ports []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("free port: %w", err)
		}
		defer ln.Close()
		_, port, err := net.SplitHostPort(ln.Addr().String())
		if err != nil {
			return fmt.Errorf("free port: %w", err)
		}
		ports = append(ports, port)
	}
	_, err := fmt.Fprintln(stdout, strings.Join(ports, " "))
	return err
}
