// Package integration holds black-box tests: real Kafka clients (franz-go,
// kcat, kafka-python) against real Sluice brokers, in-process on loopback or
// as separate processes of the built binary that tests kill -9 and restart.
// Everything runs against a real etcd (embedded, or Debian's etcd-server).
package integration
