package broker

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestAdmissionParseIPOverrides(t *testing.T) {
	t.Parallel()
	lookup := func(h string) ([]string, error) {
		if h == "db.example" {
			return []string{"10.0.0.7", "::ffff:10.0.0.8"}, nil
		}
		return nil, errors.New("no such host")
	}
	got, err := parseIPOverrides(" 127.0.0.1:5, [::1]:7,db.example:0 ,fe80::1:3", lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"127.0.0.1": 5, "::1": 7, "10.0.0.7": 0, "10.0.0.8": 0, "fe80::1": 3}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for a, n := range want {
		if got[netip.MustParseAddr(a)] != n {
			t.Errorf("%s: got %d, want %d (all: %v)", a, got[netip.MustParseAddr(a)], n, got)
		}
	}
	for _, bad := range []string{"127.0.0.1", "127.0.0.1:x", "127.0.0.1:-1", ":3"} {
		if err := validIPOverrides(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := parseIPOverrides("nowhere.example:1", lookup); err == nil {
		t.Error("an unresolvable host was not reported")
	}
}

func TestAdmissionConnCounterLimits(t *testing.T) {
	t.Parallel()
	a, b, vip := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.9")
	l := &limits{maxConns: 5, maxPerIP: 2, perIP: map[netip.Addr]int{vip: 3}}
	c := newConnCounter()
	admit := func(addr netip.Addr, wantReason string) {
		t.Helper()
		reason, ok := c.admit(addr, l)
		if ok != (wantReason == "") || reason != wantReason {
			t.Fatalf("admit %s: %q %v, want %q", addr, reason, ok, wantReason)
		}
	}
	admit(a, "")
	admit(a, "")
	admit(a, rejectPerIP) // a limit of 2 admits 2
	admit(vip, "")
	admit(vip, "")
	admit(vip, "") // its override is 3
	admit(b, rejectMaxConns)
	c.done(a)
	admit(b, "")
	admit(b, rejectMaxConns)
	c.done(vip)
	c.done(vip)
	c.done(vip)
	if _, ok := c.mu.perIP[vip]; ok {
		t.Fatal("an address with no connections left is still tracked")
	}
	admit(b, "")
}

func TestAdmissionTokenBucketPacesCreation(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	var tb tokenBucket
	const rate = 4
	for i := range rate { // a burst of one second's worth
		if d := tb.delay(now, rate); d != 0 {
			t.Fatalf("connection %d of the burst delayed %v", i, d)
		}
		tb.take(now, rate)
	}
	if d := tb.delay(now, rate); d != 250*time.Millisecond {
		t.Fatalf("after the burst: delay %v, want 250ms", d)
	}
	now = now.Add(100 * time.Millisecond)
	if d := tb.delay(now, rate); d != 150*time.Millisecond {
		t.Fatalf("100ms later: delay %v, want 150ms", d)
	}
	accepted := 0
	for end := now.Add(10 * time.Second); now.Before(end); now = now.Add(time.Millisecond) {
		if tb.delay(now, rate) == 0 {
			tb.take(now, rate)
			accepted++
		}
	}
	if accepted < 39 || accepted > 41 {
		t.Fatalf("accepted %d in 10 s at %d a second", accepted, rate)
	}
	if d := tb.delay(now, 0); d <= 0 {
		t.Fatal("a rate of 0 accepted a connection")
	}
}

func TestAdmissionBudgetFIFOAndCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBudget(10, 0, 0)
	if !b.fits(10) || b.fits(11) {
		t.Fatal("fits is wrong at the size")
	}
	if err := b.acquire(ctx, 8); err != nil {
		t.Fatal(err)
	}
	big := make(chan error, 1)
	go func() { big <- b.acquire(ctx, 5) }()
	waitUntil(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.mu.waiters) == 1 })
	// A small request that would fit must queue behind the waiting one.
	small := make(chan error, 1)
	go func() { small <- b.acquire(ctx, 1) }()
	waitUntil(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.mu.waiters) == 2 })
	cctx, cancel := context.WithCancel(ctx)
	cancelled := make(chan error, 1)
	go func() { cancelled <- b.acquire(cctx, 1) }()
	waitUntil(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.mu.waiters) == 3 })
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled acquire: %v", err)
	}
	b.release(8)
	if err := <-big; err != nil {
		t.Fatal(err)
	}
	if err := <-small; err != nil {
		t.Fatal(err)
	}
	if got := b.inUse(); got != 6 {
		t.Fatalf("in use %d, want 6 (the cancelled waiter holds nothing)", got)
	}
	b.force(10) // existing memory is counted even over the size
	done := make(chan error, 1)
	go func() { done <- b.acquire(ctx, 1) }()
	waitUntil(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.mu.waiters) == 1 })
	b.release(16)
	if err := <-done; err != nil || b.inUse() != 1 {
		t.Fatalf("after release: %v, in use %d", err, b.inUse())
	}
	var unlimited *budget
	if err := unlimited.acquire(ctx, 1<<40); err != nil || !unlimited.fits(1<<40) {
		t.Fatal("a nil budget limits")
	}
}

// waitUntil polls cond until it holds, failing the test after a while.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}

func TestAdmissionBudgetSmallTakesUseHeadroom(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBudget(100, 4, 6)
	if err := b.acquire(ctx, 100); err != nil {
		t.Fatal(err)
	}
	big := make(chan error, 1)
	go func() { big <- b.acquire(ctx, 50) }()
	waitUntil(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.mu.waiters) == 1 })
	for range 3 { // 4 + 2 of the 6 units of headroom: not queued behind the large take
		if err := b.acquire(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.inUse(); got != 106 {
		t.Fatalf("in use %d, want 106", got)
	}
	small := make(chan error, 1)
	go func() { small <- b.acquire(ctx, 1) }() // over the headroom: queues
	waitUntil(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.mu.waiters) == 2 })
	b.release(100)
	if err := <-big; err != nil {
		t.Fatal(err)
	}
	if err := <-small; err != nil {
		t.Fatal(err)
	}
	if got := b.inUse(); got != 57 {
		t.Fatalf("in use %d, want 57", got)
	}
}
