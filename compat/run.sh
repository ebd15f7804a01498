#!/usr/bin/env bash
# compat/run.sh (make compat): runs franz-go's own kgo integration suite
# (package pkg/kgo of github.com/twmb/franz-go, at the version pinned in
# go.mod, fetched through the Go module proxy) against a fresh Sluice broker.
#
# Every test must pass, except those listed in compat/expected-failures.txt,
# each of which needs a feature Sluice does not have yet. SASL tests skip
# themselves when the broker lacks the feature. The share-group tests
# (TestShareGroupETL, TestShareGroupAckOnClose, TestShareGroupOffsetsAdmin,
# TestConsumeRegexShareSkipsInternal) run only when the broker advertises
# ShareFetch and ShareAcknowledge v2 (Kafka 4.2's share groups); Sluice does,
# so the script fails if they skip (COMPAT_ALLOW_SHARE_SKIP=1 allows it).
# The script fails if a listed test passes (so the list shrinks as features
# land) or if any other test fails.
#
# Environment:
#   KGO_TEST_RECORDS  records per ETL test (franz-go's default 500000; CI uses less)
#   COMPAT_RUN        a go test -run filter (default: everything)
#   COMPAT_TIMEOUT    go test -timeout (default 12m)
#   COMPAT_SKIP       a go test -skip filter (default: none)
#   COMPAT_CLUSTER=1  run against three replicating brokers (scripts/cluster.sh on
#                     private ports, Debian's etcd) with KGO_TEST_RF=3 instead of
#                     one broker (make compat-cluster; not in CI)
#   COMPAT_ALLOW_SHARE_SKIP=1  do not fail when the share-group tests skip
#
# Broker settings: franz-go's share tests give their groups
# share.record.lock.duration.ms=15000, which Kafka's default
# group.share.min.record.lock.duration.ms (15000) allows; the single broker
# keeps its share-group state topic at replication factor 1 and
# min.insync.replicas 1 (Kafka's defaults, 3 and 2, need three brokers).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GO="${GO:-go}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/sluice-compat.XXXXXX")"
PID=""
CLUSTER=""
cleanup() {
	if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
	if [ -n "$CLUSTER" ]; then SLUICE_CLUSTER_DIR="$TMP/cluster" "$ROOT/scripts/cluster.sh" stop >/dev/null 2>&1 || true; fi
	[ -n "${COMPAT_KEEP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

cd "$ROOT"
version="$($GO list -m -f '{{.Version}}' github.com/twmb/franz-go)"
src="$($GO mod download -json "github.com/twmb/franz-go@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -d "$src" ] || { echo "compat: franz-go $version source not found" >&2; exit 1; }
cp -r "$src" "$TMP/franz-go"
chmod -R u+w "$TMP/franz-go"

$GO build -o "$TMP/sluice" ./cmd/sluice
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if [ -n "${COMPAT_CLUSTER:-}" ]; then
	# Ten consecutive free ports would be ideal; a random base well above
	# the usual ones is good enough for a manual run.
	base=$((40000 + RANDOM % 20000))
	CLUSTER=1
	SLUICE_CLUSTER_DIR="$TMP/cluster" SLUICE_CLUSTER_BIN="$TMP/sluice" SLUICE_CLUSTER_ETCD=external \
		SLUICE_CLUSTER_BASE_PORT=$base SLUICE_CLUSTER_HTTP_BASE_PORT=$((base + 3)) SLUICE_CLUSTER_ETCD_PORT=$((base + 6)) \
		"$ROOT/scripts/cluster.sh" start >/dev/null
	seeds="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
	echo "compat: franz-go $version pkg/kgo against three Sluice brokers ($seeds), replication factor 3"
	set +e
	(cd "$TMP/franz-go" && KGO_SEEDS="$seeds" KGO_TEST_RF=3 KGO_TEST_RECORDS="${KGO_TEST_RECORDS:-500000}" \
		$GO test -count=1 -v -timeout "${COMPAT_TIMEOUT:-12m}" -run "${COMPAT_RUN:-.}" ${COMPAT_SKIP:+-skip "$COMPAT_SKIP"} ./pkg/kgo/) >"$TMP/kgo.log" 2>&1
	status=$?
	set -e
else
	port="$(freeport)"
	cport="$(freeport)"
	pport="$(freeport)"
	"$TMP/sluice" --data-dir "$TMP/data" --listen "127.0.0.1:$port" --http-listen "" \
		--embedded-etcd-client-addr "127.0.0.1:$cport" --embedded-etcd-peer-addr "127.0.0.1:$pport" \
		--set share.coordinator.state.topic.replication.factor=1 --set share.coordinator.state.topic.min.isr=1 \
		--log-level warn >"$TMP/sluice.log" 2>&1 &
	PID=$!
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
		sleep 0.1
	done

	echo "compat: franz-go $version pkg/kgo against Sluice on 127.0.0.1:$port"
	set +e
	(cd "$TMP/franz-go" && KGO_SEEDS="127.0.0.1:$port" KGO_TEST_RF=1 KGO_TEST_RECORDS="${KGO_TEST_RECORDS:-500000}" \
		$GO test -count=1 -v -timeout "${COMPAT_TIMEOUT:-12m}" -run "${COMPAT_RUN:-.}" ${COMPAT_SKIP:+-skip "$COMPAT_SKIP"} ./pkg/kgo/) >"$TMP/kgo.log" 2>&1
	status=$?
	set -e
fi

failed="$(grep -E '^--- FAIL: ' "$TMP/kgo.log" | awk '{print $3}' | sort -u || true)"
passed="$(grep -E '^--- PASS: ' "$TMP/kgo.log" | awk '{print $3}' | sort -u || true)"
expected="$(grep -vE '^[[:space:]]*(#|$)' "$ROOT/compat/expected-failures.txt" | awk '{print $1}' | sort -u || true)"
unexpected="$(comm -23 <(printf '%s\n' "$failed" | sed '/^$/d') <(printf '%s\n' "$expected"))"
fixed="$(comm -12 <(printf '%s\n' "$passed" | sed '/^$/d') <(printf '%s\n' "$expected"))"

echo "compat: $(printf '%s\n' "$passed" | sed '/^$/d' | wc -l) passed, $(printf '%s\n' "$failed" | sed '/^$/d' | wc -l) failed"
rc=0
if [ -n "$unexpected" ]; then
	echo "compat: unexpected failures:"; printf '  %s\n' $unexpected
	grep -E -A30 "^--- FAIL: ($(printf '%s|' $unexpected | sed 's/|$//'))" "$TMP/kgo.log" | head -200
	rc=1
fi
if [ -n "$fixed" ]; then
	echo "compat: now passing, remove from compat/expected-failures.txt:"; printf '  %s\n' $fixed
	rc=1
fi
share_tests="TestShareGroupETL TestShareGroupAckOnClose TestShareGroupOffsetsAdmin TestConsumeRegexShareSkipsInternal"
for st in $share_tests; do
	if grep -qE "^--- SKIP: $st " "$TMP/kgo.log"; then
		if [ -n "${COMPAT_ALLOW_SHARE_SKIP:-}" ]; then
			echo "compat: $st skipped (share groups not advertised)"
		else
			echo "compat: $st skipped: the broker does not advertise ShareFetch and ShareAcknowledge v2"
			rc=1
		fi
	elif grep -qE "^--- PASS: $st " "$TMP/kgo.log"; then
		echo "compat: $st passed"
	fi
done
if [ $status -ne 0 ] && [ -z "$failed" ]; then
	echo "compat: go test exited $status without a failing test (build error, panic or timeout):"
	tail -50 "$TMP/kgo.log"
	rc=1
fi
exit $rc
