#!/usr/bin/env bash
# Measures skiff and etcd 3.4 on this machine in one run: 3 nodes of each on loopback, fsync
# on (both defaults), one after the other, with the same connection counts.
#
#   skiff: `skiff local-cluster` (3 nodes in one process, each on its own event loop),
#          loaded with `skiff bench` (native protocol) and `redis-benchmark` (RESP).
#   etcd:  3 `etcd` processes (Debian's etcd-server 3.4), loaded over gRPC with
#          `bench/etcd-load` (etcd-client crate), each requester one request at a time.
#
# Needs: redis-tools, etcd-server (apt), a release build of skiff-mio and of bench/etcd-load.
# Usage: bench/compare.sh [seconds-per-run]   (prints one line per measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
SKIFF=target/release/skiff
LOAD=bench/etcd-load/target/release/etcd-load
WORK=$(mktemp -d /tmp/skiff-compare.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# CPU time (user + system) the given processes used over IDLE seconds of no load.
IDLE=10
idle_cpu() { # idle_cpu NAME PID...
  local name=$1; shift
  local hz t0=0 t1=0 p
  hz=$(getconf CLK_TCK)
  for p in "$@"; do t0=$((t0 + $(awk '{print $14 + $15}' /proc/"$p"/stat))); done
  sleep "$IDLE"
  for p in "$@"; do t1=$((t1 + $(awk '{print $14 + $15}' /proc/"$p"/stat))); done
  awk -v n="$name" -v d=$((t1 - t0)) -v hz="$hz" -v s="$IDLE" \
    'BEGIN { printf "%s idle: 3 nodes used %.2f s of CPU in %d s (%.2f%% of one core)\n", n, d / hz, s, 100 * d / hz / s }'
}

# redis-benchmark: N requests sized to last about SECS at the rate of a short probe.
rb() { # rb PORT TEST CONNS PIPELINE
  local port=$1 test=$2 c=$3 p=$4
  local probe n
  probe=$(redis-benchmark -p "$port" -t "$test" -c "$c" -P "$p" -r 100000 -n $((2000 * p)) -q 2>/dev/null \
    | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
  n=$(awk -v r="$probe" -v s="$SECS" 'BEGIN { printf "%d", r * s }')
  redis-benchmark -p "$port" -t "$test" -c "$c" -P "$p" -r 100000 -n "$n" 2>/dev/null | tr '\r' '\n' | awk -v t="$test" -v c="$c" -v p="$p" '
    /throughput summary/ { ops = $3 }
    /latency summary/ { getline; getline; p50 = $3; p99 = $5 }
    END { printf "skiff redis-benchmark %s conns=%d pipeline=%d ops_per_s=%.0f p50_ms=%s p99_ms=%s\n", t, c, p, ops, p50, p99 }'
}

echo "# skiff"
( cd "$WORK" && exec "$OLDPWD/$SKIFF" local-cluster >"$WORK/skiff.log" 2>&1 ) &
pids+=($!)
sleep 3
$SKIFF put warmup 1 >/dev/null
idle_cpu skiff "${pids[0]}"
for c in 1 50 256; do
  $SKIFF bench --op set --connections "$c" --seconds "$SECS" | sed "s/^/skiff bench /"
done
for c in 1 64; do
  $SKIFF bench --op get --connections "$c" --seconds "$SECS" | sed "s/^/skiff bench /"
done
for t in set get; do
  rb 6381 "$t" 1 1
  rb 6381 "$t" 50 1
  rb 6381 "$t" 50 16
done
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

echo "# etcd $(etcd --version | head -1)"
CL="m1=http://127.0.0.1:12380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380"
for i in 1 2 3; do
  etcd --name m$i --data-dir "$WORK/etcd$i" \
    --listen-client-urls http://127.0.0.1:${i}2379 --advertise-client-urls http://127.0.0.1:${i}2379 \
    --listen-peer-urls http://127.0.0.1:${i}2380 --initial-advertise-peer-urls http://127.0.0.1:${i}2380 \
    --initial-cluster "$CL" --initial-cluster-state new --initial-cluster-token compare \
    --log-level error --logger zap >"$WORK/etcd$i.log" 2>&1 &
  pids+=($!)
done
sleep 4
idle_cpu etcd "${pids[@]}"
for c in 1 50 256; do
  $LOAD --op put --conns "$c" --clients "$c" --seconds "$SECS"
done
$LOAD --op put --conns 50 --clients 800 --seconds "$SECS"
for c in 1 64; do
  $LOAD --op get --conns "$c" --clients "$c" --seconds "$SECS"
done
$LOAD --op get --conns 50 --clients 50 --seconds "$SECS"
$LOAD --op get --conns 50 --clients 800 --seconds "$SECS"
