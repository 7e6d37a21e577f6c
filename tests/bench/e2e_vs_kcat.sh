#!/usr/bin/env bash
# End-to-end consumption speed of `cxpulse run` against kcat reading the same topic:
# how close the daemon (decode, rules, findings, commits) gets to a bare consumer.
#
#   tests/bench/e2e_vs_kcat.sh [path/to/cxpulse]      (default: build/processor/cxpulse)
#
# Starts `cxpulse mock-kafka` (librdkafka's mock cluster) in the background, fills
# cx.interactions (64 partitions) with `cxpulse gen`, times kcat reading it to the end,
# then times `cxpulse run --exit-when-idle` (a fresh consumer group) doing the same.
# Not run by ctest. Environment:
#   EVENTS=2000000     events to generate
#   PARTITIONS=64      partitions of cx.interactions
#   RULES=rules/       rule file or directory for the daemon
#   RUN_ARGS=          extra arguments for `cxpulse run`, e.g. "--shards 2"
#   RUN_TIMEOUT=900    seconds before the daemon run counts as hung
#   SKIP_DAEMON=1      stop after kcat (produce and kcat only)
#   DELIVERY=exactly_once  or at_least_once (engine.delivery)
#   PERF_DATA=FILE     profile the whole machine while the daemon runs:
#                      perf record -a -g -o FILE (timings then include perf's overhead)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cxpulse=${1:-$root/build/processor/cxpulse}
events=${EVENTS:-2000000}
partitions=${PARTITIONS:-64}
rules=${RULES:-$root/rules}
run_timeout=${RUN_TIMEOUT:-900}
read -r -a run_args <<<"${RUN_ARGS:-}"

die() { echo "e2e_vs_kcat: $*" >&2; exit 1; }
[[ -x $cxpulse ]] || die "no cxpulse binary at $cxpulse (build first, or pass its path)"
command -v kcat >/dev/null || die "kcat not found (bash deploy/install-deps.sh installs it)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (apt-get install time)"

