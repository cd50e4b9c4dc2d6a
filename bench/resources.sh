#!/usr/bin/env bash
# resources.sh: measure nsqd's memory and CPU with bench_resources, each
# measurement against a freshly started nsqd, and print a table of medians.
#
# Usage: bench/resources.sh [--nsqd=PATH] [--rounds=3] [--only="empty conns channels"]
#                           [--topics=100] [--channels=100] [--idle=10s]
#                           [--num=5000] [--identify] [--nsqd-flags="..."]
#                           [--tcp-port=27150] [--http-port=27151] [--keep]
#
#   --nsqd=PATH        nsqd binary to measure (default: build ./apps/nsqd)
#   --rounds=N         rounds; every round runs each measurement once
#   --only=LIST        measurements to run: empty, conns, channels
#   --topics, --channels, --idle
#                      channels: topics x channels created over HTTP, and
#                      how long the idle CPU is averaged
#   --num, --identify  conns: idle connections held (magic only, or with
#                      an IDENTIFY too)
#   --nsqd-flags       extra flags for nsqd
#   --tcp-port/--http-port
#                      loopback ports of the nsqd (not 4150/4151 or the
#                      24150/24151 of bench.sh, so those are left alone)
#   --keep             keep the temp dir (binaries, nsqd logs, tool output)
#
# Every measurement starts nsqd on 127.0.0.1 with its own fresh data dir and
# default --mem-queue-size, with the soft open-files limit raised to the
# hard limit (5,000 connections need more than 1024). Only the nsqd this
# script started is stopped, by its PID. Measurements are interleaved round
# by round, so load from other processes spreads over all of them.
set -euo pipefail

nsqd_bin=
rounds=3
only="empty conns channels"
topics=100
channels=100
idle=10s
num=5000
identify=
nsqd_flags=
tcp_port=27150
http_port=27151
keep=0

for arg in "$@"; do
	case "$arg" in
	--nsqd=*) nsqd_bin=${arg#*=} ;;
	--rounds=*) rounds=${arg#*=} ;;
	--only=*) only=${arg#*=} ;;
	--topics=*) topics=${arg#*=} ;;
	--channels=*) channels=${arg#*=} ;;
	--idle=*) idle=${arg#*=} ;;
	--num=*) num=${arg#*=} ;;
	--identify) identify=--identify ;;
	--nsqd-flags=*) nsqd_flags=${arg#*=} ;;
	--tcp-port=*) tcp_port=${arg#*=} ;;
	--http-port=*) http_port=${arg#*=} ;;
	--keep) keep=1 ;;
	-h | --help)
		sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "resources.sh: unknown argument $arg (see --help)" >&2
		exit 2
		;;
	esac
done
for m in $only; do
	case "$m" in
	empty | conns | channels) ;;
	*)
		echo "resources.sh: unknown measurement $m in --only" >&2
		exit 2
		;;
	esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsqres.XXXXXX")
nsqd_pid=
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_traps

echo "# building into $tmp"
if [ -z "$nsqd_bin" ]; then
	(cd "$repo" && go build -o "$tmp/nsqd" ./apps/nsqd)
	nsqd_bin=$tmp/nsqd
fi
(cd "$repo" && go build -o "$tmp/bench_resources" ./bench/bench_resources)
echo "# nsqd: $nsqd_bin ($("$nsqd_bin" --version 2>&1 | head -1))"
echo "# rounds=$rounds only=\"$only\" topics=$topics channels=$channels idle=$idle num=$num $identify"
echo "# load: $(uptime)"

tcp=127.0.0.1:$tcp_port
http=127.0.0.1:$http_port
run=0

start_nsqd() {
	run=$((run + 1))
	local data=$tmp/data.$run
	mkdir -p "$data"
	# shellcheck disable=SC2086 # the extra flags are word-split on purpose
	(
		ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
		exec "$nsqd_bin" --tcp-address="$tcp" --http-address="$http" \
			--data-path="$data" $nsqd_flags
	) >"$tmp/nsqd.$run.log" 2>&1 &
	nsqd_pid=$!
	bench_wait_ping resources.sh "$http" "$tmp/nsqd.$run.log"
}

stop_nsqd() {
	kill "$nsqd_pid" 2>/dev/null || true
	wait "$nsqd_pid" 2>/dev/null || true
	nsqd_pid=
	rm -rf "$tmp/data.$run"
}

