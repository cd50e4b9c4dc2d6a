#!/usr/bin/env bash
# scenarios.sh: the measurements of docs/performance.md. For every round and
# every --mem-queue-size it starts a fresh nsqd (own data dir, topic
# sub_bench with channel ch created first) per scenario:
#
#   pub1   PUB, 1 connection, waiting for each OK      (bench_writer --pub --conns=1)
#   pub4   PUB, 4 connections                          (bench_writer --pub --conns=4)
#   mpub1  MPUB of 200, 1 connection                   (bench_writer --conns=1)
#   mpub4  MPUB of 200, 4 connections                  (bench_writer --conns=4)
#   drain1 drain --drain messages of a backlog (20k more are queued, see run()),
#          RDY 2500, FIN each, 1 consumer
#   drain4 the same with 4 consumers                   (bench_reader --count)
#
# and prints msgs/s, nsqd's and the tool's CPU µs per message and the
# 1-minute load average for each run, then per scenario the run with the
# median rate (its CPU figures alongside) and the highest load seen. Scenarios are interleaved round by
# round so that load from other processes spreads over all of them.
#
# Usage: bench/scenarios.sh [--rounds=3] [--runfor=5s] [--drain=600000]
#                           [--mem-queue-sizes="10000 0"] [--only="pub1 drain4"]
#                           [--tcp-port=24150] [--http-port=24151]
set -euo pipefail

rounds=3
runfor=5s
drain=600000
memqs="10000 0"
only="pub1 pub4 mpub1 mpub4 drain1 drain4"
tcp_port=24150
http_port=24151
for arg in "$@"; do
	case "$arg" in
	--rounds=*) rounds=${arg#*=} ;;
	--runfor=*) runfor=${arg#*=} ;;
	--drain=*) drain=${arg#*=} ;;
	--mem-queue-sizes=*) memqs=${arg#*=} ;;
	--only=*) only=${arg#*=} ;;
	--tcp-port=*) tcp_port=${arg#*=} ;;
	--http-port=*) http_port=${arg#*=} ;;
	-h | --help)
		sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "scenarios.sh: unknown argument $arg" >&2
		exit 2
		;;
	esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsqscen.XXXXXX")
nsqd_pid=
cleanup() {
	if [ -n "$nsqd_pid" ]; then
		kill "$nsqd_pid" 2>/dev/null || true
		wait "$nsqd_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$repo" &&
	go build -o "$tmp/nsqd" ./apps/nsqd &&
	go build -o "$tmp/bench_writer" ./bench/bench_writer &&
	go build -o "$tmp/bench_reader" ./bench/bench_reader)

tcp=127.0.0.1:$tcp_port
http=127.0.0.1:$http_port

start_nsqd() { # mem-queue-size
	rm -rf "$tmp/data"
	mkdir -p "$tmp/data"
	"$tmp/nsqd" --tcp-address="$tcp" --http-address="$http" \
		--mem-queue-size="$1" --data-path="$tmp/data" >"$tmp/nsqd.log" 2>&1 &
	nsqd_pid=$!
	for _ in $(seq 100); do
		curl -fs "http://$http/ping" >/dev/null 2>&1 && break
		sleep 0.05
	done
	curl -fs -X POST "http://$http/topic/create?topic=sub_bench" >/dev/null
	curl -fs -X POST "http://$http/channel/create?topic=sub_bench&channel=ch" >/dev/null
}
stop_nsqd() {
	kill "$nsqd_pid" 2>/dev/null || true
	wait "$nsqd_pid" 2>/dev/null || true
	nsqd_pid=
}
# nsqd's user+system CPU time in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$nsqd_pid/stat"; }
ops() { sed -n 's/.* - \([0-9.]*\)ops\/s.*/\1/p'; }
load1() { cut -d' ' -f1 /proc/loadavg; }

hz=$(getconf CLK_TCK)
results=$tmp/results
: >"$results"

run() { # scenario memq
	local sc=$1 memq=$2 out c0 c1 n load
	start_nsqd "$memq"
	load=$(load1)
	case "$sc" in
	pub1) flags="--pub --conns=1" ;;
	pub4) flags="--pub --conns=4" ;;
	mpub1) flags="--conns=1" ;;
	mpub4) flags="--conns=4" ;;
	esac
	case "$sc" in
	pub* | mpub*)
		c0=$(cpu_ticks)
		# shellcheck disable=SC2086
		out=$("$tmp/bench_writer" --nsqd-tcp-address="$tcp" --runfor="$runfor" $flags 2>"$tmp/err")
		c1=$(cpu_ticks)
		;;
	drain*)
		# preload a little more than is timed: when the queue runs dry,
		# the last partial output buffer waits for nsqd's 250 ms flush
		# tick, which would end every drain on a tick boundary
		"$tmp/bench_writer" --nsqd-tcp-address="$tcp" --runfor=120s --count=$((drain + 20000)) >/dev/null 2>&1
		c0=$(cpu_ticks)
		out=$("$tmp/bench_reader" --nsqd-tcp-address="$tcp" --runfor=120s --count="$drain" \
			--conns="${sc#drain}" 2>"$tmp/err")
		c1=$(cpu_ticks)
		;;
	esac
	stop_nsqd
	rate=$(echo "$out" | ops)
	# messages handled = rate × duration; duration from the result line
	dur=$(echo "$out" | sed -n 's/^duration: \([^ ]*\) .*/\1/p')
	cpuus=$(awk -v r="$rate" -v d="$dur" -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN {
		s = d; sub(/s$/, "", s)
		if (d ~ /ms$/) { s = d; sub(/ms$/, "", s); s /= 1000 }
		if (d ~ /m[0-9]/) { split(d, p, "m"); s = p[1] * 60 + p[2] }
		n = r * s
		if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "-"
	}')
	clientus=$(sed -n 's/.*client CPU: .*, \([0-9.]*\)us\/msg/\1/p' "$tmp/err")
	printf '%s\t%s\t%s\t%.0f\t%s\t%s\t%s\n' "$sc" "$memq" "$round" "$rate" "$cpuus" "${clientus:--}" "$load" |
		tee -a "$results"
}

echo "# $(nproc) cores; load: $(uptime)"
printf 'scenario\tmemq\tround\tmsgs/s\tnsqd-cpu-us/msg\tclient-cpu-us/msg\tload1\n'
for round in $(seq "$rounds"); do
	for memq in $memqs; do
		for sc in $only; do
			run "$sc" "$memq"
		done
	done
done
echo "# load: $(uptime)"

echo
echo "# medians of $rounds rounds"
printf 'scenario\tmemq\tmsgs/s\tnsqd-cpu-us/msg\tclient-cpu-us/msg\tload1 (max)\n'
for memq in $memqs; do
	for sc in $only; do
		awk -F'\t' -v s="$sc" -v m="$memq" '$1 == s && $2 == m' "$results" | sort -t$'\t' -k4,4n |
			awk -F'\t' '{ r[NR] = $4; c[NR] = $5; u[NR] = $6; if ($7 > l) l = $7; s = $1; m = $2 }
				END { if (NR) { i = int((NR + 1) / 2); printf "%s\t%s\t%s\t%s\t%s\t%s\n", s, m, r[i], c[i], u[i], l } }'
	done
done
