#!/usr/bin/env bash
# scenarios.sh: the measurements of docs/performance.md. For every round and
# every --mem-queue-size it starts a fresh nsqd (own data dir, topic
# sub_bench with channel ch created first; ch0..ch9 instead for fanout10)
# per scenario:
#
#   pub1   PUB, 1 connection, waiting for each OK      (bench_writer --pub --conns=1)
#   pub4   PUB, 4 connections                          (bench_writer --pub --conns=4)
#   mpub1  MPUB of 200, 1 connection                   (bench_writer --conns=1)
#   mpub4  MPUB of 200, 4 connections                  (bench_writer --conns=4)
#   drain1 drain --drain messages of a backlog (20k more are queued, see run()),
#          RDY 2500, FIN each, 1 consumer
#   drain4 the same with 4 consumers                   (bench_reader --count)
#   httppub4  HTTP POST /pub, 4 keep-alive connections (bench_http --mode=pub --conns=4)
#   httpmpub4 HTTP POST /mpub of 200, 4 connections    (bench_http --mode=mpub --conns=4)
#   fanout10  --drain/10 (+20k) messages fanned out to channels ch0..ch9, one
#             consumer each, until each channel had --drain/10; the rate is
#             deliveries/s over all channels (bench_reader --channels=10)
#   req0   drain --drain messages (+20k) with 1 consumer that REQs every first
#          delivery with timeout 0 and FINs the redelivery; the rate counts
#          messages FINed (each was delivered, REQed, redelivered, FINed)
#                                                      (bench_reader --req=0ms)
#   req10  the same with REQ timeout 10 ms            (bench_reader --req=10ms)
#   lat_off end-to-end latency, PUB at 10k msg/s for --runfor, consumer
#          with output buffering off                   (bench_latency --buffering=off)
#   lat_on  the same with nsqd's default output buffering (--buffering=on)
#
# and prints msgs/s, nsqd's and the tool's CPU µs per message and the
# 1-minute load average (and the steal %, see --max-steal) for each run,
# then per scenario the run with the median rate (its CPU figures
# alongside) and the highest load seen. Scenarios are interleaved round by
# round so that load from other processes spreads over all of them.
# For lat_*, msgs/s is the achieved publish rate, the last column holds the
# latency p50/p99 in µs, and the median row is the run with the median p99.
#
# Usage: bench/scenarios.sh [--rounds=3] [--runfor=5s] [--drain=600000]
#                           [--mem-queue-sizes="10000 0"] [--only="pub1 drain4"]
#                           [--warmup=1s] [--nsqd=PATH] [--topic-only]
#                           [--tcp-port=24150] [--http-port=24151]
#                           [--max-steal=PCT]
#
#   --max-steal
#             this machine kind is a VM whose host at times takes its
#             vCPUs away (the steal column of /proc/stat): runs then go at
#             a fraction of their speed and say nothing about nsqd. With
#             --max-steal each run waits (60 s at most) for a second in
#             which steal stays at or below PCT % of the CPU time, and a
#             run during which it went above is repeated (twice at most).
#             Every run reports its steal % either way (last column).
#   --warmup  latency samples of the first --warmup of each lat_* run are
#             dropped (must be shorter than --runfor)
#   --nsqd    nsqd binary to measure (default: build ./apps/nsqd)
#   --topic-only
#             the publish scenarios (pub*, mpub*, http*) publish to a topic
#             with no channel, as NSQ's own bench.sh does against v1.3.0
#             (its /create_channel call is a route v1.x no longer has), so
#             messages stay in the topic's queue; by default the channel
#             ch exists and, having no consumer, takes a copy of each
set -euo pipefail

rounds=3
runfor=5s
drain=600000
memqs="10000 0"
only="pub1 pub4 mpub1 mpub4 drain1 drain4 httppub4 httpmpub4 fanout10 req0 req10 lat_off lat_on"
warmup=1s
topic_only=
max_steal=
nsqd=
tcp_port=24150
http_port=24151
for arg in "$@"; do
	case "$arg" in
	--rounds=*) rounds=${arg#*=} ;;
	--runfor=*) runfor=${arg#*=} ;;
	--drain=*) drain=${arg#*=} ;;
	--mem-queue-sizes=*) memqs=${arg#*=} ;;
	--only=*) only=${arg#*=} ;;
	--warmup=*) warmup=${arg#*=} ;;
	--topic-only) topic_only=1 ;;
	--nsqd=*) nsqd=${arg#*=} ;;
	--max-steal=*) max_steal=${arg#*=} ;;
	--tcp-port=*) tcp_port=${arg#*=} ;;
	--http-port=*) http_port=${arg#*=} ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "scenarios.sh: unknown argument $arg" >&2
		exit 2
		;;
	esac
done
for sc in $only; do
	case "$sc" in
	pub1 | pub4 | mpub1 | mpub4 | drain1 | drain4 | httppub4 | httpmpub4 | fanout10 | req0 | req10 | lat_off | lat_on) ;;
	*)
		echo "scenarios.sh: unknown scenario $sc" >&2
		exit 2
		;;
	esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsqscen.XXXXXX")
