// Command txnproducer is a transactional producer the integration tests
// run as a separate process, so that they can kill it with SIGKILL in the
// middle of a transaction.
//
//	txnproducer -brokers host:port,... -topic t -txn-id id -timeout 5s -partitions 2 -records 6
//
// It commits one transaction of the given number of records
// "committed-<i>", record i to partition i mod partitions, then begins
// another, produces as many records "open-<i>" and waits for each to be
// acknowledged, prints "OPEN" and blocks until it is killed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "", "comma-separated seed brokers")
	topic := flag.String("topic", "", "topic to produce to")
	txnID := flag.String("txn-id", "", "transactional id")
	timeout := flag.Duration("timeout", 5*time.Second, "transaction.timeout.ms")
	partitions := flag.Int("partitions", 1, "partitions of the topic")
	records := flag.Int("records", 6, "records per transaction")
	flag.Parse()
	if err := run(strings.Split(*brokers, ","), *topic, *txnID, *timeout, int32(*partitions), *records); err != nil {
		fmt.Fprintln(os.Stderr, "txnproducer:", err)
		os.Exit(1)
	}
	select {}
}

func run(brokers []string, topic, txnID string, timeout time.Duration, partitions int32, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(txnID), kgo.TransactionTimeout(timeout),
		kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	txn := func(prefix string) error {
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
		for i := range n {
			r := &kgo.Record{Partition: int32(i) % partitions, Value: fmt.Appendf(nil, "%s-%d", prefix, i)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				return fmt.Errorf("produce %s: %w", r.Value, err)
			}
		}
		return nil
	}
	if err := txn("committed"); err != nil {
		return err
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := txn("open"); err != nil {
		return err
	}
	fmt.Println("OPEN")
	return nil
}
