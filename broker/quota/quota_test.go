package quota

import (
	"errors"
	"math"
	"testing"
	"time"
)

// fakeClock is a manual clock for the manager.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTest(t *testing.T) (*Manager, *fakeClock) {
	t.Helper()
	c := &fakeClock{t: time.Unix(1_000_000, 0)}
	return New(Config{Now: c.now}), c
}

func client(name string) Entity { return Entity{ClientID: Name{Name: name}} }

var defaultClient = Entity{ClientID: Name{Default: true}}

func TestQuotaWindowMath(t *testing.T) {
	t.Parallel()
	m, clk := newTest(t)
	m.SetQuotas(client("a"), map[Type]float64{Produce: 50})
	// One value from idle is measured over Samples-1 = 10 windows.
	u := m.Record(Produce, "", "a", 1000)
	if u.Throttle != 10*time.Second { // rate 100/s: (100-50)/50 * 10 s
		t.Fatalf("throttle %v, want 10s", u.Throttle)
	}
	// Within the quota: 400 bytes over 10 s is 40/s.
	clk.advance(12 * time.Second) // every window dropped
	if u := m.Record(Produce, "", "a", 400); u.Throttle != 0 {
		t.Fatalf("throttle %v within quota", u.Throttle)
	}
	// 11 windows of 1 s, 60 bytes each: after the 11th window began the
	// elapsed time is 10 s plus what passed of the 11th.
	m2, clk2 := newTest(t)
	m2.SetQuotas(client("a"), map[Type]float64{Produce: 50})
	for i := range 11 {
		u = m2.Record(Produce, "", "a", 60)
		if i < 10 {
			clk2.advance(time.Second)
		}
	}
	// Sum 660 over 10 s: rate 66/s, throttle (66-50)/50*10000 = 3200 ms.
	if u.Throttle != 3200*time.Millisecond {
		t.Fatalf("throttle after 11 windows %v, want 3.2s", u.Throttle)
	}
	clk2.advance(500 * time.Millisecond)
	// Sum 720 over 10.5 s: 68.57/s; (68.57-50)/50*10500 = 3900 ms.
	if u := m2.Record(Produce, "", "a", 60); u.Throttle != 3900*time.Millisecond {
		t.Fatalf("throttle %v, want 3.9s", u.Throttle)
	}
	// The first window (started at 0) is dropped once 11 s passed.
	clk2.advance(500 * time.Millisecond)
	r := m2.mu.sensors[Produce][tags{clientID: "a"}]
	rate, size := r.rate.measure(m2.nowMs(), 11, 1000)
	if size != 10000 || math.Abs(rate-66) > 1e-9 { // 660 of 720 remain, over 10 s
		t.Fatalf("rate %v over %d ms, want 66/s over 10 s", rate, size)
	}
}

func TestQuotaNoQuotaNoThrottle(t *testing.T) {
	t.Parallel()
	m, _ := newTest(t)
	if u := m.Record(Produce, "", "a", 1e12); u.Throttle != 0 {
		t.Fatalf("throttled without a quota: %v", u.Throttle)
	}
	m.SetQuotas(client("b"), map[Type]float64{Produce: 1})
	if u := m.Record(Produce, "", "a", 1e12); u.Throttle != 0 {
		t.Fatalf("a throttled by b's quota: %v", u.Throttle)
	}
	if u := m.Record(Fetch, "", "b", 1e12); u.Throttle != 0 {
		t.Fatalf("b's produce quota applied to fetches: %v", u.Throttle)
	}
	if m.sensorCount() != 0 {
		t.Fatalf("%d sensors without applicable quotas", m.sensorCount())
	}
}

func TestQuotaClientPrecedence(t *testing.T) {
	t.Parallel()
	m, _ := newTest(t)
	m.SetQuotas(defaultClient, map[Type]float64{Produce: 100, Fetch: 100})
	m.SetQuotas(client("vip"), map[Type]float64{Produce: 1000})
	limit := func(typ Type, c string) float64 {
		v, ok := m.MaxInWindow(typ, "", c)
		if !ok {
			return 0
		}
		return v / 10 // (Samples-1)*Window = 10 s
	}
	cases := []struct {
		typ    Type
		client string
		want   float64
	}{
		{Produce, "vip", 1000}, // specific client id over the default
		{Fetch, "vip", 100},    // each type resolved on its own
		{Produce, "other", 100},
		{Produce, "", 0}, // Kafka: an empty client id matches no client-id quota
	}
	for _, c := range cases {
		if got := limit(c.typ, c.client); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s for client %q: quota %v, want %v", c.typ.Key(), c.client, got, c.want)
		}
	}
	// The default is measured per client id: two clients at 90/s each are
	// both within a default of 100/s.
	for _, c := range []string{"x", "y"} {
		if u := m.Record(Produce, "", c, 900); u.Throttle != 0 {
			t.Fatalf("client %s throttled %v", c, u.Throttle)
		}
	}
	m.SetQuotas(client("vip"), nil)
	if got := limit(Produce, "vip"); got != 100 {
		t.Fatalf("after removing vip's quota: %v, want the default", got)
	}
}