nsqd_pid=
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_traps

if [ -n "$nsqd" ]; then
	if [ ! -x "$nsqd" ]; then
		echo "scenarios.sh: --nsqd=$nsqd is not an executable" >&2
		exit 2
	fi
	cp "$nsqd" "$tmp/nsqd"
else
	(cd "$repo" && go build -o "$tmp/nsqd" ./apps/nsqd)
fi
(cd "$repo" &&
	go build -o "$tmp/bench_writer" ./bench/bench_writer &&
	go build -o "$tmp/bench_reader" ./bench/bench_reader &&
	go build -o "$tmp/bench_http" ./bench/bench_http &&
	go build -o "$tmp/bench_latency" ./bench/bench_latency)

tcp=127.0.0.1:$tcp_port
http=127.0.0.1:$http_port

start_nsqd() { # mem-queue-size scenario
	rm -rf "$tmp/data"
	mkdir -p "$tmp/data"
	"$tmp/nsqd" --tcp-address="$tcp" --http-address="$http" \
		--mem-queue-size="$1" --data-path="$tmp/data" >"$tmp/nsqd.log" 2>&1 &
	nsqd_pid=$!
	bench_wait_ping scenarios.sh "$http" "$tmp/nsqd.log"
	curl -fs -X POST "http://$http/topic/create?topic=sub_bench" >/dev/null
	if [ -n "$topic_only" ] && case "$2" in pub* | mpub* | http*) true ;; *) false ;; esac then
		: # no channel: the topic keeps what is published
	elif [ "$2" = fanout10 ]; then
		for c in $(seq 0 9); do
			curl -fs -X POST "http://$http/channel/create?topic=sub_bench&channel=ch$c" >/dev/null
		done
	else
		curl -fs -X POST "http://$http/channel/create?topic=sub_bench&channel=ch" >/dev/null
	fi
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
# preload: publish N messages (MPUB of 200) to sub_bench
preload() { "$tmp/bench_writer" --nsqd-tcp-address="$tcp" --runfor=120s --count="$1" >/dev/null 2>&1; }

hz=$(getconf CLK_TCK)
results=$tmp/results
: >"$results"

# cpu_sample: "steal total" jiffies of all CPUs so far (/proc/stat)
cpu_sample() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t; exit }' /proc/stat; }
# steal_pct "STEAL0 TOTAL0" "STEAL1 TOTAL1": steal as % of the CPU time between
steal_pct() {
	echo "$1 $2" | awk '{ d = $4 - $2; printf "%.1f", (d > 0 ? ($3 - $1) * 100 / d : 0) }'
}
# steal_ok PCT: true without --max-steal, or if PCT is within it
steal_ok() {
	[ -z "$max_steal" ] || awk -v p="$1" -v m="$max_steal" 'BEGIN { exit !(p <= m) }'
}
# wait_quiet: with --max-steal, waits (60 s at most) for a quiet second
wait_quiet() {
	[ -n "$max_steal" ] || return 0
	local a
	for _ in $(seq 60); do
		a=$(cpu_sample)
		sleep 1
		if steal_ok "$(steal_pct "$a" "$(cpu_sample)")"; then
			return 0
		fi
	done
}

run() { # scenario memq
	local try s0 steal
	for try in 1 2 3; do
		wait_quiet
		s0=$(cpu_sample)
		run_once "$@"
		steal=$(steal_pct "$s0" "$(cpu_sample)")
		if [ "$try" = 3 ] || steal_ok "$steal"; then
			break
		fi
		echo "# $1: steal $steal % > $max_steal %, run again" >&2
	done
	printf '%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$round" "$rate" "$cpuus" "${clientus:--}" "$load" "${lat:--}" "$steal" |
		tee -a "$results"
}

