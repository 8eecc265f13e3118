#!/usr/bin/env bash
# SET latency at one connection while every node of `skiff local-cluster` snapshots 1M keys
# at once (BGSAVE on each, as bench/state.sh asks), for two builds of `skiff`, alternating
# A, B, A, B, ... on the same machine. Each run: a fresh cluster, 1,000,000 distinct keys
# (bench/load_keys.py), 3,000 SETs (random keys, 64-byte values) without a snapshot, then
# 3,000 more with BGSAVE sent to the 3 nodes 0.2 s in. Prints each run's avg/min/p50/p95/
# p99/max in ms (redis-benchmark's summary) for both, and each node's longest loop round
# and storage write (`INFO`, over the whole run, the load included).
#
# Needs: redis-tools (apt), python3 with redis (pip). Usage:
#   bench/bgsave-stall.sh ROUNDS SKIFF_A SKIFF_B
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:?usage: bench/bgsave-stall.sh ROUNDS SKIFF_A SKIFF_B}
A=${2:?binary A}
B=${3:?binary B}
. bench/lib.sh
bench_init skiff-bgsave-stall
need_tools "apt install redis-tools python3" redis-benchmark redis-cli python3
ports_free 6381 6382 6383

summary() { tr '\r' '\n' <"$1" | awk '/latency summary/ { getline; getline; print $1, $2, $3, $4, $5, $6 }'; }

run() { # run NAME BINARY ROUND
  local name=$1 bin=$2 round=$3 pid leader p
  rm -rf "$WORK/skiff"; mkdir -p "$WORK/skiff"
  ( cd "$WORK/skiff" && exec "$bin" local-cluster >"$WORK/skiff.log" 2>&1 ) &
  pid=$!; pids+=($pid); sleep 3
  leader=$(skiff_leader)
  python3 bench/load_keys.py 1000000 "$leader" >/dev/null
  sleep 1
  redis-benchmark -p "$leader" -t set -c 1 -r 1000000 -d 64 -n 3000 >"$WORK/quiet" 2>/dev/null
  redis-benchmark -p "$leader" -t set -c 1 -r 1000000 -d 64 -n 3000 >"$WORK/snap" 2>/dev/null &
  local b=$!
  sleep 0.2
  for p in 6381 6382 6383; do redis-cli -p $p bgsave >/dev/null; done
  wait "$b"
  local stalls=""
  for p in 6381 6382 6383; do
    stalls+=" $(redis-cli -p $p info | tr -d '\r' | awk -F: '/^(loop_round|storage_write)_max_us/ { printf "%s=%s ", $1, $2 }')"
  done
  echo "$name round $round quiet: $(summary "$WORK/quiet") | snapshotting: $(summary "$WORK/snap") |$stalls"
  stop "${pids[@]}"
}

echo "columns: avg min p50 p95 p99 max (ms)"
for r in $(seq 1 "$ROUNDS"); do
  run A "$A" "$r"
  run B "$B" "$r"
done