func TestQuotaUserPrecedence(t *testing.T) {
	t.Parallel()
	u, du := Name{Name: "alice"}, Name{Default: true}
	c, dc := Name{Name: "app"}, Name{Default: true}
	// Kafka's order, most specific first.
	order := []Entity{{u, c}, {u, dc}, {User: u}, {du, c}, {du, dc}, {User: du}, {ClientID: c}, {ClientID: dc}}
	for skip := range order {
		m, _ := newTest(t)
		for i, e := range order[skip:] {
			m.SetQuotas(e, map[Type]float64{Produce: float64(10 * (skip + i + 1))})
		}
		got, ok := m.MaxInWindow(Produce, "alice", "app")
		if want := float64(10*(skip+1)) * 10; !ok || got != want {
			t.Errorf("with %v the most specific: quota window %v, want %v", order[skip], got, want)
		}
	}
	// Without a user only client-id entities apply.
	m, _ := newTest(t)
	m.SetQuotas(Entity{User: du}, map[Type]float64{Produce: 5})
	if _, ok := m.MaxInWindow(Produce, "", "app"); ok {
		t.Fatal("a user quota applied to a connection without a user")
	}
	// A user quota is shared by the user's clients; a user+client one is not.
	if u1 := m.Record(Produce, "bob", "c1", 40); u1.Throttle != 0 {
		t.Fatalf("first client throttled %v", u1.Throttle)
	}
	if u2 := m.Record(Produce, "bob", "c2", 40); u2.Throttle == 0 {
		t.Fatal("second client of the same user not throttled: the user quota is not shared")
	}
	m.SetQuotas(Entity{du, dc}, map[Type]float64{Produce: 5})
	if u3 := m.Record(Produce, "bob", "c3", 40); u3.Throttle != 0 {
		t.Fatalf("user+client quota not measured per client: %v", u3.Throttle)
	}
}

func TestQuotaDropUnrecords(t *testing.T) {
	t.Parallel()
	m, _ := newTest(t)
	m.SetQuotas(client("c"), map[Type]float64{Fetch: 100})
	u := m.Record(Fetch, "", "c", 5000)
	if u.Throttle == 0 {
		t.Fatal("5000 bytes over a 10 s window at 100/s not throttled")
	}
	u.Drop(u.Throttle)
	if u := m.Record(Fetch, "", "c", 900); u.Throttle != 0 {
		t.Fatalf("dropped value still counted: throttle %v", u.Throttle)
	}
	st := m.Stats()
	if len(st) != 1 || st[0].Recorded != 0 || st[0].Count != 1 || st[0].Throttled != u.Throttle.Seconds()+5*40 {
		// Throttle of the first: (500-100)/100*10 s = 40 s.
		if len(st) != 1 || st[0].Count != 1 || math.Abs(st[0].Throttled-40) > 1e-9 {
			t.Fatalf("stats %+v", st)
		}
	}
}

func TestQuotaRequestPercent(t *testing.T) {
	t.Parallel()
	m, _ := newTest(t)
	m.SetQuotas(client("c"), map[Type]float64{Request: 10}) // 10% of a thread
	// 500 ms of handling from idle: 50 percent-seconds over 10 s = 5%.
	if u := m.Record(Request, "", "c", Percent(500*time.Millisecond)); u.Throttle != 0 {
		t.Fatalf("5%% throttled: %v", u.Throttle)
	}
	// Another 1.5 s: 200 over 10 s = 20%, throttle (20-10)/10*10 s.
	if u := m.Record(Request, "", "c", Percent(1500*time.Millisecond)); u.Throttle != 10*time.Second {
		t.Fatalf("throttle %v, want 10s", u.Throttle)
	}
}

func TestQuotaStatsBoundedByConfiguredEntities(t *testing.T) {
	t.Parallel()
	m, clk := newTest(t)
	m.SetQuotas(defaultClient, map[Type]float64{Produce: 1e9})
	for i := range 1000 {
		u := m.Record(Produce, "", "client-"+string(rune('a'+i%26))+string(rune(i)), 10)
		u.Keep(u.Throttle)
	}
	st := m.Stats()
	if len(st) != 1 || st[0].Entity != defaultClient || st[0].Recorded != 10000 {
		t.Fatalf("stats %+v, want one entry for the default with 10000 bytes", st)
	}
	if n := m.sensorCount(); n != 1000 {
		t.Fatalf("%d sensors, want 1000", n)
	}
	// Idle sensors go once they know nothing any more.
	clk.advance(11 * time.Second)
	m.Record(Produce, "", "fresh", 1)
	if n := m.sensorCount(); n != 1 {
		t.Fatalf("%d sensors after the idle sweep, want 1", n)
	}
}

