package broker

import (
	"context"
	"errors"
	"time"

	"github.com/sluicedev/sluice/metadata"
)

// The controller is one broker elected through etcd (an election on a
// lease, so a dead controller's candidacy vanishes with its lease and
// another broker takes over). Metadata and DescribeCluster name it. Its
// duties are in controller_loop.go.

// campaign keeps this broker a candidate for controller until ctx ends:
// win, serve until the leadership is lost, then stand again.
func (b *Broker) campaign(ctx context.Context) {
	for ctx.Err() == nil {
		lead, err := b.meta.Campaign(ctx, b.cfg.NodeID)
		if err != nil {
			if ctx.Err() == nil {
				b.log.Warn("controller campaign failed; retrying", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		b.isController.Store(true)
		b.controllerNode.Store(b.cfg.NodeID)
		b.log.Info("elected controller", "epoch", lead.Epoch())
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		if !b.goroutines.Go("controller", func() { defer close(done); b.runController(cctx) }) {
			close(done)
		}
		select {
		case <-ctx.Done():
		case <-lead.Lost():
			b.log.Warn("lost controller leadership", "err", lead.Err())
		}
		cancel()
		<-done
		b.isController.Store(false)
		_ = lead.Close()
	}
}

// watchController refreshes which broker is controller, for Metadata.
func (b *Broker) watchController(ctx context.Context) {
	for ctx.Err() == nil {
		id, _, err := b.meta.Controller(ctx)
		switch {
		case err == nil:
			b.controllerNode.Store(id)
		case errors.Is(err, metadata.ErrNoController):
			b.controllerNode.Store(-1)
		}
		sleepCtx(ctx, time.Second)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// controllerID is the broker Metadata names as controller: the elected one,
// or this broker while no election result is known yet (a client must
// always be given a live broker).
func (b *Broker) controllerID() int32 {
	if id := b.controllerNode.Load(); id >= 0 {
		return id
	}
	return b.cfg.NodeID
}
