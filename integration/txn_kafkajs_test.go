package integration

// Transactions through kafkajs (Node.js), the program in
// testdata/kafkajs/txn.js. kafkajs comes from npm: .ci/run installs the
// version pinned in testdata/kafkajs/package-lock.json with `npm ci`.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kafkajsDir = "testdata/kafkajs"

// requireKafkaJS returns the node binary, skipping the test when node or
// the npm-installed kafkajs is missing unless SLUICE_REQUIRE_CLIENTS is set
// (as CI sets it), in which case the test fails.
func requireKafkaJS(t *testing.T) string {
	t.Helper()
	node := requireTool(t, "node")
	if _, err := os.Stat(filepath.Join(kafkajsDir, "node_modules", "kafkajs", "package.json")); err != nil {
		if os.Getenv("SLUICE_REQUIRE_CLIENTS") != "" {
			t.Fatalf("kafkajs not installed (%v): run `npm ci` in integration/%s, as .ci/run does", err, kafkajsDir)
		}
		t.Skipf("kafkajs not installed: run `npm ci` in integration/%s", kafkajsDir)
	}
	return node
}

// kafkajsConsume reads topic from the beginning with a kafkajs consumer in
// its own group at isolation level (read_committed or read_uncommitted)
// until it has read a record with value end in every partition, and returns
// the values per partition in offset order.
func kafkajsConsume(t *testing.T, node string, env *txnEnv, topic, level, end string) map[int32][]string {
	t.Helper()
	group := env.name("js-" + strings.ReplaceAll(level, "_", "-"))
	lines := runClient(t, clientTimeout, "", node, filepath.Join(kafkajsDir, "txn.js"), "consume", env.addr, topic, group, level, end)
	return byPartition(t, decodeLines[txnRecord](t, lines))
}

// TestTxnKafkaJSCommitAbort runs kafkajs transactional producers that
// commit, abort (after producing to every partition, and interleaved with
// another producer's committed transaction) and send consumer group offsets
// with sendOffsets in committed and aborted transactions. A read_committed
// kafkajs consumer must return exactly the committed records in order
// (one reading while the transactions run, one started afterwards), a
// read_uncommitted one every record, and the group must hold exactly the
// offsets of the committed transactions.
func TestTxnKafkaJSCommitAbort(t *testing.T) {
	t.Parallel()
	node := requireKafkaJS(t)
	env := newTxnEnv(t)
	topic, in, group := env.name("js-txn"), env.name("js-in"), env.name("js-etl")
	createTopic(t, env.addr, topic, 3, nil)
	createTopic(t, env.addr, in, 2, nil)

	s := &txnScript{topic: topic}
	s.op("a", "begin")
	s.produce("a", 0, 1, 2, 0)
	s.sendOffsets("a", group, txnOffset{in, 0, 5}, txnOffset{in, 1, 3})
	s.op("a", "commit")
	s.op("a", "begin") // aborted: neither its records nor its offsets count
	s.produce("a", 0, 1, 2, 2, 1, 0)
	s.sendOffsets("a", group, txnOffset{in, 0, 9}, txnOffset{in, 1, 8})
	s.op("a", "abort")
	s.op("b", "begin") // b's aborted records around a's committed ones
	s.produce("b", 1, 2)
	s.op("a", "begin")
	s.produce("a", 1, 2, 0)
	s.produce("b", 0, 1)
	s.sendOffsets("b", group, txnOffset{in, 1, 12})
	s.sendOffsets("a", group, txnOffset{in, 0, 7})
	s.op("a", "commit")
	s.op("b", "abort")
	s.op("b", "begin") // a producer that aborted goes on committing
	s.produce("b", 2, 0)
	s.op("b", "commit")
	s.end("a", 3)

	live := startClient(t, "", node, filepath.Join(kafkajsDir, "txn.js"), "consume", env.addr, topic, env.name("js-live"), "read_committed", "end")
	lines := runClient(t, clientTimeout, s.json(t), node, filepath.Join(kafkajsDir, "txn.js"), "steps", env.addr, env.name("js-txn"))
	if len(lines) != len(s.steps) {
		t.Fatalf("client confirmed %d of %d steps:\n%s", len(lines), len(s.steps), strings.Join(lines, "\n"))
	}
	all, committed, offsets := s.expect()
	waitGroupOffsets(t, env.addr, group, in, offsets[in])
	requireSameLogs(t, "kafkajs read_committed during the transactions",
		byPartition(t, decodeLines[txnRecord](t, live.wait(t, clientTimeout))), committed)
	requireSameLogs(t, "kafkajs read_committed", kafkajsConsume(t, node, env, topic, "read_committed", "end"), committed)
	requireSameLogs(t, "kafkajs read_uncommitted", kafkajsConsume(t, node, env, topic, "read_uncommitted", "end"), all)
}
