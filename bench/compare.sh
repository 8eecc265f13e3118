#!/usr/bin/env bash
# Measures skiff and etcd 3.4 on this machine in one run: 3 nodes of each on loopback, fsync
# on (both defaults), one after the other, with the same connection counts.
#
#   skiff: `skiff local-cluster` (3 nodes in one process, each on its own event loop),
#          loaded with `skiff bench` (native protocol) and `redis-benchmark` (RESP).
#   etcd:  3 `etcd` processes (Debian's etcd-server 3.4), loaded over gRPC with
#          `bench/etcd-load` (etcd-client crate), each requester one request at a time.
#
#   tls:   the cost of TLS: `skiff local-cluster` and `skiff local-cluster --tls` (every port
#          TLS, peers by mutual TLS), round after round, writes and reads with 1 and 50
#          connections on the native port (`skiff bench --tls-ca`) and the RESP port
#          (`redis-benchmark --tls`) of the leader; a summary of the ratios TLS/plaintext.
#
# Needs: redis-tools, etcd-server (apt), a release build of skiff-mio and of bench/etcd-load
# (which needs protoc: apt install protobuf-compiler); the tls section needs only
# redis-tools and skiff-mio.
# Usage: bench/compare.sh [seconds-per-run] [tls-rounds]   (prints one line per measurement)
#        SECTIONS="skiff etcd tls" (the default) picks what runs, e.g. SECTIONS=tls.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
TLS_ROUNDS=${2:-3}
SECTIONS=${SECTIONS:-skiff etcd tls}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
SKIFF=target/release/skiff
LOAD=bench/etcd-load/target/release/etcd-load
. bench/lib.sh
bench_init skiff-compare

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

if want skiff; then
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
fi

if want etcd; then
echo "# etcd $(etcd --version | head -1)"
etcd_start compare
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
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=()
fi

if want tls; then
# Ops/s of redis-benchmark: N requests sized to last about SECS at the rate of a short probe.
rb_ops() { # rb_ops PORT TEST CONNS [redis-benchmark TLS flags...]
  local port=$1 test=$2 c=$3 probe n; shift 3
  probe=$(redis-benchmark "$@" -p "$port" -t "$test" -c "$c" -r 100000 -n 2000 -q 2>/dev/null \
    | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
  n=$(awk -v r="${probe:-0}" -v s="$SECS" 'BEGIN { n = r * s; printf "%d", n < 2000 ? 2000 : n }')
  redis-benchmark "$@" -p "$port" -t "$test" -c "$c" -r 100000 -n "$n" 2>/dev/null | tr '\r' '\n' \
    | awk '/throughput summary/ { print $3 }'
}
tls_round() { # tls_round plain|tls ROUND: one cluster, every measurement once
  local mode=$1 round=$2 dir="$WORK/$1" cli=() skiff=("$SKIFF") leader="" pid
  rm -rf "$dir"; mkdir -p "$dir"
  if [ "$mode" = tls ]; then
    cli=(--tls --cacert "$dir/skiff-data/tls/ca.crt"); skiff+=(--tls-ca "$dir/skiff-data/tls/ca.crt")
    ( cd "$dir" && exec "$OLDPWD/$SKIFF" local-cluster --tls >"$dir/log" 2>&1 ) &
  else
    ( cd "$dir" && exec "$OLDPWD/$SKIFF" local-cluster >"$dir/log" 2>&1 ) &
  fi
  pid=$!
  pids+=("$pid")
  sleep 3
  "${skiff[@]}" put warmup 1 >/dev/null  # waits for a leader (up to 10 s)
  for port in 6381 6382 6383; do
    if redis-cli "${cli[@]}" -p "$port" info raft | grep -q "role:Leader"; then leader=$port; fi
  done
  [ -n "$leader" ] || { echo "the $mode cluster has no leader" >&2; exit 1; }
  local native=$((leader + 720))  # 6381 -> 7101: the leader's native port
  for op in set get; do
    for c in 1 50; do
      ops=$("${skiff[@]}" bench --op "$op" --connections "$c" --seconds "$SECS" --servers "127.0.0.1:$native" \
        | grep -o '[0-9]* ops/s' | cut -d' ' -f1)
      printf '%s\t%s\tnative-%s-c%s\t%s\n' "$round" "$mode" "$op" "$c" "$ops"
      printf '%s\t%s\tresp-%s-c%s\t%s\n' "$round" "$mode" "$op" "$c" "$(rb_ops "$leader" "$op" "$c" "${cli[@]}")"
    done
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pids=("${pids[@]/$pid}")
}
echo "# TLS cost: skiff local-cluster without and with --tls, $TLS_ROUNDS rounds of ${SECS} s runs"
: >"$WORK/tls-results"
for r in $(seq 1 "$TLS_ROUNDS"); do
  for mode in plain tls; do
    tls_round "$mode" "$r" >"$WORK/round"  # not in a pipeline: its cluster's pid stays in pids
    cat "$WORK/round" >>"$WORK/tls-results"; cat "$WORK/round"
  done
done
# Per measurement: median ops/s of each, and the median and range of the per-round ratios.
awk -F'\t' '
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
  }
  { v[$1, $2, $3] = $4; names[$3] = 1; rounds[$1] = 1 }
  END {
    for (m in names) {
      np = nt = nr = 0; lo = 1e9; hi = 0
      for (r in rounds) {
        p[++np] = v[r, "plain", m]; t[++nt] = v[r, "tls", m]
        if (v[r, "plain", m] > 0) { x = v[r, "tls", m] / v[r, "plain", m]; q[++nr] = x; if (x < lo) lo = x; if (x > hi) hi = x }
      }
      printf "tls-cost %s plain_ops_per_s=%.0f tls_ops_per_s=%.0f ratio=%.2f [%.2f-%.2f]\n", m, median(p, np), median(t, nt), median(q, nr), lo, hi
    }
  }' "$WORK/tls-results" | sort
fi