func TestQuotaMutationsStrict(t *testing.T) {
	t.Parallel()
	m, clk := newTest(t)
	m.SetQuotas(client("admin"), map[Type]float64{ControllerMutation: 2}) // burst 20
	q := m.Mutations("", "admin", true)
	if err := q.Record(30); err != nil { // bucket 20 >= 0: accepted, goes to -10
		t.Fatalf("first mutation refused: %v", err)
	}
	if q.Throttle() != 0 {
		t.Fatalf("strict accepted request throttled %v", q.Throttle())
	}
	if err := q.Record(1); !errors.Is(err, ErrThrottled) {
		t.Fatalf("second mutation: %v, want ErrThrottled", err)
	}
	if q.Throttle() != 5*time.Second { // 10 tokens at 2/s
		t.Fatalf("throttle %v, want 5s", q.Throttle())
	}
	clk.advance(2 * time.Second)
	if q.Throttle() != 3*time.Second {
		t.Fatalf("throttle after 2 s %v, want 3s", q.Throttle())
	}
	clk.advance(3 * time.Second)
	q2 := m.Mutations("", "admin", true)
	if err := q2.Record(1); err != nil {
		t.Fatalf("refused once the bucket refilled to 0: %v", err)
	}
	// Unrelated clients have no quota.
	if err := m.Mutations("", "other", true).Record(1000); err != nil {
		t.Fatal(err)
	}
}

func TestQuotaMutationsPermissive(t *testing.T) {
	t.Parallel()
	m, _ := newTest(t)
	m.SetQuotas(defaultClient, map[Type]float64{ControllerMutation: 1}) // burst 10
	q := m.Mutations("", "old-admin", false)
	for range 3 {
		if err := q.Record(10); err != nil {
			t.Fatalf("permissive quota refused: %v", err)
		}
	}
	if q.Throttle() != 20*time.Second { // -20 tokens at 1/s
		t.Fatalf("throttle %v, want 20s", q.Throttle())
	}
	q.Done(q.Throttle())
	st := m.Stats()
	if len(st) != 1 || st[0].Recorded != 30 || st[0].Count != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestQuotaProducerHeldToQuota simulates a client offering three times its
// quota that waits out every throttle, as KIP-219 clients do: over 20 s it
// is held close to the quota.
func TestQuotaProducerHeldToQuota(t *testing.T) {
	t.Parallel()
	m, clk := newTest(t)
	quota, batch := 100_000.0, 16_000.0
	m.SetQuotas(client("p"), map[Type]float64{Produce: quota})
	interval := time.Duration(batch * float64(time.Second) / (3 * quota))
	start := clk.t
	var sent float64
	for clk.t.Sub(start) < 20*time.Second {
		u := m.Record(Produce, "", "p", batch)
		sent += batch
		clk.advance(max(interval, u.Throttle))
	}
	if got := sent / 20; math.Abs(got-quota)/quota > 0.15 {
		t.Fatalf("held at %.0f B/s, want within 15%% of %.0f", got, quota)
	}
}

// BenchmarkQuotaRecord is the cost a produce pays: its bytes and its
// handling time recorded, with and without a quota that applies.
func BenchmarkQuotaRecord(b *testing.B) {
	for _, configured := range []bool{false, true} {
		name := "none"
		if configured {
			name = "default-client-id"
		}
		b.Run(name, func(b *testing.B) {
			m := New(Config{})
			if configured {
				m.SetQuotas(defaultClient, map[Type]float64{Produce: 1e12, Request: 1e9})
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m.Record(Produce, "", "bench-client", 16384).Keep(0)
					m.Record(Request, "", "bench-client", Percent(50*time.Microsecond)).Keep(0)
				}
			})
		})
	}
}

func TestQuotaThrottleCapped(t *testing.T) {
	t.Parallel()
	m, _ := newTest(t)
	m.SetQuotas(client("c"), map[Type]float64{Produce: 1e-12, ControllerMutation: 1e-12})
	if u := m.Record(Produce, "", "c", 1e9); u.Throttle != math.MaxInt32*time.Millisecond {
		t.Fatalf("throttle %v, want the int32 millisecond cap", u.Throttle)
	}
	q := m.Mutations("", "c", false)
	_ = q.Record(1e6)
	if q.Throttle() != math.MaxInt32*time.Millisecond {
		t.Fatalf("mutation throttle %v, want the cap", q.Throttle())
	}
}
