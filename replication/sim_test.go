package replication

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	simSeeds = flag.Int("sim.seeds", 300, "number of seeds per randomized replication simulation (30 with -short)")
	simSteps = flag.Int("sim.steps", 2500, "random steps per simulation seed")
	simSeed  = flag.Uint64("sim.seed", 0, "run only this seed (with -v, prints its trace on failure)")
)

// TestReplicaSimulation drives three replicas of one partition through
// random produces (acks=1 and acks=all), fetches answered late or lost,
// ISR proposals, etcd watch events delivered late, process crashes,
// lease expiries of running brokers (zombie leaders), restarts with stale
// HW checkpoints, preferred elections and controlled shutdowns. The cluster
// model checks after every step that no committed offset is lost or
// changed, that acknowledged writes are committed, that no replica
// diverges below its HW, that truncation never cuts below a follower's HW,
// and that a leader's HW never goes back; at the end, with every broker
// healthy, all replicas must converge on the same log with a full ISR.
func TestReplicaSimulation(t *testing.T) {
	t.Parallel()
	for _, unclean := range []bool{false, true} {
		t.Run(fmt.Sprintf("unclean=%v", unclean), func(t *testing.T) {
			t.Parallel()
			n := *simSeeds
			if testing.Short() {
				n = min(n, 30)
			}
			seeds := make([]uint64, 0, n)
			if *simSeed != 0 {
				seeds = append(seeds, *simSeed)
			} else {
				for i := range n {
					seeds = append(seeds, uint64(i+1))
				}
			}
			total := map[string]int{}
			for _, seed := range seeds {
				for k, v := range runSimulation(t, seed, unclean, *simSteps) {
					total[k] += v
				}
				if t.Failed() {
					return
				}
			}
			t.Logf("%d seeds: %v", len(seeds), total)
		})
	}
}

type sim struct {
	*cluster
	rng *rand.Rand
	// faultPerMille is how often a step is a fault (crash, expiry,
	// restart, election); it varies by seed so that some runs are calm
	// enough to build long ISRs and others churn leaders.
	faultPerMille int
}

func runSimulation(t *testing.T, seed uint64, unclean bool, steps int) map[string]int {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	minISR := 1 + rng.IntN(2)
	var trace strings.Builder
	ft := &failTrace{TB: t, seed: seed, trace: &trace}
	replicas := []int32{1, 2, 3, 4}[:3+rng.IntN(2)]
	s := &sim{cluster: newCluster(ft, replicas, minISR, 10*time.Second, unclean), rng: rng, faultPerMille: 5 + rng.IntN(60)}
	if *simSeed != 0 {
		s.trace = &trace
	}
	for range steps {
		s.step()
		if s.leaderNode() != nil {
			s.stats["steps with leader"]++
		}
		s.stats["steps"]++
		s.checkInvariants()
		if t.Failed() {
			return nil
		}
	}
	s.stats["committed offsets"] += len(s.committed)
	s.heal()
	return s.stats
}

// failTrace adds the seed (and the trace, when recorded) to a failure.
type failTrace struct {
	testing.TB
	seed  uint64
	trace *strings.Builder
}

func (f *failTrace) Fatalf(format string, args ...any) {
	f.TB.Helper()
	if f.trace.Len() > 0 {
		f.TB.Log(f.trace.String())
	}
	f.TB.Fatalf("seed %d: "+format, append([]any{f.seed}, args...)...)
}

func (s *sim) pick() *node { return s.nodes[s.rng.IntN(len(s.nodes))] }

