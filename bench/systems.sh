#!/usr/bin/env bash
# skiff, one durable Redis and etcd 3.4 measured in one run, round after round, with a table
# and a chart drawn from that run (bench/chart, plotters):
#
#   skiff: `skiff local-cluster` (3 nodes, each write committed on a majority and fsynced),
#          loaded on the leader's RESP port with redis-benchmark; reads by ReadIndex;
#   skiff-lease: the same with `--lease-reads` (reads from the leader's lease), GET loads;
#   Redis: one `redis-server`, `appendonly yes`, `appendfsync always` (fsync before every
#          reply), no replication, loaded with the same redis-benchmark options;
#   etcd:  3 `etcd` processes (Debian's etcd-server 3.4, fsync on), loaded over gRPC with
#          bench/etcd-load (each requester one request at a time; no pipelining, so etcd has
#          no pipelined load).
#
# Loads: SET and GET of 64-byte values, random keys out of 100,000, with 1, 50 and 256
# connections, and SET with 50 connections pipelining 16. Each round starts every system
# afresh (empty data) and runs every load on each; the summary gives per load and system the
# median ops/s and p99 over the rounds, and the ratios skiff/Redis and skiff/etcd (median of
# the per-round ratios, with their range).
#
# Needs: redis-tools, redis-server, etcd-server (apt); release builds of skiff-mio
# (cargo build --release -p skiff-mio), bench/etcd-load (needs protoc: apt install
# protobuf-compiler) and bench/chart.
# Usage: bench/systems.sh [rounds] [seconds-per-load] [out-dir]   (out: bench/results)
#        SYSTEMS="skiff redis" bench/systems.sh ...   measures only those systems
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}
OUT=${3:-bench/results}
SKIFF=$PWD/target/release/skiff
LOAD=$PWD/bench/etcd-load/target/release/etcd-load
CHART=$PWD/bench/chart/target/release/chart
REDIS_PORT=6399
. bench/lib.sh
bench_init skiff-systems
need_tools "apt install redis-tools redis-server etcd-server" redis-benchmark redis-server redis-cli etcd
for bin in "$SKIFF" "$LOAD" "$CHART"; do
  [ -x "$bin" ] || { echo "needs $bin (see the header of $0)" >&2; exit 1; }
done
ports_free 6381 6382 6383 $REDIS_PORT 12379 22379 32379
mkdir -p "$OUT"
RESULTS="$OUT/systems.tsv"
printf 'round\tsystem\tload\tops_per_s\tp50_ms\tp99_ms\n' >"$RESULTS"

