#!/usr/bin/env bash
# Membership benchmarks (issue 14), on 3 `skiff-node` processes on loopback (fsync on,
# default snapshot threshold):
#
#  1. Learner catch-up: load KEYS distinct keys (16-byte values) through the leader's RESP
#     port, start node 4 with --join and an empty data directory, add it as a learner, and
#     time until the leader reports it caught up (`peer_4_caught_up:true`) and until node 4
#     itself has applied everything committed when it was added.
#  2. Write gap while the leader removes itself: one client on a node that stays writes SETs
#     one at a time (the node forwards them to the leader); the longest wait between two
#     acknowledged writes during SECS seconds with no change (the anchor), then during SECS
#     seconds in which `skiff member remove LEADER` runs.
#
# Needs: redis-tools (apt), python3, a release build of skiff-mio (the script builds it).
# Usage: bench/membership.sh [rounds] [keys] [secs]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
KEYS=${2:-1000000}
SECS=${3:-5}
WORK=$(mktemp -d /tmp/skiff-members.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

for p in 16381 16382 16383 16384 17001 17002 17003 17004 17101 17102 17103 17104; do
  if (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
    echo "port $p is in use: stop whatever listens there first" >&2
    exit 1
  fi
done
cargo build -q --release -p skiff-mio --bin skiff-node --bin skiff
NODE=$PWD/target/release/skiff-node
SKIFF=$PWD/target/release/skiff
PEERS="1=127.0.0.1:17001,2=127.0.0.1:17002,3=127.0.0.1:17003"
CLIENTS="1=127.0.0.1:17101,2=127.0.0.1:17102,3=127.0.0.1:17103"
RESP="127.0.0.1:16381,127.0.0.1:16382,127.0.0.1:16383,127.0.0.1:16384"


# Writes one SET at a time to PORT for SECS seconds; prints the longest gap between two
# acknowledged writes (ms), the writes acknowledged and the error replies. Starts the
# command in argv[3:] (if any) after one second.
WRITER='
import socket, subprocess, sys, time
port, secs, cmd = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
start = time.monotonic(); last = start; gap = 0.0; acked = 0; errors = 0; proc = None; i = 0
while time.monotonic() - start < secs:
    if cmd and proc is None and time.monotonic() - start > 1.0:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    i += 1
    s.sendall(b"*3\r\n$3\r\nSET\r\n$16\r\ngap:%012d\r\n$1\r\nv\r\n" % i)
    line = f.readline()
    now = time.monotonic()
    if line == b"+OK\r\n":
        gap = max(gap, now - last); last = now; acked += 1
    else:
        errors += 1
        time.sleep(0.01)
if proc is not None and proc.wait() != 0:
    sys.exit("the membership command failed")
print("max_gap_ms=%.1f acked=%d errors=%d" % (gap * 1000, acked, errors))
'

start_node() { # start_node ID DIR [--join]: a node; its peers are the 3 voters
  local id=$1 dir=$2
  shift 2
  local peers=$PEERS clients=$CLIENTS
  if [ "$id" = 4 ]; then peers="4=127.0.0.1:17004"; clients="4=127.0.0.1:17104"; fi
  mkdir -p "$dir/n$id"
  "$NODE" --id "$id" --peers "$peers" --clients "$clients" --client-listen "127.0.0.1:1710$id" \
    --resp-listen "127.0.0.1:1638$id" --data-dir "$dir/n$id" "$@" >>"$dir/log$id" 2>&1 &
  pids+=($!)
}

field() { # field PORT NAME
  redis-cli -p "$1" info 2>/dev/null | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'
}

leader_port() {
  local p
  for _ in $(seq 1 600); do
    for p in 16381 16382 16383; do
      if [ "$(field "$p" role)" = Leader ]; then echo "$p"; return; fi
    done
    sleep 0.1
  done
  echo "no leader" >&2
  exit 1
}

now_ms() { date +%s%3N; }

round() { # round N
  local dir="$WORK/r$1" lp leader commit t0 t_caught="" t_applied="" i stay
  for i in 1 2 3; do start_node "$i" "$dir"; done
  lp=$(leader_port)
  python3 bench/load_keys.py "$KEYS" "$lp"
  lp=$(leader_port)
  commit=$(field "$lp" commit_index)
  start_node 4 "$dir" --join
  sleep 0.5
  t0=$(now_ms)
  "$SKIFF" member add-learner 4 127.0.0.1:17004 127.0.0.1:17104 --nodes "$RESP" >/dev/null
  for _ in $(seq 1 12000); do
    if [ -z "$t_caught" ] && [ "$(field "$lp" peer_4_caught_up)" = true ]; then t_caught=$(now_ms); fi
    if [ -z "$t_applied" ] && [ "$(field 16384 applied_index)" -ge "$commit" ] 2>/dev/null; then t_applied=$(now_ms); fi
    [ -n "$t_caught" ] && [ -n "$t_applied" ] && break
    sleep 0.02
  done
  if [ -z "$t_caught" ] || [ -z "$t_applied" ]; then
    echo "round $1: the learner did not catch up within 4 minutes" >&2
    exit 1
  fi
  echo "round $1 catch-up keys=$(field 16384 keys) leader_snapshot_index=$(field "$lp" snapshot_index)" \
    "caught_up_s=$(awk -v a="$t0" -v b="$t_caught" 'BEGIN { printf "%.2f", (b - a) / 1000 }')" \
    "applied_s=$(awk -v a="$t0" -v b="$t_applied" 'BEGIN { printf "%.2f", (b - a) / 1000 }')" | tee -a "$WORK/results"
  "$SKIFF" member remove 4 --nodes "$RESP" >/dev/null
  lp=$(leader_port)
  leader=$(field "$lp" node_id)
  stay=16381
  [ "$lp" = 16381 ] && stay=16382
  echo "round $1 no-change $(python3 -c "$WRITER" "$stay" "$SECS")" | tee -a "$WORK/results"
  echo "round $1 remove-leader $(python3 -c "$WRITER" "$stay" "$SECS" "$SKIFF" member remove "$leader" --nodes "$RESP")" \
    | tee -a "$WORK/results"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  rm -rf "$dir"
}

for r in $(seq 1 "$ROUNDS"); do round "$r"; done

python3 - "$WORK/results" <<'EOF'
import re, statistics, sys
rows = open(sys.argv[1]).read().splitlines()
def values(kind, key):
    out = []
    for r in rows:
        if f" {kind} " in r + " ":
            m = re.search(key + r"=([0-9.]+)", r)
            if m:
                out.append(float(m.group(1)))
    return out
for kind, key in [("catch-up", "caught_up_s"), ("catch-up", "applied_s"), ("no-change", "max_gap_ms"), ("remove-leader", "max_gap_ms")]:
    v = values(kind, key)
    if v:
        print(f"{kind} {key}: median {statistics.median(v):.2f} min {min(v):.2f} max {max(v):.2f} over {len(v)} rounds")
EOF