func (s *sim) step() {
	if s.rng.IntN(1000) < s.faultPerMille {
		s.fault()
		return
	}
	switch r := s.rng.IntN(100); {
	case r < 14:
		s.randomProduce()
	case r < 32:
		s.sendRequest(s.pick())
	case r < 50:
		if len(s.fetches) > 0 {
			s.deliverFetch(s.rng.IntN(len(s.fetches)), 1+s.rng.IntN(4))
		}
	case r < 68:
		if len(s.answers) > 0 {
			s.deliverAnswer(s.rng.IntN(len(s.answers)))
		}
	case r < 70:
		if len(s.answers) > 0 { // lost answer: the follower re-asks
			i := s.rng.IntN(len(s.answers))
			s.answers = slices.Delete(s.answers, i, i+1)
		}
	case r < 78:
		s.deliverWatch(s.pick())
	case r < 82:
		if len(s.proposals) > 0 {
			s.deliverProposal(s.rng.IntN(len(s.proposals)))
		}
	case r < 86:
		if len(s.isrResults) > 0 {
			s.deliverISRResult(s.rng.IntN(len(s.isrResults)))
		}
	default:
		s.tick(time.Duration(s.rng.IntN(3000)) * time.Millisecond)
	}
}

func (s *sim) randomProduce() {
	// Usually on the elected leader; sometimes on any broker that still
	// thinks it leads (a zombie whose lease expired).
	var n *node
	if s.rng.IntN(4) == 0 {
		n = s.pick()
	} else {
		n = s.leaderNode()
	}
	if n == nil || !n.alive || n.leader == nil || n.leader.Resigned() {
		return
	}
	s.produceOn(n, 1+s.rng.IntN(3), s.rng.IntN(2) == 0, 5*time.Second)
}

func (s *sim) fault() {
	n := s.pick()
	if l := s.leaderNode(); l != nil && s.rng.IntN(2) == 0 {
		n = l // leader failures are the interesting ones
	}
	switch r := s.rng.IntN(20); {
	case r < 8:
		s.recoverOne()
	case r < 11:
		s.crash(n.id)
	case r < 13:
		s.expire(n.id) // a crashed broker's lease runs out, or a zombie's
	case r < 15:
		s.preferred()
	case r < 17:
		if n.alive && slices.Contains(s.live, n.id) {
			s.controlledShutdown(n.id)
			s.crash(n.id)
		}
	default:
		s.crash(n.id)
		s.expire(n.id)
	}
}

// recoverOne restarts a crashed broker (expiring its lease first if the
// controller has not noticed yet) or re-registers a zombie.
func (s *sim) recoverOne() {
	for _, n := range s.nodes {
		switch {
		case !n.alive:
			s.expire(n.id)
			hw := n.hw
			if s.rng.IntN(2) == 0 {
				hw = 0 // an old checkpoint
			}
			s.restart(n.id, hw)
			return
		case !slices.Contains(s.live, n.id):
			s.rejoin(n.id)
			return
		}
	}
}

// heal brings every broker back and lets replication run until the
// replicas agree.
func (s *sim) heal() {
	for _, n := range s.nodes {
		if !n.alive {
			s.expire(n.id)
			s.restart(n.id, n.hw)
		} else {
			s.rejoin(n.id)
		}
	}
	s.shuttingDown = nil
	s.reconcile()
	for round := range 400 {
		s.settle()
		for len(s.fetches) > 0 {
			s.deliverFetch(0, 100)
		}
		for len(s.answers) > 0 {
			s.deliverAnswer(0)
		}
		for _, n := range s.nodes {
			s.sendRequest(n)
		}
		s.tick(200 * time.Millisecond)
		s.checkInvariants()
		if s.converged() {
			return
		}
		if round == 399 {
			s.fatalf("replicas did not converge:\n%s", s.show())
		}
	}
}

func (s *sim) converged() bool {
	l := s.leaderNode()
	if l == nil || l.leader.HighWatermark() != l.log.LogEndOffset() || len(l.leader.ISR()) != len(s.nodes) {
		return false
	}
	for _, n := range s.nodes {
		if len(n.watch) > 0 || n.hw != l.log.LogEndOffset() || n.log.LogEndOffset() != l.log.LogEndOffset() {
			return false
		}
		for off := max(n.log.LogStartOffset(), l.log.LogStartOffset()); off < l.log.LogEndOffset(); off++ {
			a, _ := n.log.at(off)
			b, _ := l.log.at(off)
			if a != b {
				s.fatalf("broker %d and leader %d differ at %d below the hw:\n%s", n.id, l.id, off, s.show())
			}
		}
	}
	return true
}
