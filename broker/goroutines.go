package broker

import (
	"context"
	"runtime/pprof"
	"sync"
)

// goroutines starts and tracks every goroutine the broker owns, so shutdown
// can wait for all of them. Once closed it refuses new ones.
type goroutines struct {
	wg sync.WaitGroup
	mu struct {
		sync.Mutex
		closed bool
	}
}

// Go runs fn in a new goroutine labelled name (visible in pprof). It reports
// false, without running fn, after close.
func (g *goroutines) Go(name string, fn func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.closed {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		pprof.Do(context.Background(), pprof.Labels("sluice", name), func(context.Context) { fn() })
	}()
	return true
}

// close refuses new goroutines; wait then waits for the running ones.
func (g *goroutines) close() {
	g.mu.Lock()
	g.mu.closed = true
	g.mu.Unlock()
}

func (g *goroutines) wait() { g.wg.Wait() }