work=$(mktemp -d -t cxpulse-e2e-XXXXXX)
mock_pid=""
cleanup() {
  if [[ -n $mock_pid ]] && kill -0 "$mock_pid" 2>/dev/null; then
    kill -TERM "$mock_pid" 2>/dev/null || true
    wait "$mock_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Seconds in a /usr/bin/time -f %e file; events per second.
elapsed() { tail -n 1 "$1"; }
rate() { awk -v n="$events" -v s="$1" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }

"$cxpulse" mock-kafka --topic "cx.interactions:$partitions" --topic cx.findings:8 --topic cx.deadletter:1 \
  --topic "e2e.changelog:$partitions" \
  >"$work/bootstrap" 2>"$work/mock-kafka.log" &
mock_pid=$!
for _ in $(seq 300); do
  [[ -s $work/bootstrap ]] && break
  kill -0 "$mock_pid" 2>/dev/null || { cat "$work/mock-kafka.log" >&2; die "mock-kafka exited"; }
  sleep 0.1
done
bootstrap=$(head -n 1 "$work/bootstrap")
[[ -n $bootstrap ]] || die "mock-kafka printed no bootstrap servers"
echo "mock Kafka on $bootstrap: cx.interactions x$partitions"

# Event time in the past (about 1000 events per simulated second at the default rate),
# so nothing is ahead of the wall clock when the daemon reads it.
start="now-$((events / 500 + 600))s"
/usr/bin/time -f %e -o "$work/gen.time" \
  "$cxpulse" gen --brokers "$bootstrap" --events "$events" --start "$start" 2>"$work/gen.log" ||
  { cat "$work/gen.log" >&2; die "gen failed"; }
grep '^gen:' "$work/gen.log"
gen_s=$(elapsed "$work/gen.time")

/usr/bin/time -f %e -o "$work/kcat.time" \
  kcat -C -b "$bootstrap" -t cx.interactions -o beginning -e -q >/dev/null
kcat_s=$(elapsed "$work/kcat.time")
# Not timed: make sure kcat saw every event.
seen=$(kcat -C -b "$bootstrap" -t cx.interactions -o beginning -e -q -f '\n' | wc -l)
[[ $seen -eq $events ]] || die "kcat read $seen events, expected $events"

printf '%-14s %9s %12s\n' "" seconds events/s
printf '%-14s %9s %12s\n' "produce (gen)" "$gen_s" "$(rate "$gen_s")"
printf '%-14s %9s %12s\n' "kcat" "$kcat_s" "$(rate "$kcat_s")"

if [[ ${SKIP_DAEMON:-0} == 1 ]]; then
  exit 0
fi

# A fresh consumer group, so the daemon reads from the beginning; no idle advance of the
# watermark, so a partition read later than others does not turn its events late.
cat >"$work/cxpulse.yaml" <<EOF
kafka:
  brokers: $bootstrap
  group_id: e2e-bench-$(date +%s%N)-$$
  topics: {changelog: e2e.changelog}
rules: $rules
admin:
  address: 127.0.0.1:0
engine:
  idle_partition_timeout: 24h
  delivery: ${DELIVERY:-exactly_once}
EOF
run_code=0
perf_prefix=()
[[ -n ${PERF_DATA:-} ]] && perf_prefix=(perf record -a -g -o "$PERF_DATA" --)
/usr/bin/time -f '%e %M' -o "$work/run.time" \
  timeout "$run_timeout" "${perf_prefix[@]}" "$cxpulse" run --config "$work/cxpulse.yaml" --exit-when-idle "${run_args[@]}" \
  >"$work/run.log" 2>&1 || run_code=$?
if [[ $run_code -ne 0 ]]; then
  tail -n 20 "$work/run.log" >&2
  die "cxpulse run exited $run_code$([[ $run_code -eq 124 ]] && echo " (timed out after ${run_timeout}s)")"
fi
read -r run_s run_kb < <(tail -n 1 "$work/run.time")
# The daemon's own log times (millisecond stamps): from its partitions being
# assigned (start-up and the consumer-group join done) to the moment it saw
# every partition at its end. kcat assigns partitions without a group, so this
# is the like-for-like reading time; the whole run above is what a user waits.
log_s() { grep -m 1 -E "$1" "$work/run.log" | awk '{ split(substr($1, 12), t, ":"); printf "%.3f", t[1] * 3600 + t[2] * 60 + t[3] }'; }
assigned_at=$(log_s 'assigned [0-9]+ partition')
idle_at=$(log_s 'every assigned partition is at its end')
proc_s=$(awk -v a="$assigned_at" -v b="$idle_at" 'BEGIN { d = b - a; if (d < 0) d += 86400; printf "%.2f", d }')
printf '%-14s %9s %12s   (peak RSS %d MB)\n' "cxpulse run" "$run_s" "$(rate "$run_s")" $((run_kb / 1024))
printf '%-14s %9s %12s   (assigned -> all partitions at end, from its log)\n' "  after join" "$proc_s" "$(rate "$proc_s")"
awk -v c="$(rate "$run_s")" -v k="$(rate "$kcat_s")" 'BEGIN { printf "cxpulse/kcat   %.2f   (whole run)\n", (k > 0 ? c / k : 0) }'
awk -v c="$(rate "$proc_s")" -v k="$(rate "$kcat_s")" 'BEGIN { printf "cxpulse/kcat   %.2f   (after the group join)\n", (k > 0 ? c / k : 0) }'
echo "daemon's last lines:"
tail -n 3 "$work/run.log"
# Not timed: what the daemon wrote (dead letters should be 0: nothing late or invalid).
count() { kcat -C -b "$bootstrap" -t "$1" -o beginning -e -q -f '\n' | wc -l; }
echo "findings $(count cx.findings), dead letters $(count cx.deadletter)"
