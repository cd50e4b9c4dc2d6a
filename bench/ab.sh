#!/usr/bin/env bash
# ab.sh: compare nsqd binaries (e.g. ours before/after a change, or ours
# and NSQ's own from bench/build-nsq-reference.sh) on bench/scenarios.sh,
# the same hour, alternating in ABBA order: round 1 runs A then B, round 2
# B then A, and so on. Always running one binary first is not neutral: a
# run leaves the disk writing back what it published while the next one
# starts (MPUB writes ~1 GB in 3 s).
#
# Usage: bench/ab.sh [--rounds=4] BIN_A BIN_B [BIN...] -- [scenarios.sh args]
#   e.g. bench/ab.sh --rounds=4 /tmp/nsqd-nsq /tmp/nsqd -- --only="pub1 drain1" --mem-queue-sizes=10000 --max-steal=3
#
# Binaries are told apart by their file names, which must differ. Prints
# every run, then per scenario and binary the run with the median msgs/s
# (lat_*: the median p99) with its nsqd CPU µs/msg, the number of runs and
# the highest steal % seen (scenarios.sh --max-steal).
set -euo pipefail

rounds=4
bins=()
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds=*) rounds=${1#*=} ;;
	--) shift; break ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) bins+=("$1") ;;
	esac
	shift
done
if [ ${#bins[@]} -lt 2 ]; then
	echo "ab.sh: give at least two nsqd binaries (--help)" >&2
	exit 2
fi
if [ "$(printf '%s\n' "${bins[@]##*/}" | sort -u | wc -l)" -ne ${#bins[@]} ]; then
	echo "ab.sh: binaries need distinct file names" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
results=$(mktemp)
trap 'rm -f "$results"' EXIT

printf 'binary\tscenario\tmemq\tmsgs/s\tnsqd-cpu-us/msg\tlat-p50/p99-us\tsteal%%\n'
for round in $(seq "$rounds"); do
	order=("${bins[@]}")
	if [ $((round % 2)) -eq 0 ]; then
		order=()
		for ((i = ${#bins[@]} - 1; i >= 0; i--)); do order+=("${bins[i]}"); done
	fi
	for bin in "${order[@]}"; do
		"$here/scenarios.sh" --nsqd="$bin" --rounds=1 "$@" 2>/dev/null |
			awk -F'\t' -v b="${bin##*/}" '/^# medians/ { m = 1; next }
				m && $1 != "scenario" && NF { printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b, $1, $2, $3, $4, $7, $8 }' |
			tee -a "$results"
	done
done

echo
echo "# per scenario and binary: the run with the median msgs/s (lat_*: median p99), of $rounds"
printf 'scenario\tmemq\tbinary\tmsgs/s\tnsqd-cpu-us/msg\tlat-p50/p99-us\truns\tmax-steal%%\n'
# latency scenarios: the run with the median p99
awk -F'\t' '{ k = $4; if ($6 != "-" && $6 != "") { split($6, a, "/"); k = a[2] } print $0 "\t" k }' "$results" |
	sort -t$'\t' -k2,2 -k3,3n -k1,1 -k8,8g | awk -F'\t' '
	function flush() {
		if (n) printf "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", sc, mq, bin, rate[int((n + 1) / 2)], cpu[int((n + 1) / 2)], lat[int((n + 1) / 2)], n, st
		n = 0; st = ""
	}
	{ key = $2 SUBSEP $3 SUBSEP $1
	  if (key != last) { flush(); last = key; sc = $2; mq = $3; bin = $1 }
	  n++; rate[n] = $4; cpu[n] = $5; lat[n] = $6
	  if (st == "" || $7 + 0 > st + 0) st = $7 }
	END { flush() }'
