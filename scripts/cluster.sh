#!/usr/bin/env bash
# A local three-broker Sluice cluster as plain processes, for machines
# without Docker (docker-compose.yml is the container version).
#
# Usage:
#   scripts/cluster.sh [start]   build bin/sluice, start etcd and brokers 1-3  (make cluster)
#   scripts/cluster.sh stop      stop the brokers, then the etcd started here  (make cluster-stop)
#   scripts/cluster.sh status    show what is running
#
#   kcat -b localhost:19092,localhost:19093,localhost:19094 -L
#
# Brokers 1, 2, 3 (racks a, b, c) serve Kafka on 127.0.0.1:19092, 19093,
# 19094 and /metrics, /healthz, /readyz on 127.0.0.1:19644, 19645, 19646
# (advertised as 127.0.0.1, so clients on this host only). Metadata lives in
# one etcd on
# 127.0.0.1:12379: Debian's etcd binary if it is on PATH (apt-get install
# etcd-server), otherwise broker 1's embedded etcd, which brokers 2 and 3
# use through --etcd (then broker 1 must stay up for the cluster to work).
# Data is in ./cluster-data/<N>/, logs in ./cluster-data/<N>.log, pids in
# ./cluster-data/<N>.pid (etcd: etcd/, etcd.log, etcd.pid).
#
# start and stop are idempotent: start leaves running members alone and
# starts the missing ones; stop sends SIGTERM, waits, then SIGKILLs. A
# cluster keeps its data across stop/start; rm -rf ./cluster-data resets it.
#
# Environment:
#   SLUICE_CLUSTER_DIR             state directory (default ./cluster-data at the repo root)
#   SLUICE_CLUSTER_BASE_PORT       Kafka port of broker 1; N uses base+N-1 (default 19092)
#   SLUICE_CLUSTER_HTTP_BASE_PORT  HTTP port of broker 1; N uses base+N-1 (default 19644)
#   SLUICE_CLUSTER_ETCD_PORT       etcd client port; the peer port is this + 1 (default 12379)
#   SLUICE_CLUSTER_ETCD            auto (default), external (the etcd binary) or embedded
#   SLUICE_CLUSTER_BIN             run this sluice binary instead of building bin/sluice
#   SLUICE_CLUSTER_TIMEOUT         seconds to wait for each start or stop (default 30)
#   GO                             go command for the build (default go)
# Broker variables (SLUICE_SET, SLUICE_LOG_LEVEL, ...; see README "Flags")
# reach every broker unchanged. SLUICE_SET defaults to
# default.replication.factor=3,min.insync.replicas=2: topics created without
# a replication factor get a copy on every broker, and acks=all survives the
# loss of one.

set -euo pipefail
: "${SLUICE_SET:=default.replication.factor=3,min.insync.replicas=2}"
export SLUICE_SET

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

dir=${SLUICE_CLUSTER_DIR:-$root/cluster-data}
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
base_port=${SLUICE_CLUSTER_BASE_PORT:-19092}
http_base_port=${SLUICE_CLUSTER_HTTP_BASE_PORT:-19644}
etcd_port=${SLUICE_CLUSTER_ETCD_PORT:-12379}
etcd_peer_port=$((etcd_port + 1))
etcd_choice=${SLUICE_CLUSTER_ETCD:-auto}
timeout=${SLUICE_CLUSTER_TIMEOUT:-30}
brokers=(1 2 3)
racks=(x a b c) # indexed by node id

for v in base_port http_base_port etcd_port timeout; do
	if ! [[ ${!v} =~ ^[0-9]+$ ]]; then
		echo "cluster.sh: $v must be a number, got '${!v}'" >&2
		exit 2
	fi
done

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

kafka_port() { echo $((base_port + $1 - 1)); }
http_port() { echo $((http_base_port + $1 - 1)); }