# redis-benchmark on PORT: ops/s, p50 and p99 of TEST with CONNS connections, PIPE deep,
# N requests sized to last about SECS at the rate of a short probe.
rb() { # rb SYSTEM ROUND LOAD PORT TEST CONNS PIPE
  local system=$1 round=$2 load=$3 port=$4 test=$5 c=$6 p=$7 probe n
  probe=$(redis-benchmark -p "$port" -t "$test" -c "$c" -P "$p" -r 100000 -d 64 -n $((2000 * p)) -q 2>/dev/null \
    | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
  n=$(awk -v r="${probe:-0}" -v s="$SECS" 'BEGIN { n = r * s; printf "%d", n < 2000 ? 2000 : n }')
  redis-benchmark -p "$port" -t "$test" -c "$c" -P "$p" -r 100000 -d 64 -n "$n" 2>/dev/null | tr '\r' '\n' \
    | awk -v sys="$system" -v r="$round" -v load="$load" '
      /throughput summary/ { ops = $3 }
      /latency summary/ { getline; getline; p50 = $3; p99 = $5 }
      END { printf "%s\t%s\t%s\t%.0f\t%s\t%s\n", r, sys, load, ops, p50, p99 }'
}

resp_loads() { # resp_loads SYSTEM ROUND PORT
  rb "$1" "$2" set-c1 "$3" set 1 1
  rb "$1" "$2" set-c50 "$3" set 50 1
  rb "$1" "$2" set-c256 "$3" set 256 1
  rb "$1" "$2" set-c50-p16 "$3" set 50 16
  rb "$1" "$2" get-c1 "$3" get 1 1
  rb "$1" "$2" get-c50 "$3" get 50 1
}

skiff_round() { skiff_cluster skiff "$1"; }
skiff-lease_round() { skiff_cluster skiff-lease "$1" --lease-reads; }

skiff_cluster() { # skiff_cluster SYSTEM ROUND [local-cluster flags]
  local system=$1 round=$2; shift 2
  mkdir -p "$WORK/skiff"; rm -rf "$WORK/skiff"/*
  ( cd "$WORK/skiff" && exec "$SKIFF" local-cluster "$@" >"$WORK/skiff.log" 2>&1 ) &
  pids+=($!)
  sleep 3
  "$SKIFF" put warmup 1 >/dev/null
  local leader
  leader=$(skiff_leader)
  if [ "$system" = skiff ]; then
    resp_loads skiff "$round" "$leader"
  else
    rb "$system" "$round" get-c1 "$leader" get 1 1
    rb "$system" "$round" get-c50 "$leader" get 50 1
  fi
  stop "${pids[@]}"
}

redis_round() {
  rm -rf "$WORK/redis"; mkdir -p "$WORK/redis"
  redis-server --port $REDIS_PORT --dir "$WORK/redis" --appendonly yes --appendfsync always --save "" \
    --daemonize no >"$WORK/redis.log" 2>&1 &
  pids+=($!)
  sleep 1
  resp_loads redis "$1" $REDIS_PORT
  stop "${pids[@]}"
}

etcd_round() {
  etcd_start systems
  local load op c name
  for load in set-c1:put:1 set-c50:put:50 set-c256:put:256 get-c1:get:1 get-c50:get:50; do
    IFS=: read -r name op c <<<"$load"
    "$LOAD" --op "$op" --conns "$(( c < 50 ? c : 50 ))" --clients "$c" --seconds "$SECS" --keys 100000 \
      | awk -v r="$1" -v load="$name" '{
          for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
          printf "%s\tetcd\t%s\t%.0f\t%s\t%s\n", r, load, v["ops_per_s"], v["p50_ms"], v["p99_ms"] }'
  done
  stop "${pids[@]}"
}

echo "# skiff, Redis (appendfsync always), etcd $(etcd --version | head -1 | awk '{print $3}'): $ROUNDS rounds of ${SECS} s loads"
for r in $(seq 1 "$ROUNDS"); do
  for system in ${SYSTEMS:-skiff skiff-lease redis etcd}; do
    "${system}_round" "$r" >"$WORK/round"  # not in a pipeline: its processes stay in pids
    cat "$WORK/round" >>"$RESULTS"; cat "$WORK/round"
  done
done

# Per load: each system's median ops/s and p99; skiff's ratios to the others, median [range].
awk -F'\t' 'NR > 1 { ops[$3, $2, $1] = $4; p99[$3, $2, $1] = $6; loads[$3] = 1; rounds[$1] = 1 }
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
  }
  function summary(l, s,   r, n, o, q) {
    n = 0; for (r in rounds) if ((l, s, r) in ops) { o[++n] = ops[l, s, r]; q[n] = p99[l, s, r] }
    if (n == 0) return "-"
    return sprintf("%.0f ops/s p99 %.2f ms", median(o, n), median(q, n))
  }
  function ratio(l, a, s,   r, n, x, lo, hi) {
    n = 0; lo = 1e9; hi = 0
    for (r in rounds) if ((l, s, r) in ops && (l, a, r) in ops && ops[l, s, r] > 0) {
      x[++n] = ops[l, a, r] / ops[l, s, r]; if (x[n] < lo) lo = x[n]; if (x[n] > hi) hi = x[n]
    }
    if (n == 0) return "-"
    return sprintf("%.2f [%.2f-%.2f]", median(x, n), lo, hi)
  }
  END {
    for (l in loads)
      printf "systems %s | skiff %s | skiff-lease %s | redis %s | etcd %s | skiff/redis %s | skiff-lease/redis %s | skiff/etcd %s\n",
        l, summary(l, "skiff"), summary(l, "skiff-lease"), summary(l, "redis"), summary(l, "etcd"),
        ratio(l, "skiff", "redis"), ratio(l, "skiff-lease", "redis"), ratio(l, "skiff", "etcd")
  }' "$RESULTS" | sort | tee "$OUT/systems-summary.txt"
"$CHART" "$RESULTS" "$OUT/systems.svg"
echo "chart: $OUT/systems.svg; results: $RESULTS"
