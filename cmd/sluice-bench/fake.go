package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
)

// errListenerUsed means kfake asked for a second listener; --serve-fake
// runs exactly one broker on the one address it was given.
var errListenerUsed = errors.New("sluice-bench: kfake asked for a second listener")

// serveFake runs franz-go's kfake as a one-broker cluster on addr until ctx
// ends (SIGINT or SIGTERM in main). It keeps everything in memory. kfake
// itself always binds 127.0.0.1 on a port it is given; we hand it a listener
// on addr instead, so addr is also what it advertises in Metadata and must
// be an address clients can dial (not ":port").
func serveFake(ctx context.Context, addr string, stderr io.Writer) error {
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
	<-ctx.Done()
	cluster.Close()
	return nil
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
