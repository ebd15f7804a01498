"""confluent-kafka (librdkafka) client program for Sluice's transaction tests.

Run by integration/txn_clients_test.go with Debian's /usr/bin/python3. Every
mode prints one JSON object per line on stdout and exits non-zero on any
client error, so the Go test can assert on exactly what the client saw.

  steps     BOOTSTRAP PREFIX        run the JSON step list on stdin
  consume   BOOTSTRAP TOPIC LEVEL [END]
                                    read every partition to its end, or
                                    until a record with value END in each
  process   BOOTSTRAP IN OUT GROUP TXNID BATCH ABORT_EVERY HANG_AT
                                    a consume-transform-produce loop
"""

import json
import signal
import sys
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError,
                             KafkaException, Producer, TopicPartition)

TIMEOUT = 30  # seconds for any single client call
DEADLINE = time.monotonic() + 120  # for the whole program


def emit(**kv):
    print(json.dumps(kv), flush=True)


def check_deadline(what):
    if time.monotonic() > DEADLINE:
        sys.exit("deadline passed while " + what)


class Delivery:
    """Collects delivery reports; any error fails the program."""

    def __init__(self):
        self.errors = []

    def __call__(self, err, msg):
        if err is not None:
            self.errors.append(err)

    def flush(self, producer):
        remaining = producer.flush(TIMEOUT)
        if remaining:
            sys.exit("%d records not delivered within %ds" % (remaining, TIMEOUT))
        if self.errors:
            sys.exit("delivery failed: " + "; ".join(str(e) for e in self.errors))


def steps(bootstrap, prefix):
    """Runs transactional steps read as JSON from stdin.

    Each step is {"op": begin|produce|commit|abort, "txn": NAME, ...}; NAME
    selects a producer with transactional.id PREFIX-NAME, created with
    init_transactions on first use. "produce" carries "topic" and "records"
    ([{"p", "k", "v"}]) and is flushed before the next step, so the order of
    the steps is the order of the records in each partition's log. An abort
    therefore always discards records that reached the log.
    """
    producers = {}
    delivery = Delivery()
    for step in json.load(sys.stdin):
        check_deadline("running " + json.dumps(step))
        name = step["txn"]
        p = producers.get(name)
        if p is None:
            p = Producer({"bootstrap.servers": bootstrap,
                          "transactional.id": "%s-%s" % (prefix, name),
                          "transaction.timeout.ms": 60000})
            p.init_transactions(TIMEOUT)
            producers[name] = p
        op = step["op"]
        if op == "begin":
            p.begin_transaction()
        elif op == "produce":
            for r in step["records"]:
                p.produce(step["topic"], key=r["k"].encode(), value=r["v"].encode(),
                          partition=r["p"], on_delivery=delivery)
            delivery.flush(p)
        elif op == "commit":
            p.commit_transaction(TIMEOUT)
        elif op == "abort":
            p.abort_transaction(TIMEOUT)
        else:
            sys.exit("unknown op " + op)
        emit(op=op, txn=name)


def consume(bootstrap, topic, level, end=None):
    """Reads every partition of topic from the beginning to its end.

    Without `end`, the end is the high watermark for read_uncommitted and
    the last stable offset for read_committed (librdkafka's partition EOF);
    the caller makes sure no transaction is open, so nothing arrives after
    it. With `end`, a partition ends after a record whose value is `end`, so
    the consumer can run while transactions are produced.
    """
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-" + topic,
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": level})
    parts = c.list_topics(topic, timeout=TIMEOUT).topics[topic].partitions
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    at_end = set()
    while len(at_end) < len(parts):
        check_deadline("consuming %s, at the end of %s" % (topic, sorted(at_end)))
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                if end is None:
                    at_end.add(m.partition())
                continue
            raise KafkaException(m.error())
        v = m.value().decode()
        emit(p=m.partition(), o=m.offset(), k=m.key().decode(), v=v)
        if v == end:
            at_end.add(m.partition())
    c.close()


def committed_offsets(c, topic, nparts):
    tps = [TopicPartition(topic, p) for p in range(nparts)]
    got = c.committed(tps, TIMEOUT)
    for tp in got:
        if tp.error:
            raise KafkaException(tp.error)
    return {tp.partition: tp.offset for tp in got}


def high_watermarks(c, topic, nparts):
    return {p: c.get_watermark_offsets(TopicPartition(topic, p), TIMEOUT, cached=False)[1]
            for p in range(nparts)}