# rel prints a path relative to the current directory when it is under it.
rel() {
	case $1 in "$PWD"/*) echo "./${1#"$PWD"/}" ;; *) echo "$1" ;; esac
}

# port_open succeeds when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# alive succeeds when pid $1 is a running (not zombie) process.
alive() {
	local stat
	[[ $1 =~ ^[0-9]+$ ]] || return 1
	kill -0 "$1" 2>/dev/null || return 1
	stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $stat != Z* ]]
}

# marker is a string only the command line of member $1 (a node id or
# "etcd") contains: its data directory flag. It tells our process apart
# from an unrelated one that reused a pid from a stale pid file.
marker() {
	if [[ $1 == etcd ]]; then echo "--data-dir=$dir/etcd "; else echo "--data-dir=$dir/$1 "; fi
}

# running prints the pid of member $1 if the process in its pid file is
# alive and is that member; otherwise it removes a stale pid file and fails.
running() {
	local pidf=$dir/$1.pid pid args
	[[ -f $pidf ]] || return 1
	pid=$(cat "$pidf" 2>/dev/null || true)
	if alive "$pid"; then
		args="$(ps -ww -o args= -p "$pid" 2>/dev/null || true) "
		if [[ $args == *"$(marker "$1")"* ]]; then
			echo "$pid"
			return 0
		fi
	fi
	rm -f "$pidf"
	return 1
}

# launch starts "$@" detached (own session, no terminal signals, stdin from
# /dev/null, output appended to $2), writes its pid to $1 and prints it.
launch() {
	local pidf=$1 log=$2 i
	shift 2
	rm -f "$pidf"
	# The child shell records its own pid and execs the program, so the pid
	# is the program's whether or not setsid forks.
	# shellcheck disable=SC2016 # $$ and $@ are the child shell's
	local wrap=(bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidf" "$@")
	if command -v setsid >/dev/null 2>&1; then
		setsid "${wrap[@]}" </dev/null >>"$log" 2>&1 &
	else
		nohup "${wrap[@]}" </dev/null >>"$log" 2>&1 &
	fi
	for ((i = 0; i < 100; i++)); do
		if [[ -s $pidf ]]; then
			cat "$pidf"
			return 0
		fi
		sleep 0.05
	done
	die "could not start $1: no pid written; see $(rel "$log")"
}

# http_ok succeeds when GET http://127.0.0.1:$1$2 answers 200. Plain bash
# (/dev/tcp), so neither curl nor wget is needed.
http_ok() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$2" "$1" >&3
		IFS= read -r -t 2 status <&3 || exit 1
		[[ $status == "HTTP/1."?" 200"* ]]
	) 2>/dev/null
}

# wait_ready waits until member $1 (pid $2, log $3) answers 200 on
# http://127.0.0.1:$4$5, failing early if the process exits.
wait_ready() {
	local name=$1 pid=$2 log=$3 port=$4 path=$5 deadline=$((SECONDS + timeout))
	until http_ok "$port" "$path"; do
		if ! alive "$pid"; then
			echo "cluster.sh: $name exited during start-up; last lines of $(rel "$log"):" >&2
			tail -n 20 "$log" >&2 || true
			die "members started before it are still running: scripts/cluster.sh stop"
		fi
		if ((SECONDS >= deadline)); then
			echo "cluster.sh: $name not ready (http://127.0.0.1:$port$path) after ${timeout}s; last lines of $(rel "$log"):" >&2
			tail -n 20 "$log" >&2 || true
			die "members started so far are still running: scripts/cluster.sh stop"
		fi
		sleep 0.1
	done
}

# require_free fails when a port member $1 needs is already taken.
require_free() {
	local name=$1 port
	shift
	for port in "$@"; do
		if port_open "$port"; then
			die "$name: port $port is already in use by another process (set SLUICE_CLUSTER_BASE_PORT, SLUICE_CLUSTER_HTTP_BASE_PORT or SLUICE_CLUSTER_ETCD_PORT)"
		fi
	done
}

# etcd_mode decides between the etcd binary and broker 1's embedded etcd.
# The choice is recorded in $dir/mode: the metadata lives in a different
# place in each mode, so a cluster keeps the mode it was created with.
etcd_mode() {
	local saved=""
	[[ -f $dir/mode ]] && saved=$(cat "$dir/mode")
	case $etcd_choice in
	auto | external | embedded) ;;
	*) die "SLUICE_CLUSTER_ETCD must be auto, external or embedded, got '$etcd_choice'" ;;
	esac
	if [[ -n $saved ]]; then
		if [[ $etcd_choice != auto && $etcd_choice != "$saved" ]]; then
			die "the cluster in $(rel "$dir") uses $saved etcd; stop it and delete the directory to switch to $etcd_choice"
		fi
		if [[ $saved == external ]] && ! command -v etcd >/dev/null 2>&1; then
			die "the cluster in $(rel "$dir") uses an external etcd, but there is no etcd binary on PATH (Debian/Ubuntu: sudo apt-get install etcd-server)"
		fi
		echo "$saved"
		return
	fi
	case $etcd_choice in
	external)
		command -v etcd >/dev/null 2>&1 ||
			die "SLUICE_CLUSTER_ETCD=external but there is no etcd binary on PATH (Debian/Ubuntu: sudo apt-get install etcd-server)"
		echo external
		;;
	embedded) echo embedded ;;
	auto)
		if command -v etcd >/dev/null 2>&1; then
			echo external
		else
			echo "cluster.sh: no etcd binary on PATH (Debian/Ubuntu: sudo apt-get install etcd-server); using broker 1's embedded etcd" >&2
			echo embedded
		fi
		;;
	esac
}

start_etcd() {
	local pid log=$dir/etcd.log url="http://127.0.0.1:$etcd_port" peer="http://127.0.0.1:$etcd_peer_port"
	if pid=$(running etcd); then
		echo "etcd already running (pid $pid)"
		return
	fi
	require_free etcd "$etcd_port" "$etcd_peer_port"
	# The etcd binary reads ETCD_* variables as flags; drop any from the
	# environment so they cannot contradict the flags below.
	local envcmd=(env) v
	for v in $(compgen -e); do
		if [[ $v == ETCD_* ]]; then envcmd+=(-u "$v"); fi
	done
	pid=$(launch "$dir/etcd.pid" "$log" "${envcmd[@]}" etcd \
		--name=sluice-cluster --data-dir="$dir/etcd" \
		--listen-client-urls="$url" --advertise-client-urls="$url" \
		--listen-peer-urls="$peer" --initial-advertise-peer-urls="$peer" \
		--initial-cluster="sluice-cluster=$peer" \
		--logger=zap --log-outputs=stderr)
	# /health is 200 once the member has a leader (itself) and serves.
	wait_ready etcd "$pid" "$log" "$etcd_port" /health
	echo "etcd started (pid $pid) on $url"
}

# start_brokers starts the brokers named in "$@" that are not running,
# then waits until each is ready: registered in etcd and serving, which
# its /readyz reports.
start_brokers() {
	local mode=$1 id pid started=""
	shift
	for id in "$@"; do
		if pid=$(running "$id"); then
			echo "broker $id already running (pid $pid)"
			continue
		fi
		require_free "broker $id" "$(kafka_port "$id")" "$(http_port "$id")"
		local args=(--node-id="$id" --listen="127.0.0.1:$(kafka_port "$id")"
			--advertise="127.0.0.1:$(kafka_port "$id")" --http-listen="127.0.0.1:$(http_port "$id")"
			--rack="${racks[$id]}" --data-dir="$dir/$id")
		if [[ $mode == embedded && $id == 1 ]]; then
			args+=(--embedded-etcd-client-addr="127.0.0.1:$etcd_port"
				--embedded-etcd-peer-addr="127.0.0.1:$etcd_peer_port")
		else
			args+=(--etcd="http://127.0.0.1:$etcd_port")
		fi
		mkdir -p "$dir/$id"
		pid=$(launch "$dir/$id.pid" "$dir/$id.log" "$bin" "${args[@]}")
		started="$started $id"
	done
	for id in $started; do
		pid=$(cat "$dir/$id.pid")
		wait_ready "broker $id" "$pid" "$dir/$id.log" "$(http_port "$id")" /readyz
		echo "broker $id started (pid $pid) on 127.0.0.1:$(kafka_port "$id")"
	done
}

build() {
	if [[ -n ${SLUICE_CLUSTER_BIN:-} ]]; then
		bin=$SLUICE_CLUSTER_BIN
		[[ -x $bin ]] || die "SLUICE_CLUSTER_BIN=$bin is not an executable"
		return 0
	fi
	bin=$root/bin/sluice
	echo "building $(rel "$bin")"
	(cd "$root" && "${GO:-go}" build -o "$bin" ./cmd/sluice) || die "go build failed"
}

cmd_start() {
	mkdir -p "$dir"
	local mode id missing=0
	mode=$(etcd_mode)
	echo "$mode" >"$dir/mode"

	# Build only when something has to start, so re-running against a
	# healthy cluster changes nothing.
	if [[ $mode == external ]] && ! running etcd >/dev/null; then missing=1; fi
	for id in "${brokers[@]}"; do
		if ! running "$id" >/dev/null; then missing=1; fi
	done
	if ((missing == 0)); then
		echo "cluster already running in $(rel "$dir")"
		summary "$mode"
		return 0
	fi
	# Check every port before starting anything, so a clash leaves nothing
	# half-started behind.
	if [[ $mode == external ]] && ! running etcd >/dev/null; then
		require_free etcd "$etcd_port" "$etcd_peer_port"
	fi
	for id in "${brokers[@]}"; do
		if ! running "$id" >/dev/null; then
			require_free "broker $id" "$(kafka_port "$id")" "$(http_port "$id")"
			if [[ $mode == embedded && $id == 1 ]]; then
				require_free "broker 1 (embedded etcd)" "$etcd_port" "$etcd_peer_port"
			fi
		fi
	done
	build

	if [[ $mode == external ]]; then
		start_etcd
		start_brokers "$mode" "${brokers[@]}"
	else
		# Broker 1 hosts etcd, so it has to be up before the others.
		start_brokers "$mode" 1
		start_brokers "$mode" "${brokers[@]:1}"
	fi
	summary "$mode"
}

summary() {
	local mode=$1 id hosts=()
	echo
	if [[ $mode == external ]]; then
		echo "etcd:     http://127.0.0.1:$etcd_port (the etcd binary; data $(rel "$dir")/etcd)"
	else
		echo "etcd:     http://127.0.0.1:$etcd_port (embedded in broker 1)"
	fi
	for id in "${brokers[@]}"; do
		echo "broker $id: 127.0.0.1:$(kafka_port "$id")  rack ${racks[$id]}  http://127.0.0.1:$(http_port "$id")/metrics  log $(rel "$dir")/$id.log"
		hosts+=("localhost:$(kafka_port "$id")")
	done
	local list
	list=$(
		IFS=,
		echo "${hosts[*]}"
	)
	echo
	echo "Try:  kcat -b $list -L"
	echo "Stop: make cluster-stop   (or scripts/cluster.sh stop)"
}

# stop_members sends SIGTERM to the running members named in "$@", waits
# for all of them up to the timeout, then SIGKILLs the rest.
stop_members() {
	local name pid names=() pids=()
	for name in "$@"; do
		if pid=$(running "$name"); then
			kill -TERM "$pid" 2>/dev/null || true
			names+=("$name")
			pids+=("$pid")
		fi
	done
	((${#pids[@]} > 0)) || return 0
	local deadline=$((SECONDS + timeout)) i left
	while :; do
		left=0
		for i in "${!pids[@]}"; do
			alive "${pids[$i]}" && left=$((left + 1))
		done
		((left == 0 || SECONDS >= deadline)) && break
		sleep 0.1
	done
	for i in "${!pids[@]}"; do
		name=${names[$i]}
		pid=${pids[$i]}
		if alive "$pid"; then
			echo "$(label "$name") did not exit ${timeout}s after SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			local j
			for ((j = 0; j < 50; j++)); do
				alive "$pid" || break
				sleep 0.1
			done
		fi
		if alive "$pid"; then
			echo "cluster.sh: $(label "$name") (pid $pid) survived SIGKILL" >&2
		else
			rm -f "$dir/$name.pid"
			echo "$(label "$name") stopped (pid $pid)"
		fi
	done
}

label() { if [[ $1 == etcd ]]; then echo etcd; else echo "broker $1"; fi; }

cmd_stop() {
	if [[ ! -d $dir ]]; then
		echo "nothing to stop: $(rel "$dir") does not exist"
		return
	fi
	local mode=""
	[[ -f $dir/mode ]] && mode=$(cat "$dir/mode")
	# Brokers leave etcd on shutdown, so whatever serves etcd goes last.
	if [[ $mode == embedded ]]; then
		stop_members "${brokers[@]:1}"
		stop_members 1
	else
		stop_members "${brokers[@]}"
	fi
	stop_members etcd
	local name
	for name in etcd "${brokers[@]}"; do
		if running "$name" >/dev/null; then
			die "$(label "$name") is still running"
		fi
	done
	echo "cluster in $(rel "$dir") stopped (data kept; rm -rf $(rel "$dir") to reset)"
}

cmd_status() {
	local name pid mode="" down=0
	[[ -f $dir/mode ]] && mode=$(cat "$dir/mode")
	for name in etcd "${brokers[@]}"; do
		[[ $name == etcd && $mode != external ]] && continue
		if pid=$(running "$name"); then
			echo "$(label "$name"): running (pid $pid)"
		else
			echo "$(label "$name"): stopped"
			down=1
		fi
	done
	return "$down"
}

case ${1:-start} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
-h | --help | help) sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" ;;
*)
	echo "usage: $0 [start|stop|status]" >&2
	exit 2
	;;
esac
