#!/usr/bin/env bash
# redis-benchmark's default suite (all of its tests but XADD: skiff has no streams) against a
# skiff cluster and against one durable Redis, in one run, round after round:
#
#   skiff: `skiff local-cluster` (3 nodes, every write committed on a majority and fsynced),
#          loaded at the leader's RESP port;
#   Redis: one `redis-server` with `appendonly yes`, `appendfsync always` (fsync before every
#          reply), no replication, no RDB.
#
# Both get the same redis-benchmark options (-n, -c, -P, random keys out of 100,000). Each
# round runs the suite on skiff then on Redis; the summary gives, per test, the median ops/s
# of each and the median of the per-round ratios skiff/Redis with their range.
#
# Needs: redis-tools and redis-server (apt), a release build of skiff-mio
# (cargo build --release -p skiff-mio).
# Usage: bench/redis-suite.sh [rounds] [requests-per-test] [connections] [pipeline]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
N=${2:-20000}
CONNS=${3:-50}
PIPE=${4:-1}
SKIFF=$PWD/target/release/skiff
TESTS=ping_inline,ping_mbulk,set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange,mset
REDIS_PORT=6399
WORK=$(mktemp -d /tmp/skiff-redis-suite.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

for tool in redis-benchmark redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt install redis-tools redis-server)" >&2; exit 1; }
done
[ -x "$SKIFF" ] || { echo "needs $SKIFF (cargo build --release -p skiff-mio)" >&2; exit 1; }
for port in 6381 6382 6383 $REDIS_PORT; do
  if redis-cli -p "$port" ping >/dev/null 2>&1; then echo "port $port is taken: stop what listens there" >&2; exit 1; fi
done

( cd "$WORK" && exec "$SKIFF" local-cluster >"$WORK/skiff.log" 2>&1 ) &
pids+=($!)
mkdir -p "$WORK/redis"
redis-server --port $REDIS_PORT --dir "$WORK/redis" --appendonly yes --appendfsync always --save "" \
  --daemonize no >"$WORK/redis.log" 2>&1 &
pids+=($!)
sleep 3
leader=""
for port in 6381 6382 6383; do
  if redis-cli -p "$port" info raft | grep -q "role:Leader"; then leader=$port; fi
done
[ -n "$leader" ] || { echo "the skiff cluster has no leader" >&2; exit 1; }
echo "# skiff leader at :$leader, Redis (appendfsync always) at :$REDIS_PORT"
echo "# redis-benchmark -n $N -c $CONNS -P $PIPE -r 100000, $ROUNDS rounds"

suite() { # suite NAME PORT ROUND
  redis-benchmark -p "$2" -n "$N" -c "$CONNS" -P "$PIPE" -r 100000 -t "$TESTS" --csv 2>"$WORK/err" \
    | awk -F'"' -v sys="$1" -v r="$3" 'NR > 1 { printf "%s\t%s\t%s\t%s\t%s\n", r, sys, $2, $4, $14 }'
  if grep -q "Error" "$WORK/err"; then echo "$1: an error reply:" >&2; cat "$WORK/err" >&2; exit 1; fi
}

: >"$WORK/results"
for r in $(seq 1 "$ROUNDS"); do
  suite skiff "$leader" "$r" >>"$WORK/results"
  suite redis "$REDIS_PORT" "$r" >>"$WORK/results"
  redis-cli -p $REDIS_PORT flushall >/dev/null
done

# One line per test: medians over the rounds, and the per-round ratio's median and range.
python3 - "$WORK/results" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
tests, by = [], {}
for r, sysname, test, rps, p99 in rows:
    if test not in tests:
        tests.append(test)
    by.setdefault((test, sysname), {})[r] = (float(rps), float(p99))
print(f"{'test':<34} {'skiff ops/s':>12} {'redis ops/s':>12} {'ratio':>6} {'range':>13} {'skiff p99':>10} {'redis p99':>10}")
for t in tests:
    s, d = by.get((t, "skiff"), {}), by.get((t, "redis"), {})
    rounds = sorted(set(s) & set(d))
    if not rounds:
        continue
    ratios = [s[r][0] / d[r][0] for r in rounds]
    med = lambda xs: statistics.median(xs)
    print(f"{t:<34} {med([s[r][0] for r in rounds]):>12.0f} {med([d[r][0] for r in rounds]):>12.0f} "
          f"{med(ratios):>6.2f} {min(ratios):>6.2f}-{max(ratios):<6.2f} "
          f"{med([s[r][1] for r in rounds]):>8.3f}ms {med([d[r][1] for r in rounds]):>8.3f}ms")
PY