run_once() { # scenario memq
	local sc=$1 memq=$2 out c0 c1 n
	lat=-
	start_nsqd "$memq" "$sc"
	load=$(load1)
	case "$sc" in
	pub1) flags="--pub --conns=1" ;;
	pub4) flags="--pub --conns=4" ;;
	mpub1) flags="--conns=1" ;;
	mpub4) flags="--conns=4" ;;
	httppub4) flags="--mode=pub --conns=4" ;;
	httpmpub4) flags="--mode=mpub --conns=4" ;;
	esac
	case "$sc" in
	pub* | mpub*)
		c0=$(cpu_ticks)
		# shellcheck disable=SC2086
		out=$("$tmp/bench_writer" --nsqd-tcp-address="$tcp" --runfor="$runfor" $flags 2>"$tmp/err")
		c1=$(cpu_ticks)
		;;
	httppub* | httpmpub*)
		c0=$(cpu_ticks)
		# shellcheck disable=SC2086
		out=$("$tmp/bench_http" --nsqd-http-address="$http" --runfor="$runfor" $flags 2>"$tmp/err")
		c1=$(cpu_ticks)
		;;
	drain*)
		# preload a little more than is timed: when the queue runs dry,
		# the last partial output buffer waits for nsqd's 250 ms flush
		# tick, which would end every drain on a tick boundary
		preload $((drain + 20000))
		c0=$(cpu_ticks)
		out=$("$tmp/bench_reader" --nsqd-tcp-address="$tcp" --runfor=120s --count="$drain" \
			--conns="${sc#drain}" 2>"$tmp/err")
		c1=$(cpu_ticks)
		;;
	fanout10)
		# every channel gets a copy of each message: --drain/10 timed
		# per channel (+20k so that none runs dry), --drain deliveries
		preload $((drain / 10 + 20000))
		c0=$(cpu_ticks)
		out=$("$tmp/bench_reader" --nsqd-tcp-address="$tcp" --runfor=120s --count=$((drain / 10)) \
			--channels=10 --conns=1 2>"$tmp/err")
		c1=$(cpu_ticks)
		;;
	req*)
		# counts FINed messages: each was delivered (attempts 1),
		# REQed with the timeout, redelivered (attempts 2) and FINed
		preload $((drain + 20000))
		c0=$(cpu_ticks)
		out=$("$tmp/bench_reader" --nsqd-tcp-address="$tcp" --runfor=120s --count="$drain" \
			--conns=1 --req="${sc#req}ms" 2>"$tmp/err")
		c1=$(cpu_ticks)
		;;
	lat_*)
		c0=$(cpu_ticks)
		out=$("$tmp/bench_latency" --nsqd-tcp-address="$tcp" --rate=10000 --runfor="$runfor" \
			--warmup="$warmup" --buffering="${sc#lat_}" 2>"$tmp/err")
		c1=$(cpu_ticks)
		lat=$(echo "$out" | sed -n 's/^latency: .* p50 \([0-9.]*\)us .* p99 \([0-9.]*\)us .*/\1\/\2/p')
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
}

echo "# $(nproc) cores; load: $(uptime)"
printf 'scenario\tmemq\tround\tmsgs/s\tnsqd-cpu-us/msg\tclient-cpu-us/msg\tload1\tlat-p50/p99-us\tsteal%%\n'
for round in $(seq "$rounds"); do
	for memq in $memqs; do
		for sc in $only; do
			run "$sc" "$memq"
		done
	done
done
echo "# load: $(uptime)"

echo
echo "# medians of $rounds rounds (lat_*: the run with the median p99)"
printf 'scenario\tmemq\tmsgs/s\tnsqd-cpu-us/msg\tclient-cpu-us/msg\tload1 (max)\tlat-p50/p99-us\tsteal%%\n'
for memq in $memqs; do
	for sc in $only; do
		# sort key: msgs/s, or p99 for the latency scenarios
		awk -F'\t' -v s="$sc" -v m="$memq" '$1 == s && $2 == m {
				k = $4; if ($8 != "-") { split($8, a, "/"); k = a[2] }
				print k "\t" $0 }' "$results" | sort -t$'\t' -k1,1g | cut -f2- |
			awk -F'\t' '{ r[NR] = $4; c[NR] = $5; u[NR] = $6; if ($7 > l) l = $7; p[NR] = $8; st[NR] = $9; s = $1; m = $2 }
				END { if (NR) { i = int((NR + 1) / 2); printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s, m, r[i], c[i], u[i], l, p[i], st[i] } }'
	done
done
