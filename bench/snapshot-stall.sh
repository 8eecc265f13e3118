#!/usr/bin/env bash
# Commit latency while a large state snapshots (issue 12, item 13). For a git revision (A) and
# the working tree (B), alternating A, B, A, B, ... on the same machine: start 3 `skiff-node`s
# (fsync on) with a low snapshot threshold, load KEYS distinct keys of 16-byte values through
# the leader's RESP port, then measure SET latency with one connection (redis-benchmark,
# random keys among the loaded ones) while the nodes snapshot the state. The same round also
# measures B with snapshots off (the anchor: what the latency is without any). Prints each
# run's p50/p99/max and the snapshots taken, then the medians.
#
# Needs: redis-tools (apt), git, python3. Usage:
#   bench/snapshot-stall.sh REV [rounds] [keys] [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: bench/snapshot-stall.sh REV [rounds] [keys] [requests]}
ROUNDS=${2:-2}
KEYS=${3:-1000000}
REQS=${4:-20000}
# Bytes of log between snapshots: several snapshots fall inside one measurement.
THRESHOLD=${THRESHOLD:-300000}
WORK=$(mktemp -d /tmp/skiff-snap.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  git worktree remove --force "$WORK/a" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

git worktree add -q --detach "$WORK/a" "$REV"
( cd "$WORK/a" && cargo build -q --release -p skiff-mio --bin skiff-node --target-dir "$PWD/../target-a" )
cargo build -q --release -p skiff-mio --bin skiff-node
declare -A BIN=([A]="$WORK/target-a/release/skiff-node" [B]="$PWD/target/release/skiff-node" [off]="$PWD/target/release/skiff-node")

PEERS="1=127.0.0.1:17001,2=127.0.0.1:17002,3=127.0.0.1:17003"
CLIENTS="1=127.0.0.1:17101,2=127.0.0.1:17102,3=127.0.0.1:17103"

run() { # run A|B|off ROUND
  local side=$1 round=$2 bin=${BIN[$1]} dir="$WORK/data-$1-$2" threshold=$THRESHOLD
  [ "$side" = off ] && threshold=1000000000000
  local started=()
  for i in 1 2 3; do
    mkdir -p "$dir/n$i"
    "$bin" --id "$i" --peers "$PEERS" --clients "$CLIENTS" --client-listen "127.0.0.1:1710$i" \
      --resp-listen "127.0.0.1:1638$i" --data-dir "$dir/n$i" --snapshot-threshold "$threshold" \
      >"$dir/log$i" 2>&1 &
    pids+=($!); started+=($!)
  done
  local port="" p
  for _ in $(seq 1 100); do
    for p in 16381 16382 16383; do
      if redis-cli -p "$p" info 2>/dev/null | grep -q '^role:Leader'; then port=$p; fi
    done
    [ -n "$port" ] && break
    sleep 0.1
  done
  python3 - "$KEYS" <<'EOF' | redis-cli -p "$port" --pipe >/dev/null
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
for i in range(n):
    k = b"key:%012d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n0123456789abcdef\r\n" % (len(k), k))
EOF
  local line
  line=$(redis-benchmark -p "$port" -t set -c 1 -n "$REQS" -r "$KEYS" -d 16 2>/dev/null | tr '\r' '\n' \
    | awk '/latency summary/ { getline; getline; print $3, $5, $6 }')
  local keys snaps
  keys=$(redis-cli -p "$port" info | tr -d '\r' | awk -F: '/^keys:/ { print $2 }')
  snaps=$(redis-cli -p "$port" info | tr -d '\r' | awk -F: '/^snapshot_index:/ { print $2 }')
  echo "$side $round keys=$keys snapshot_index=$snaps p50/p99/max_ms=$line"
  for p in "${started[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
  pids=()
  rm -rf "$dir"
}

for r in $(seq 1 "$ROUNDS"); do
  run A "$r"
  run B "$r"
  run off "$r"
done | tee "$WORK/results"

python3 - "$WORK/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    side = line.split()[0]
    p50, p99, mx = map(float, line.rsplit("=", 1)[1].split())
    rows.setdefault(side, []).append((p50, p99, mx))
for side, vals in rows.items():
    med = [statistics.median(v[i] for v in vals) for i in range(3)]
    print(f"{side}: median p50 {med[0]:.3f} ms, p99 {med[1]:.3f} ms, max {med[2]:.3f} ms over {len(vals)} runs")
EOF