# field LABEL FILE FIELD: the FIELDth word of the line starting with LABEL,
# without a unit suffix (s, %)
field() {
	awk -v l="$1" -v f="$3" 'index($0, l) == 1 { v = $f; sub(/[s%]$/, "", v); print v; exit }' "$2"
}

# results are kept as lines "name value" in $tmp/results
measure() { # mode
	local out=$tmp/$1.$run.out
	start_nsqd
	local rc=0
	case "$1" in
	empty)
		"$tmp/bench_resources" empty --pid="$nsqd_pid" >"$out" || rc=$?
		;;
	conns)
		# shellcheck disable=SC2086 # $identify is empty or one flag
		"$tmp/bench_resources" conns --pid="$nsqd_pid" --nsqd-tcp-address="$tcp" \
			--num="$num" $identify >"$out" || rc=$?
		;;
	channels)
		"$tmp/bench_resources" channels --pid="$nsqd_pid" --nsqd-http-address="$http" \
			--topics="$topics" --channels="$channels" --idle="$idle" >"$out" || rc=$?
		;;
	esac
	stop_nsqd
	sed "s/^/  /" "$out"
	if [ "$rc" != 0 ]; then
		echo "resources.sh: bench_resources $1 failed ($rc)" >&2
		exit 1
	fi
	case "$1" in
	empty)
		echo "empty_rss $(field 'rss:' "$out" 2)" >>"$tmp/results"
		;;
	conns)
		echo "conns_before $(field 'rss:' "$out" 2)" >>"$tmp/results"
		echo "conns_after $(field 'rss:' "$out" 5)" >>"$tmp/results"
		echo "conns_per $(field 'per connection:' "$out" 3)" >>"$tmp/results"
		;;
	channels)
		echo "ch_create $(field 'create time:' "$out" 3)" >>"$tmp/results"
		echo "ch_quiet $(field 'quiet after:' "$out" 3)" >>"$tmp/results"
		if grep -q '^near idle after:' "$out"; then
			echo "ch_nearidle $(field 'near idle after:' "$out" 4)" >>"$tmp/results"
		fi
		echo "ch_rss $(field 'rss:' "$out" 2)" >>"$tmp/results"
		echo "ch_idle $(field 'idle cpu:' "$out" 3)" >>"$tmp/results"
		;;
	esac
}

: >"$tmp/results"
for r in $(seq "$rounds"); do
	for m in $only; do
		echo "# round $r: $m ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1 /proc/loadavg))"
		measure "$m"
	done
done
echo "# load: $(uptime)"

# values NAME: all values of NAME in run order
values() { awk -v n="$1" '$1 == n { printf "%s%s", s, $2; s = " " }' "$tmp/results"; }
# median NAME: the median (lower of the two middle ones) of NAME's values;
# a ">60" (not reached within the bound) sorts as 60 but keeps its ">"
median() {
	awk -v n="$1" '$1 == n { print $2 }' "$tmp/results" |
		awk '{ v = $1; sub(/^>/, "", v); print v, $1 }' | sort -g |
		awk '{ a[NR] = $2 } END { if (NR) print a[int((NR + 1) / 2)] }'
}
row() { # label NAME unit NSQ
	local m
	m=$(median "$2")
	[ -n "$m" ] || return 0
	printf "| %s | %s %s | %s | %s |\n" "$1" "$m" "$3" "$(values "$2")" "$4"
}

echo
echo "| Measurement | median of $rounds | runs | NSQ v1.3.0 |"
echo "|---|---|---|---|"
row "empty nsqd: RSS" empty_rss MiB "9.8 MiB"
row "$num idle connections: RSS before" conns_before MiB ""
row "$num idle connections: RSS with them" conns_after MiB ""
row "$num idle connections: RSS per connection" conns_per KiB "~26 KiB (5,000)"
row "$topics × $channels channels: create time over HTTP" ch_create s ""
row "$topics × $channels channels: quiet after (CPU < 2 % for 1 s)" ch_quiet s "~19 s (100 × 100, CPU-busy time)"
row "$topics × $channels channels: near idle after (CPU < idle + 2 points for 1 s)" ch_nearidle s ""
row "$topics × $channels channels: RSS" ch_rss MiB "1.55 GiB (100 × 100)"
row "$topics × $channels channels: idle CPU (% of one core)" ch_idle % "5.7 % (100 × 100)"
