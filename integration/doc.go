// Package integration holds black-box tests: real Kafka clients (franz-go,
// kcat, kafka-python, confluent-kafka, kafkajs) against real Sluice brokers,
// in-process on loopback or as separate processes of the built binary that
// tests kill -9 and restart. Everything runs against a real etcd (embedded,
// or Debian's etcd-server).
//
// Tests that need a client other than franz-go skip when it is missing,
// unless SLUICE_REQUIRE_CLIENTS is set (CI sets it; .ci/run installs the
// clients, kafkajs with `npm ci` in testdata/kafkajs). The transaction tests
// of those clients (TestTxnConfluent*, TestTxnKcat*, TestTxnKafkaJS*) run
// against another broker with SLUICE_TXN_REFERENCE=host:port, for example
// franz-go's kfake from `sluice-bench --serve-fake 127.0.0.1:9093`, to tell
// a client program's mistakes from Sluice's.
package integration
