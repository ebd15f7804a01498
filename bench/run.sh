#!/usr/bin/env bash
# bench/run.sh (make bench): the Sluice benchmark matrix, run against a fresh
# Sluice and against franz-go's kfake as the reference, in the same run, with
# Sluice / reference ratios at the end.
#
# Both brokers are separate processes, so /proc/PID/stat gives each one's CPU
# time alone. The reference keeps everything in memory and never fsyncs; read
# its numbers as "a fast broker with no disk", not as Apache Kafka.
#
# Every cell deletes its topic. Sluice's data then leaves the page cache and
# goes back to the kernel, while the Go runtime would keep the reference's
# heap for its next cell. On a VM that returns free memory to the host (free
# page reporting), writing into such returned memory costs several times
# more CPU than writing into memory a process kept, which would charge Sluice
# alone for it. So by default the reference returns its freed heap to the OS
# after each DeleteTopics, between cells (sluice-bench --fake-release-memory).
#
# Matrix (cells run against both brokers, one after the other):
#   produce+consume throughput: 100 B and 1 KiB records x acks=1/all x 1/8 partitions
#   produce+consume throughput with lz4 and zstd batches: 1 KiB, acks=1, 1 partition
#   (the broker walks every record of every batch, decompressing as it goes)
#   produce latency at a fixed rate: 1 KiB records, 1 partition, acks=1 and acks=all
#   overload: 64 producers flooding the broker (1 KiB records, as fast as it takes
#   them) beside a probe (a producer at 1000 records/s and a consumer on their own
#   connections and topic), and the same probe on the idle broker: flood
#   throughput, the broker's peak RSS (queued.max.request.bytes bounds Sluice's
#   request memory) and the probe's end-to-end p50/p99
#   Sluice only: a flush.messages=1 topic, one record per produce request, at the
#   fixed rate; its p99 must be below BENCH_MAX_P99 (the script fails otherwise).
#   That cell lets BENCH_SYNC_INFLIGHT produce requests be in flight: each
#   acknowledgement waits for an fsync, so the rate needs rate x latency requests
#   pipelined (10000/s x 5 ms = 50); with the default 5 the client, not the
#   broker, caps the rate near 5 / fsync time.
#   transactions (KIP-98, franz-go's transactional producer): 1 KiB records,
#   1 partition, produce+consume, beside the idempotent acks=all producer as the
#   in-run baseline: transactions of 1,000 records and of 10 records, each
#   committed, records pipelined inside a transaction (Flush, then
#   EndTransaction). The consume phase reads them back with read_committed and
#   checks it read exactly the committed records (the idempotent cell checks
#   its own count too); a mismatch fails the cell. The comparison prints each
#   transactional cell's records/s as a ratio to the idempotent cell's on the
#   same broker. The same pair runs again with BENCH_TXN_PRODUCERS producer
#   clients at once (sluice-bench --producers: each its own producer id and
#   transactional id, records/s added up, the check per producer), and there
#   transactions of 1,000 records must reach BENCH_TXN_MIN_RATIO of the
#   idempotent producers' records/s on Sluice (the script fails otherwise, as
#   for the flush.messages cell). Why the bound is on the multi-producer pair:
#   one franz-go transactional producer serializes produce, Flush and
#   EndTransaction, so each transaction waits, with nothing overlapping, for
#   the broker to answer its last produce requests and then its EndTxn, while
#   an idempotent producer keeps its pipeline full; the single-producer ratio
#   measures that client-side barrier per transaction (kfake, measured the
#   same way, gets about the same ratio) and depends on how loaded the machine
#   is. Applications that need exactly-once run one transactional producer per
#   task or partition, many at once, whose barriers overlap; the
#   multi-producer ratio measures what transactions cost the broker (the
#   EndTxn, the markers, the coordinator's log). Both ratios are reported;
#   only the multi-producer one is bounded. With enough producers to keep the
#   machine busy the ratio approaches the ratio of CPU per record (broker and
#   client, which share the machine): a transaction of 1,000 1 KiB records
#   goes out as about two produce requests (a full 1 MiB batch and the rest)
#   beside AddPartitionsToTxn, EndTxn and the markers, where the idempotent
#   producer sends one full batch per request.
#   end-to-end latency of a read_committed consumer: a transactional producer at
#   BENCH_E2E_RATE records/s (1 KiB) in transactions of 10, each committed, and a
#   consumer timing every record from just before Produce to the poll that
#   returned it (fetch.max.wait 100 ms), checked by sequence number at the end;
#   beside it, as the in-run reference, the same with an idempotent producer
#   and a read_uncommitted consumer. A record of a transaction is readable only
#   after the commit, so its latency includes the rest of its transaction.
#   share groups (KIP-932) beside classic consumer groups: BENCH_SHARE_RECORDS
#   keyed 1 KiB records produced (idempotent, acks=all) to 1 or 8 partitions,
#   then read by a share group of 1, 4 or 16 members (franz-go's share
#   consumer; the group's share.auto.offset.reset set to earliest first with
#   IncrementalAlterConfigs on the GROUP resource), each member accepting all
#   a poll returned and waiting for the broker to confirm (FlushAcks) before
#   polling again; and by a classic consumer group of as many members, each
#   committing every poll (a member beyond the partition count idles there,
#   a share group can give one partition to all). Records/s run from the first
#   record polled to the last acknowledgement (the join is reported apart);
#   acknowledgement latency is per record, from the poll that returned it to
#   the confirmation; every key must be acknowledged exactly once
#   end-to-end latency through librdkafka (bench/rdkafka_latency.py): producer
#   with linger.ms=0 and acks=all, consumer with fetch.wait.max.ms=100, in
#   separate processes, against both brokers (needs python3-confluent-kafka)
#
# Environment:
#   BENCH_SUBJECT=sluice   what to measure; "fake" runs a second kfake in Sluice's
#                          place (no ./cmd/sluice build), to test this script
#   BENCH_DURATION=3s      produce time of each throughput cell
#   BENCH_LAT_DURATION=10s produce time of each latency cell
#   BENCH_RATE=10000       records/s of the latency cells
#   BENCH_MAX_P99=20ms     p99 bound of the flush.messages=1 cell
#   BENCH_SYNC_INFLIGHT=64 produce requests in flight in the flush.messages=1 cell
#   BENCH_FLOOD_DURATION=5s  length of each overload cell
#   BENCH_FLOOD_PRODUCERS=64 producer clients of the flooded cell
#   BENCH_FAKE_RELEASE=1   the reference returns deleted topics' heap to the OS
#                          between cells (0: it keeps it; see below)
#   BENCH_TXN_MIN_RATIO=0.8  least records/s of transactions of 1,000 records
#                          relative to the idempotent producer, on Sluice, both
#                          with BENCH_TXN_PRODUCERS producers
#   BENCH_TXN_PRODUCERS=4  producer clients of the bounded transaction pair
#   BENCH_TXN_ROUNDS=3     rounds of the idempotent and transactional throughput
#                          cells, interleaved; the comparison uses each cell's
#                          median run (and reports every failed one)
#   BENCH_E2E_RATE=1000    records/s of the end-to-end latency cells
#   BENCH_SHARE_RECORDS=100000  records each share-group and classic-group cell reads
#   BENCH_QUICK=1          the acks x size x partitions matrix shrinks to its 1 KiB,
#                          1-partition cells, and the transaction cells to the
#                          idempotent baselines and transactions of 1,000 records
#                          (no 10-record or end-to-end cells), and the group cells
#                          to 1 partition with 1 and 4 members; the other cells run
#   BENCH_RESULTS=FILE     also save the JSON results (one line per run) to FILE
#   BENCH_KEEP=1           keep the temporary directory (binaries, logs, data)
#   GO=go                  the go command
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GO="${GO:-go}"
SUBJECT="${BENCH_SUBJECT:-sluice}"
DURATION="${BENCH_DURATION:-3s}"
LAT_DURATION="${BENCH_LAT_DURATION:-10s}"
RATE="${BENCH_RATE:-10000}"
MAX_P99="${BENCH_MAX_P99:-20ms}"
SYNC_INFLIGHT="${BENCH_SYNC_INFLIGHT:-64}"
FLOOD_DURATION="${BENCH_FLOOD_DURATION:-5s}"
FLOOD_PRODUCERS="${BENCH_FLOOD_PRODUCERS:-64}"
TXN_MIN_RATIO="${BENCH_TXN_MIN_RATIO:-0.8}"
TXN_ROUNDS="${BENCH_TXN_ROUNDS:-3}"
TXN_PRODUCERS="${BENCH_TXN_PRODUCERS:-4}"
E2E_RATE="${BENCH_E2E_RATE:-1000}"
SHARE_RECORDS="${BENCH_SHARE_RECORDS:-100000}"
FAKE_FLAGS=()
if [[ "${BENCH_FAKE_RELEASE:-1}" != 0 ]]; then
	FAKE_FLAGS=(--fake-release-memory)
