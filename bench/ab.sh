#!/usr/bin/env bash
# Before/after: measures skiff at a git revision (A) and the working tree (B) in one run,
# alternating A, B, A, B, ... so that both see the same machine. Each round starts a fresh
# `skiff local-cluster` (3 nodes, fsync on) and loads it with `skiff bench` (native) and
# `redis-benchmark` (RESP); prints one line per measurement, then the ratio B/A of each
# measurement's median with the spread (min..max of the per-round ratios). RESP load goes to
# the leader's port.
#
# Needs: redis-tools (apt), git, python3. Usage: bench/ab.sh REV [rounds] [seconds-per-run]
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: bench/ab.sh REV [rounds] [seconds]}
ROUNDS=${2:-3}
SECS=${3:-5}
ONLY=${ONLY:-} # ONLY=resp-set-c50-P16 (a load's name): only that load, more rounds in the same time
CLUSTER_FLAGS=${CLUSTER_FLAGS:-} # CLUSTER_FLAGS=--lease-reads: flags of `skiff local-cluster` (both sides)
WORK=$(mktemp -d /tmp/skiff-ab.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  git worktree remove --force "$WORK/a" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

git worktree add -q --detach "$WORK/a" "$REV"
( cd "$WORK/a" && cargo build -q --release -p skiff-mio --bin skiff --target-dir "$PWD/../target-a" )
cargo build -q --release -p skiff-mio --bin skiff
declare -A BIN=([A]="$WORK/target-a/release/skiff" [B]="$PWD/target/release/skiff")

rb() { # rb PORT TEST CONNS PIPELINE N
  redis-benchmark -p "$1" -t "$2" -c "$3" -P "$4" -r 100000 -n "$5" 2>/dev/null | tr '\r' '\n' \
    | awk '/throughput summary/ { print $3 }'
}

measure() { # measure A|B ROUND
  local side=$1 round=$2 bin=${BIN[$1]} dir="$WORK/data-$1-$2"
  mkdir -p "$dir"
  # shellcheck disable=SC2086 # the flags are words
  ( cd "$dir" && exec "$bin" local-cluster $CLUSTER_FLAGS >"$dir/log" 2>&1 ) &
  pids+=($!)
  sleep 3
  "$bin" put warmup 1 >/dev/null
  # RESP load goes to the leader's port: a follower would forward, and who leads a fresh
  # cluster is chance.
  local port=6381 p
  for p in 6381 6382 6383; do
    if redis-cli -p "$p" info | grep -q '^role:Leader'; then port=$p; fi
  done
  load() { # load NAME COMMAND...: one measurement, unless ONLY names another
    local name=$1
    shift
    if [ -z "$ONLY" ] || [ "$ONLY" = "$name" ]; then echo "$side $round $name $("$@")"; fi
  }
  native() { "$bin" bench --op "$1" --connections "$2" --seconds "$SECS" | grep -o '[0-9]* ops/s' | cut -d' ' -f1; }
  load native-set-c1 native set 1
  load native-set-c50 native set 50
  load native-get-c1 native get 1
  load resp-set-c1 rb "$port" set 1 1 $((15000 * SECS / 5))
  load resp-set-c50 rb "$port" set 50 1 $((20000 * SECS / 5))
  load resp-set-c50-P16 rb "$port" set 50 16 $((150000 * SECS / 5))
  load resp-get-c1 rb "$port" get 1 1 $((40000 * SECS / 5))
  load resp-get-c50 rb "$port" get 50 1 $((300000 * SECS / 5))
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
  unset 'pids[-1]'
}

for r in $(seq 1 "$ROUNDS"); do
  measure A "$r"
  measure B "$r"
done | tee "$WORK/results"

python3 - "$WORK/results" <<'PY'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    side, rnd, name, x = line.split()
    v.setdefault(name, {}).setdefault(side, {})[int(rnd)] = float(x)
for name, d in v.items():
    q = [d["B"][r] / d["A"][r] for r in d["A"] if r in d["B"] and d["A"][r] > 0]
    a, b = statistics.median(d["A"].values()), statistics.median(d["B"].values())
    print(f"{name:18} A median {a:8.0f}  B median {b:8.0f}  B/A {b / a:.3f} (per round {min(q):.3f}..{max(q):.3f})")
PY