def process(bootstrap, in_topic, out_topic, group, txnid, batch, abort_every, hang_at):
    """Consume-transform-produce with send_offsets_to_transaction (KIP-98/447).

    Each batch of up to `batch` input records becomes one transaction: the
    records go to the same partition of out_topic with "out:" before the
    value, the consumer's positions are sent to the transaction, then it is
    committed; every abort_every-th batch is aborted instead and the consumer
    seeks back to the group's committed offsets to process it again. It exits
    once the group's committed offsets reach the input's end.

    With hang_at >= 0 the program stops inside that batch's transaction
    (records flushed, offsets sent), prints a "hang" event and waits: to be
    killed, or for SIGUSR1, after which it acts as a zombie that a newer
    instance has fenced meanwhile: it produces one more record (value
    "zombie") and tries to commit, prints what both got, and exits.

    The consumer is a static member (group.instance.id) so that a restarted
    processor takes the killed one's place without waiting for its session
    to time out.
    """
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "group.instance.id": group + "-processor",
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 30000})
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txnid,
                  "transaction.timeout.ms": 60000})
    p.init_transactions(TIMEOUT)
    emit(event="init")
    nparts = len(c.list_topics(in_topic, timeout=TIMEOUT).topics[in_topic].partitions)
    c.subscribe([in_topic])
    delivery = Delivery()
    batch_no = 0
    while True:
        check_deadline("processing batch %d" % batch_no)
        msgs = c.consume(batch, 0.5)
        for m in msgs:
            if m.error():
                raise KafkaException(m.error())
        if not msgs:
            if len(c.assignment()) == nparts and \
                    committed_offsets(c, in_topic, nparts) == high_watermarks(c, in_topic, nparts):
                break
            continue
        p.begin_transaction()
        for m in msgs:
            p.produce(out_topic, key=m.key(), value=b"out:" + m.value(),
                      partition=m.partition(), on_delivery=delivery)
        delivery.flush(p)
        positions = [tp for tp in c.position(c.assignment()) if tp.offset >= 0]
        p.send_offsets_to_transaction(positions, c.consumer_group_metadata(), TIMEOUT)
        sent = {tp.partition: tp.offset for tp in positions}
        if batch_no == hang_at:
            emit(event="hang", batch=batch_no, records=len(msgs), offsets=sent)
            signal.sigwait({signal.SIGUSR1})
            zombie(p, out_topic)
            return
        if abort_every > 0 and batch_no % abort_every == abort_every - 1:
            p.abort_transaction(TIMEOUT)
            back = committed_offsets(c, in_topic, nparts)
            for part, off in back.items():
                c.seek(TopicPartition(in_topic, part, off if off >= 0 else OFFSET_BEGINNING))
            emit(event="abort", batch=batch_no, records=len(msgs), offsets=sent, back=back)
        else:
            p.commit_transaction(TIMEOUT)
            emit(event="commit", batch=batch_no, records=len(msgs), offsets=sent)
        batch_no += 1
    emit(event="done", batches=batch_no)
    c.close()


def zombie(p, out_topic):
    """Acts as a processor whose producer epoch was bumped meanwhile.

    It produces one record (value "zombie") and commits; if the error it
    gets is not fatal, it aborts as librdkafka asks and tries once more in
    a new transaction. Every produce and commit must be refused, and no
    zombie record may reach the log. Prints each outcome, "ok" or the
    error's name.
    """
    outcomes = []

    def attempt(what, fn):
        try:
            fn()
            outcomes.append([what, "ok"])
            return True
        except KafkaException as e:
            outcomes.append([what, e.args[0].name()])
            return not e.args[0].fatal()

    def produce():
        delivery = Delivery()
        p.produce(out_topic, key=b"zombie", value=b"zombie", partition=0, on_delivery=delivery)
        if p.flush(15):
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        if delivery.errors:
            raise KafkaException(delivery.errors[0])

    for i in range(2):
        if i > 0 and not (attempt("abort", lambda: p.abort_transaction(TIMEOUT)) and
                          attempt("begin", p.begin_transaction)):
            break
        if not attempt("produce", produce):
            break
        if not attempt("commit", lambda: p.commit_transaction(TIMEOUT)):
            break
    emit(event="zombie", outcomes=outcomes)


def main(argv):
    # SIGUSR1 wakes a hung processor; blocked in every thread (librdkafka's
    # inherit the mask) so that only sigwait takes it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    mode = argv[1]
    if mode == "steps":
        steps(argv[2], argv[3])
    elif mode == "consume":
        consume(argv[2], argv[3], argv[4], *argv[5:6])
    elif mode == "process":
        process(argv[2], argv[3], argv[4], argv[5], argv[6], int(argv[7]), int(argv[8]), int(argv[9]))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main(sys.argv)
