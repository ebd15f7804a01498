// Command sluice-bench is a load generator for Sluice and any other broker
// that speaks the Kafka protocol. It drives a real client (franz-go's kgo),
// so what it measures is what an application would see.
//
// # Modes
//
// One run does one of five things, chosen by flag (the workload itself by
// --mode: produce, consume, both, flood, e2e, share or group):
//
//	--brokers host:port[,...]   benchmark a running broker
//	--fake                      benchmark franz-go's kfake, started in this process
//	--serve-fake host:port      only run kfake on host:port until SIGINT/SIGTERM, so
//	                            the reference broker is its own process whose CPU time
//	                            can be read from /proc like Sluice's
//	                            (--fake-release-memory: hand the heap of deleted topics
//	                            back to the OS after each DeleteTopics, as bench/run.sh
//	                            does; see releaseAfterDeletes)
//	--compare results.jsonl     print a Sluice / reference table from --json results
//	--free-ports N              print N free local ports (for bench/run.sh)
//
// A benchmark creates the topic with kadm when it is missing (with the
// --topic-config settings; refused connections and retriable errors are
// retried for 30 s, so a broker that is still starting is fine), waits until
// every partition has a leader, produces --records records or for
// --duration, and with --mode both then consumes the topic from its start to
// the end offsets it had when consuming began. --mode consume only consumes.
// The consumer keeps control records (transaction markers) without counting
// them, so a partition whose last offset is a marker still finishes.
//
// Example, the reference as its own process and a latency run against it:
//
//	sluice-bench --serve-fake 127.0.0.1:9093 &
//	sluice-bench --brokers 127.0.0.1:9093 --broker-pid $! --acks all \
//	    --rate 10000 --duration 10s --mode produce
//
// # What is measured
//
//   - Produce records/s and MB/s (MB = 10^6 bytes of record value): acknowledged
//     records over the time from the first Produce call to the last promise.
//   - Produce latency per record: the promise callback time minus the time just
//     before Produce was called, kept in a log-linear histogram with at most
//     1/128 relative error (see histogram). With --rate the generator paces
//     records in small bursts (about one per millisecond); latency is measured
//     from the actual enqueue, so a generator that falls behind its schedule
//     shows up in the achieved rate, not in the latency.
//   - Consume records/s and MB/s from the first poll to the last record.
//   - Broker CPU per record with --broker-pid: utime+stime from /proc/PID/stat
//     before and after each phase, at the kernel's USER_HZ of 100 ticks/s, so
//     the resolution is 10 ms per phase. With --fake the broker shares this
//     process and the figure includes the client; the output says so.
//   - Produce requests, batches and the largest number of requests seen in
//     flight on a connection, from kgo hooks, to confirm what --one-per-request
//     and --max-inflight really did on the wire.
//
// # One record per request
//
// --one-per-request caps the record batch size for the benchmark topic just
// above the encoded size of one record (ProducerBatchMaxBytesFn), so a second
// record never fits, and sets linger to zero. kgo puts at most one batch per
// partition in a produce request, so with one partition every request carries
// exactly one record, while up to --max-inflight requests stay pipelined on
// the producer's one connection to the leader. A flush per record would also
// give one record per request but would allow only one request in flight.
//
// # Transactions
//
// --txn-records N produces with kgo's transactional producer
// (kgo.TransactionalID, one id per topic) in transactions of N records:
// BeginTransaction, N records handed to the client without waiting (so
// produce requests stay pipelined inside the transaction, five in flight as
// for any idempotent producer), Flush, EndTransaction(commit), repeated
// until --records or --duration; --txn-abort-every K aborts every Kth
// transaction instead. A record counts once its transaction has committed:
// produce records/s are committed records over the time from the first
// Produce call to the end of the last EndTransaction, and the result adds
// transactions/s and EndTransaction latency. The consumer then defaults to
// --isolation read_committed.
//
// # Concurrent producers
//
// --producers N (--mode produce or both, with --idempotent or
// --txn-records) runs N producer clients at once, each with its own
// producer id and, with --txn-records, its own transactional id (the
// topic's id with the client's index appended), each producing and
// committing on its own as one task of an exactly-once application would;
// --records is split among them. Records/s, bytes, latency and
// transactions add up over the clients: the time runs from the first
// client's first Produce call to the last client's end. One transactional
// producer serializes Produce, Flush and EndTransaction, so it measures
// the client's barrier per transaction; many measure what transactions
// cost the broker.
//
// # Checking what was consumed
//
// For idempotent and transactional producers writing to a topic the run
// created, the consume phase checks that it read exactly the records
// produced: every acknowledged record, or with read_committed every record
// of a committed transaction and none of an aborted one. The throughput
// runs compare counts (with --producers above 1, per producer: the records
// carrying each client's producer ids against that client's own count, and
// none with an id no client had); --mode e2e compares sequence numbers
// (missing, unexpected and duplicate records). A mismatch fails the run. When a
// transaction fails (a record or the commit is refused) the run stops
// producing, aborts it, and still consumes and checks: the records of the
// failed transaction must not be readable with read_committed. A
// transaction a failed commit leaves open on the broker holds a
// read_committed consumer back until the broker aborts it after
// --txn-timeout (10s).
//
// # End-to-end latency
//
// --mode e2e (needs --rate) runs a consumer at --isolation, from the topic's
// start, beside the producer; every value starts with the time the record
// was handed to the client and its sequence number, and the consumer times
// each record to the poll that returned it (fetch.max.wait 100 ms). With
// --txn-records a record is readable to read_committed only after its
// transaction commits, so the figure includes the rest of its transaction,
// the commit and the marker.
//
// # Share groups and classic groups
//
// --mode share produces --records records (or for --duration) whose keys
// are their sequence numbers (8 bytes, big-endian), sets the share
// group's share.auto.offset.reset to earliest (IncrementalAlterConfigs on
// the GROUP resource), then starts --members clients in one share group
// (KIP-932, kgo.ShareGroup). Each member polls, accepts everything the poll
// returned (MarkAcks) and waits for the broker to confirm it (FlushAcks)
// before polling again; the run ends once every record's acknowledgement is
// confirmed. --mode group does the same with a classic consumer group
// whose members commit each poll (CommitUncommittedOffsets, rebalances
// held off while a poll is being committed, so no record is read twice).
// Reported: records/s from the first record polled to the last
// acknowledgement (the group's join time apart), acknowledgement latency
// per record (from the poll that returned it to the confirmation), how
// many members got records, share redeliveries and refused
// acknowledgements (kgo.ShareAckCallback), and a check by key that every
// record was read and acknowledged exactly once.
//
// # Ratios between cells
//
// --ratio-to LABEL makes --compare divide this cell's produce records/s
// (--mode e2e: its end-to-end p50 and p99) by those of the cell labelled
// LABEL against the same broker in the same results file, for the subject
// and the reference alike; --min-ratio fails the subject's cell when its
// records/s ratio is below the bound (bench/run.sh: with four producers
// each, transactions of 1,000 records must reach 0.8 of the idempotent
// producers' records/s).
//
// # Idempotence
//
// By default writes are not idempotent, for acks=1 and acks=all alike, so both
// settings use the same client path and --max-inflight applies to both.
// --idempotent keeps kgo's idempotent producer (requires acks=all); kgo then
// fixes the pipeline depth at five requests per broker.
package main
