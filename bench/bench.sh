#!/usr/bin/env bash
# bench.sh: build nsqd and the bench tools, start a fresh nsqd on loopback,
# publish with bench_writer for --runfor, then consume with bench_reader,
# and print the rates (as NSQ's bench/bench.sh does).
#
# Usage: bench/bench.sh [--size=200] [--batch-size=200]
#                       [--mem-queue-size=1000000] [--data-path=DIR]
#                       [--runfor=10s] [--tcp-port=24150] [--http-port=24151]
#                       [--writer-flags="..."] [--reader-flags="..."]
#                       [--profile=PREFIX] [--keep]
#
#   --size, --batch-size   message size and MPUB batch, passed to the tools
#   --mem-queue-size       passed to nsqd; the default 1000000 is NSQ's
#                          bench script's, nsqd's own default is 10000
#   --data-path            nsqd's data dir (default: a fresh temp dir)
#   --runfor               how long each tool runs
#   --tcp-port/--http-port loopback ports for nsqd (not 4150/4151 so that a
#                          running nsqd is left alone)
#   --writer-flags, --reader-flags
#                          extra flags for the tools, e.g. "--conns=1 --pub"
#   --profile=PREFIX       write nsqd CPU profiles PREFIX.pub.pprof and
#                          PREFIX.sub.pprof taken during each phase
#   --keep                 keep the build/temp dir (its path is printed)
#
# The topic sub_bench and its channel ch are created before publishing, so
# every published message is also queued for the reader. Only the nsqd this
# script started is stopped at the end (by its PID).
set -euo pipefail

size=200
batch_size=200
mem_queue_size=1000000
data_path=
runfor=10s
tcp_port=24150
http_port=24151
writer_flags=
reader_flags=
profile=
keep=0

for arg in "$@"; do
	case "$arg" in
	--size=*) size=${arg#*=} ;;
	--batch-size=*) batch_size=${arg#*=} ;;
	--mem-queue-size=*) mem_queue_size=${arg#*=} ;;
	--data-path=*) data_path=${arg#*=} ;;
	--runfor=*) runfor=${arg#*=} ;;
	--tcp-port=*) tcp_port=${arg#*=} ;;
	--http-port=*) http_port=${arg#*=} ;;
	--writer-flags=*) writer_flags=${arg#*=} ;;
	--reader-flags=*) reader_flags=${arg#*=} ;;
	--profile=*) profile=${arg#*=} ;;
	--keep) keep=1 ;;
	-h | --help)
		sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "bench.sh: unknown argument $arg (see --help)" >&2
		exit 2
		;;
	esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsqbench.XXXXXX")
if [ -z "$data_path" ]; then
	data_path=$tmp/data
fi
mkdir -p "$data_path"

nsqd_pid=
prof_pid=
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_traps

echo "# using --mem-queue-size=$mem_queue_size --data-path=$data_path --size=$size --batch-size=$batch_size --runfor=$runfor"
echo "# load: $(uptime)"

echo "# building nsqd and the bench tools into $tmp"
(cd "$repo" &&
	go build -o "$tmp/nsqd" ./apps/nsqd &&
	go build -o "$tmp/bench_writer" ./bench/bench_writer &&
	go build -o "$tmp/bench_reader" ./bench/bench_reader &&
	go build -o "$tmp/bench_channels" ./bench/bench_channels)

tcp=127.0.0.1:$tcp_port
http=127.0.0.1:$http_port
"$tmp/nsqd" --tcp-address="$tcp" --http-address="$http" \
	--mem-queue-size="$mem_queue_size" --data-path="$data_path" \
	>"$tmp/nsqd.log" 2>&1 &
nsqd_pid=$!

bench_wait_ping bench.sh "$http" "$tmp/nsqd.log"
curl -fs -X POST "http://$http/topic/create?topic=sub_bench" >/dev/null
curl -fs -X POST "http://$http/channel/create?topic=sub_bench&channel=ch" >/dev/null

# seconds of a Go duration like 10s, 1m, 500ms (for the profile length)
secs() {
	case "$1" in
	*ms) echo 1 ;;
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" | cut -d. -f1 ;;
	*) echo 10 ;;
	esac
}

profile_start() {
	if [ -n "$profile" ]; then
		curl -fs -o "$profile.$1.pprof" \
			"http://$http/debug/pprof/profile?seconds=$(secs "$runfor")" &
		prof_pid=$!
	fi
}
profile_wait() {
	if [ -n "$prof_pid" ]; then
		wait "$prof_pid" || true
		prof_pid=
	fi
}

summary() { # label, result line
	echo "$2" | awk -v l="$1" '{
		for (i = 1; i <= NF; i++) {
			if ($i ~ /ops\/s$/) { v = $i; sub(/ops\/s/, "", v); ops = v }
			if ($i ~ /mb\/s$/) { v = $i; sub(/mb\/s/, "", v); mb = v }
		}
		printf "%s: %.0f msgs/s, %.1f MB/s\n", l, ops, mb
	}'
}

# shellcheck disable=SC2086 # the extra flags are word-split on purpose
profile_start pub
echo -n "PUB: "
pub=$("$tmp/bench_writer" --nsqd-tcp-address="$tcp" --runfor="$runfor" \
	--size="$size" --batch-size="$batch_size" $writer_flags)
echo "$pub"
profile_wait

# shellcheck disable=SC2086
profile_start sub
echo -n "SUB: "
sub=$("$tmp/bench_reader" --nsqd-tcp-address="$tcp" --runfor="$runfor" \
	--size="$size" --channel=ch $reader_flags)
echo "$sub"
profile_wait

echo "# load: $(uptime)"
summary PUB "$pub"
summary SUB "$sub"