fi

case "$SUBJECT" in
sluice | fake) ;;
*) echo "BENCH_SUBJECT must be sluice or fake, not $SUBJECT" >&2; exit 2 ;;
esac

TMP="$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")"
BIN="$TMP/bin"
RESULTS="$TMP/results.jsonl"
PIDS=()

# stop_pid sends SIGTERM, waits up to 10 s, then sends SIGKILL.
stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		stop_pid "$pid"
	done
	if [[ -n "${BENCH_RESULTS:-}" && -f "$RESULTS" ]]; then
		cp "$RESULTS" "$BENCH_RESULTS"
	fi
	if [[ -n "${BENCH_KEEP:-}" ]]; then
		echo "kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_port waits until host:port accepts a connection, failing early if the
# process that should open it has exited.
wait_port() {
	local port=$1 pid=$2 log=$3 name=$4 i
	for ((i = 0; i < 600; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$name exited before listening on 127.0.0.1:$port; its log:" >&2
			tail -n 40 "$log" >&2
			exit 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "$name did not listen on 127.0.0.1:$port within 60 s; its log:" >&2
	tail -n 40 "$log" >&2
	exit 1
}

echo "building into $BIN" >&2
mkdir -p "$BIN"
(cd "$ROOT" && "$GO" build -o "$BIN/sluice-bench" ./cmd/sluice-bench)
if [[ "$SUBJECT" == sluice ]]; then
	(cd "$ROOT" && "$GO" build -o "$BIN/sluice" ./cmd/sluice)
fi

read -r SUB_PORT ETCD_CLIENT_PORT ETCD_PEER_PORT REF_PORT < <("$BIN/sluice-bench" --free-ports 4)

if [[ "$SUBJECT" == sluice ]]; then
	"$BIN/sluice" --data-dir "$TMP/data" --listen "127.0.0.1:$SUB_PORT" --http-listen "" \
		--embedded-etcd-client-addr "127.0.0.1:$ETCD_CLIENT_PORT" \
		--embedded-etcd-peer-addr "127.0.0.1:$ETCD_PEER_PORT" >"$TMP/sluice.log" 2>&1 &
else
	"$BIN/sluice-bench" --serve-fake "127.0.0.1:$SUB_PORT" ${FAKE_FLAGS[@]+"${FAKE_FLAGS[@]}"} >"$TMP/sluice.log" 2>&1 &
fi
SUB_PID=$!
PIDS+=("$SUB_PID")
"$BIN/sluice-bench" --serve-fake "127.0.0.1:$REF_PORT" ${FAKE_FLAGS[@]+"${FAKE_FLAGS[@]}"} >"$TMP/reference.log" 2>&1 &
REF_PID=$!
PIDS+=("$REF_PID")

wait_port "$SUB_PORT" "$SUB_PID" "$TMP/sluice.log" "sluice ($SUBJECT)"
wait_port "$REF_PORT" "$REF_PID" "$TMP/reference.log" "reference (kfake)"
echo "sluice ($SUBJECT) pid $SUB_PID on 127.0.0.1:$SUB_PORT; reference (kfake) pid $REF_PID on 127.0.0.1:$REF_PORT" >&2

# A short produce against each broker before the matrix: a broker that
# listens but cannot serve fails here, once, instead of in every cell.
for target in sluice reference; do
	if [[ "$target" == sluice ]]; then port=$SUB_PORT; else port=$REF_PORT; fi
	if ! "$BIN/sluice-bench" --brokers "127.0.0.1:$port" --records 1000 --mode produce --delete-topic \
		--timeout 60s >"$TMP/warmup-$target.txt" 2>&1; then
		echo "warm-up against $target failed:" >&2
		cat "$TMP/warmup-$target.txt" >&2
		exit 1
	fi
done
echo "load average before the matrix: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

FAILED=0

# run_cell TARGET LABEL ARGS...: one benchmark run, its JSON appended to
# $RESULTS. A failed run is recorded (the JSON carries the error) and the
# matrix goes on.
run_cell() {
	local target=$1 label=$2 port pid
	shift 2
	if [[ "$target" == sluice ]]; then
		port=$SUB_PORT pid=$SUB_PID
	else
		port=$REF_PORT pid=$REF_PID
	fi
	if ! "$BIN/sluice-bench" --brokers "127.0.0.1:$port" --broker-pid "$pid" \
		--target "$target" --label "$label" --json --delete-topic "$@" >>"$RESULTS"; then
		FAILED=1
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "$target broker (pid $pid) died; last lines of its log:" >&2
		tail -n 40 "$TMP/$target.log" >&2
		exit 1
	fi
}

# cpu_ticks PID: utime+stime of PID in clock ticks. Our processes' command
# names hold no spaces, so the fields split plainly.
cpu_ticks() {
	local f
	read -ra f <"/proc/$1/stat" || { echo 0; return; }
	echo $((f[13] + f[14]))
}

# settle waits (up to 10 s) until both brokers are nearly idle, so work left
# over from the previous run (a deleted topic being freed, a log being
# flushed) does not steal CPU from the next one on a 2-core machine.
settle() {
	local i before after
	for ((i = 0; i < 40; i++)); do
		before=$(($(cpu_ticks "$SUB_PID") + $(cpu_ticks "$REF_PID")))
		sleep 0.25
		after=$(($(cpu_ticks "$SUB_PID") + $(cpu_ticks "$REF_PID")))
		((after - before <= 2)) && return 0
	done
	echo "brokers still busy after 10 s; going on" >&2
}

# both runs a cell against each broker, alternating which goes first so a
# bias from running first or second cancels out over the matrix.
CELLS=0
both() {
	local order=(sluice reference) target
	if ((CELLS++ % 2 == 1)); then
		order=(reference sluice)
	fi
	for target in "${order[@]}"; do
		settle
		run_cell "$target" "$@"
	done
}

name_size() { if [[ $1 == 1024 ]]; then echo 1KiB; else echo "${1}B"; fi; }

sizes=(100 1024) acks_list=(1 all) parts_list=(1 8)
if [[ -n "${BENCH_QUICK:-}" ]]; then
	sizes=(1024) parts_list=(1)
fi

start=$SECONDS
for size in "${sizes[@]}"; do
	for acks in "${acks_list[@]}"; do
		for parts in "${parts_list[@]}"; do
			both "$(name_size "$size") acks=$acks p=$parts" --mode both \
				--record-size "$size" --acks "$acks" --partitions "$parts" --duration "$DURATION"
		done
	done
done
# Transactions beside the idempotent producer they are measured against
# (--ratio-to; --compare prints the ratios and applies --min-ratio to Sluice).
# They run in BENCH_TXN_ROUNDS interleaved rounds and --compare takes each
# cell's median run, so load from other processes that drifts over the run
# does not decide a ratio on its own.
# The single-producer pair has no bound (its ratio is the client's barrier
# per transaction, see the header); the BENCH_TXN_PRODUCERS pair has.
IDEM_LABEL="1KiB idempotent acks=all p=1"
MULTI=" x${TXN_PRODUCERS} producers"
IDEM_MULTI_LABEL="${IDEM_LABEL}${MULTI}"
txn_sizes=(1000 10)
if [[ -n "${BENCH_QUICK:-}" ]]; then
	txn_sizes=(1000)
fi
for ((round = 1; round <= TXN_ROUNDS; round++)); do
	both "$IDEM_LABEL" --mode both --record-size 1024 --acks all --idempotent --partitions 1 --duration "$DURATION"
	for n in "${txn_sizes[@]}"; do
		both "1KiB txn ${n}/txn p=1" --mode both --record-size 1024 --acks all --txn-records "$n" \
			--partitions 1 --duration "$DURATION" --ratio-to "$IDEM_LABEL"
	done
	both "$IDEM_MULTI_LABEL" --mode both --record-size 1024 --acks all --idempotent --partitions 1 \
		--producers "$TXN_PRODUCERS" --duration "$DURATION"
	both "1KiB txn 1000/txn p=1${MULTI}" --mode both --record-size 1024 --acks all --txn-records 1000 \
		--partitions 1 --producers "$TXN_PRODUCERS" --duration "$DURATION" \
		--ratio-to "$IDEM_MULTI_LABEL" --min-ratio "$TXN_MIN_RATIO"
done
# Share groups beside classic consumer groups of the same size, per shape.
group_parts=(1 8) group_members=(1 4 16)
if [[ -n "${BENCH_QUICK:-}" ]]; then
	group_parts=(1) group_members=(1 4)
fi
for parts in "${group_parts[@]}"; do
	for members in "${group_members[@]}"; do
		for kind in share group; do
			name=share
			if [[ $kind == group ]]; then name=classic; fi
			both "$name 1KiB p=$parts x$members members" --mode "$kind" --members "$members" \
				--records "$SHARE_RECORDS" --record-size 1024 --acks all --idempotent --partitions "$parts"
		done
	done
done
for codec in lz4 zstd; do
	both "1KiB acks=1 p=1 $codec" --mode both --compression "$codec" \
		--record-size 1024 --acks 1 --partitions 1 --duration "$DURATION"
done
for acks in "${acks_list[@]}"; do
	both "1KiB acks=$acks p=1 @${RATE}/s" --mode produce \
		--record-size 1024 --acks "$acks" --partitions 1 --rate "$RATE" --duration "$LAT_DURATION"
done
if [[ -z "${BENCH_QUICK:-}" ]]; then
	E2E_IDEM_LABEL="e2e 1KiB idempotent read_uncommitted @${E2E_RATE}/s"
	both "$E2E_IDEM_LABEL" --mode e2e --record-size 1024 --acks all --idempotent --partitions 1 \
		--rate "$E2E_RATE" --duration "$LAT_DURATION"
	both "e2e 1KiB txn 10/txn read_committed @${E2E_RATE}/s" --mode e2e --record-size 1024 --acks all \
		--txn-records 10 --isolation read_committed --partitions 1 --rate "$E2E_RATE" --duration "$LAT_DURATION" \
		--ratio-to "$E2E_IDEM_LABEL"
fi
settle
# The throughput cells leave gigabytes of dirty page cache behind; writing it
# back competes with this cell's fsyncs for the disk. Flush it first, so the
# cell measures its own fsyncs rather than the previous cells' writeback.
sync
run_cell sluice "1KiB flush.messages=1 1rec/req @${RATE}/s" --mode produce \
	--record-size 1024 --acks all --partitions 1 --rate "$RATE" --duration "$LAT_DURATION" \
	--one-per-request --max-inflight "$SYNC_INFLIGHT" --topic-config flush.messages=1 --max-p99 "$MAX_P99"
# The flood cells last: their producers write gigabytes whose writeback and
# deletion would compete with the flush.messages cell's fsyncs for the disk.
both "probe, idle broker" --mode flood --producers 0 --record-size 1024 --partitions 8 \
	--duration "$FLOOD_DURATION"
both "probe, ${FLOOD_PRODUCERS} producers flooding" --mode flood --producers "$FLOOD_PRODUCERS" \
	--record-size 1024 --partitions 8 --duration "$FLOOD_DURATION"

echo >&2
echo "matrix took $((SECONDS - start)) s; sluice = $SUBJECT (pid $SUB_PID), reference = kfake (pid $REF_PID)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; other load skews the ratios"
if [[ "$SUBJECT" == fake ]]; then
	echo "NOTE: BENCH_SUBJECT=fake: the 'sluice' column is a second kfake, not Sluice."
fi
echo
# End-to-end latency as librdkafka sees it with its low-latency producer
# settings (linger.ms=0, acks=all) and a consumer at fetch.wait.max.ms=100,
# producer and consumer in separate processes, against both brokers.
if /usr/bin/python3 -c 'import confluent_kafka' 2>/dev/null; then
	echo "librdkafka end-to-end latency, linger.ms=0 acks=all, 100 B @2000/s for 10 s:"
	for target in sluice reference; do
		if [[ "$target" == sluice ]]; then port=$SUB_PORT; else port=$REF_PORT; fi
		settle
		/usr/bin/python3 "$ROOT/bench/rdkafka_latency.py" "  $target" "127.0.0.1:$port" 2000 10 || FAILED=1
	done
else
	echo "librdkafka latency cell skipped: /usr/bin/python3 lacks confluent_kafka (apt-get install python3-confluent-kafka)"
fi
echo
# Produce validation cost, in process: the header and CRC check alone
# against the same check plus the walk over every record, per batch of
# 64 x 1 KiB records (protocol.BenchmarkProduceValidate).
echo "produce record validation, 64 x 1 KiB records per batch (validate / check-only):"
(cd "$ROOT" && "$GO" test -run '^$' -bench '^BenchmarkProduceValidate$' -benchtime 2000x ./protocol) |
	awk '/^BenchmarkProduceValidate\// { split($1, p, "/"); sub(/-[0-9]+$/, "", p[3]); ns[p[2] "/" p[3]] = $3; codecs[p[2]] = 1 }
	END { for (c in codecs) printf "  %-5s check %8.0f ns  validate %8.0f ns (%.0f ns/record)  ratio %.1fx\n", c, ns[c "/check"], ns[c "/validate"], ns[c "/validate"] / 64, ns[c "/validate"] / ns[c "/check"] }'
echo
if ! "$BIN/sluice-bench" --compare "$RESULTS"; then
	FAILED=1
fi
exit "$FAILED"
