#!/usr/bin/python3
"""End-to-end latency through a broker as librdkafka sees it (make bench).

A producer process with librdkafka's low-latency settings (linger.ms=0,
acks=all) sends RATE records a second for DURATION seconds, each stamped with
its send time; a consumer process (fetch.wait.max.ms=100, as in
rdkafka_performance -C -l) records receive time minus send time. The two run
as separate processes so Python's interpreter lock does not add the one's
work to the other's latency. Prints one line:

    label n=N p50=X p90=Y p99=Z max=W   (milliseconds)

Usage: rdkafka_latency.py LABEL BOOTSTRAP [RATE] [DURATION] [REPLICATION]
Needs Debian's python3-confluent-kafka (librdkafka), seen by /usr/bin/python3.
"""

import multiprocessing as mp
import struct
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def consume(bootstrap, topic, ready, done, out):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "lat-" + topic,
        "fetch.wait.max.ms": 100,
        "enable.auto.commit": False,
    })
    c.assign([TopicPartition(topic, 0, 0)])
    lat = []
    ready.set()
    idle_since = None
    while True:
        m = c.poll(0.1)
        if m is None or m.error():
            if done.is_set():
                idle_since = idle_since or time.time()
                if time.time() - idle_since > 1.0:
                    break
            continue
        lat.append(time.time() - struct.unpack(">d", m.value()[:8])[0])
    c.close()
    out.put(lat)


def produce(bootstrap, topic, rate, duration):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    n = int(rate * duration)
    pad = b"x" * 92
    start = time.time()
    for i in range(n):
        wait = start + i / rate - time.time()
        if wait > 0:
            time.sleep(wait)
        p.produce(topic, struct.pack(">d", time.time()) + pad, partition=0)
        p.poll(0)
    p.flush(30)


def main():
    label, bootstrap = sys.argv[1], sys.argv[2]
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 5000
    duration = float(sys.argv[4]) if len(sys.argv) > 4 else 10
    replication = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    topic = "rdlat-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, replication)]).values():
        f.result()
    ready, done, out = mp.Event(), mp.Event(), mp.Queue()
    cons = mp.Process(target=consume, args=(bootstrap, topic, ready, done, out))
    cons.start()
    ready.wait(30)
    time.sleep(1)  # let the consumer's first fetch reach the broker
    prod = mp.Process(target=produce, args=(bootstrap, topic, rate, duration))
    prod.start()
    prod.join()
    done.set()
    lat = sorted(out.get(timeout=60))
    cons.join()
    for f in admin.delete_topics([topic]).values():
        f.result()
    if not lat:
        print(f"{label} no records received")
        sys.exit(1)

    def q(x):
        return lat[min(len(lat) - 1, int(x * len(lat)))] * 1000

    print(f"{label} n={len(lat)} p50={q(0.5):.2f}ms p90={q(0.9):.2f}ms "
          f"p99={q(0.99):.2f}ms max={lat[-1] * 1000:.2f}ms")


if __name__ == "__main__":
    main()
