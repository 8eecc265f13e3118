#!/usr/bin/env bash
# Commit latency while a large state snapshots (issue 12, item 13). For a git revision (A) and
# the working tree (B), alternating A, B, ... on the same machine: start 3 `skiff-node`s
# (fsync on) with snapshots off, load KEYS distinct keys of 16-byte values through the
# leader's RESP port, restart them with a low snapshot threshold (they replay the log, then
# snapshot as writes come), and measure SET latency with one connection (redis-benchmark,
# random keys among the loaded ones) while the nodes snapshot the state. Each round also
# measures B with snapshots off: the anchor. Prints each run's p50/p99/max and the last
# snapshot index, then the medians.
#
# Needs: redis-tools (apt), git, python3. Usage:
#   bench/snapshot-stall.sh REV [rounds] [keys] [requests]
# THRESHOLD (bytes of log between snapshots, default 300000) puts several snapshots inside
# one measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: bench/snapshot-stall.sh REV [rounds] [keys] [requests]}
ROUNDS=${2:-2}
KEYS=${3:-1000000}
REQS=${4:-5000}
THRESHOLD=${THRESHOLD:-300000}
SIDES=${SIDES:-A B off} # SIDES="B off" skips the revision (its build, too)
OFF=1000000000000
WORK=$(mktemp -d /tmp/skiff-snap.XXXXXX)
pids=()
started=()
port=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  git worktree remove --force "$WORK/a" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ " $SIDES " == *" A "* ]]; then
  git worktree add -q --detach "$WORK/a" "$REV"
  ( cd "$WORK/a" && cargo build -q --release -p skiff-mio --bin skiff-node --target-dir "$PWD/../target-a" )
fi
cargo build -q --release -p skiff-mio --bin skiff-node
declare -A BIN=([A]="$WORK/target-a/release/skiff-node" [B]="$PWD/target/release/skiff-node" [off]="$PWD/target/release/skiff-node")

PEERS="1=127.0.0.1:17001,2=127.0.0.1:17002,3=127.0.0.1:17003"
CLIENTS="1=127.0.0.1:17101,2=127.0.0.1:17102,3=127.0.0.1:17103"


start() { # start BIN DIR THRESHOLD: the 3 nodes; sets $port to the leader's RESP port
  local bin=$1 dir=$2 threshold=$3 i p
  started=()
  for i in 1 2 3; do
    mkdir -p "$dir/n$i"
    "$bin" --id "$i" --peers "$PEERS" --clients "$CLIENTS" --client-listen "127.0.0.1:1710$i" \
      --resp-listen "127.0.0.1:1638$i" --data-dir "$dir/n$i" --snapshot-threshold "$threshold" \
      >>"$dir/log$i" 2>&1 &
    pids+=($!)
    started+=($!)
  done
  port=""
  for _ in $(seq 1 600); do
    for p in 16381 16382 16383; do
      if redis-cli -p "$p" info 2>/dev/null | grep -q '^role:Leader'; then port=$p; fi
    done
    [ -n "$port" ] && return
    sleep 0.1
  done
  echo "no leader" >&2
  exit 1
}

stop() {
  local p
  for p in "${started[@]}"; do
    kill "$p"
    wait "$p" 2>/dev/null || true
  done
  pids=()
}

field() { # field PORT NAME
  redis-cli -p "$1" info | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'
}

run() { # run A|B|off ROUND
  local side=$1 round=$2 bin=${BIN[$1]} dir="$WORK/data-$1-$2" threshold=$THRESHOLD line
  [ "$side" = off ] && threshold=$OFF
  start "$bin" "$dir" "$OFF"
  python3 bench/load_keys.py "$KEYS" "$port"
  stop
  start "$bin" "$dir" "$threshold"
  line=$(redis-benchmark -p "$port" -t set -c 1 -n "$REQS" -r "$KEYS" -d 16 2>/dev/null | tr '\r' '\n' \
    | awk '/latency summary/ { getline; getline; print $3, $5, $6 }')
  echo "$side $round keys=$(field "$port" keys) snapshot_index=$(field "$port" snapshot_index) p50/p99/max_ms=$line" \
    | tee -a "$WORK/results"
  for p in 16381 16382 16383; do # where the longest waits were, on revisions that report them
    echo "  node $p: loop_round_max_us=$(field "$p" loop_round_max_us) slow=$(field "$p" loop_round_slow)" \
      "storage_write_max_us=$(field "$p" storage_write_max_us) slow=$(field "$p" storage_write_slow)"
  done
  stop
  if [ -n "${KEEP_LOGS:-}" ]; then # KEEP_LOGS=DIR keeps each run's node logs there
    mkdir -p "$KEEP_LOGS" && for i in 1 2 3; do cp "$dir/log$i" "$KEEP_LOGS/$side-$round-n$i.log"; done
  fi
  rm -rf "$dir"
}

for r in $(seq 1 "$ROUNDS"); do
  for side in $SIDES; do run "$side" "$r"; done
done

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
