# shellcheck shell=bash
# bench/lib.sh: what bench.sh, scenarios.sh and resources.sh share; sourced, not run.
#
# The caller sets $tmp (its temp dir) and, while one runs, $nsqd_pid (and
# optionally $prof_pid); $keep=1 keeps $tmp. bench_traps installs the exit
# trap that stops those processes (only the ones this script started, by
# PID) and removes $tmp.

bench_cleanup() {
	local pid
	for pid in "${prof_pid:-}" "${nsqd_pid:-}"; do
		if [ -n "$pid" ]; then
			kill "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	if [ "${keep:-0}" = 1 ]; then
		echo "# kept $tmp"
	else
		rm -rf "$tmp"
	fi
}

bench_traps() {
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

# bench_wait_ping NAME HTTP_ADDR LOG: waits (10 s at most) until the nsqd
# started as $nsqd_pid answers /ping; exits the script with its log if it
# died or never answered.
bench_wait_ping() {
	local name=$1 http=$2 log=$3
	for _ in $(seq 200); do
		if curl -fs "http://$http/ping" >/dev/null 2>&1; then
			return 0
		fi
		if ! kill -0 "$nsqd_pid" 2>/dev/null; then
			echo "$name: nsqd exited:" >&2
			cat "$log" >&2
			nsqd_pid=
			exit 1
		fi
		sleep 0.05
	done
	echo "$name: nsqd did not answer /ping within 10s" >&2
	exit 1
}
