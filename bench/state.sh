#!/usr/bin/env bash
# A growing state and a large one: skiff (`skiff local-cluster`, 3 nodes, fsync on) beside
# one durable Redis (`appendfsync always`), round after round, in one run:
#
#   grow:     SET of 64-byte values over 1,000,000 random keys, 50 connections pipelining
#             16, 1,000,000 requests in four chunks of 250,000: ops/s per chunk (does
#             throughput hold as the state grows to about 632k keys?), then the memory of
#             each (skiff: the process's RSS over its 3 nodes, per node; Redis: its RSS);
#   cpu:      CPU seconds (user + system, all of skiff's 3 nodes; Redis's process) per
#             100,000 SETs with 50 connections, measured over 200,000 of them;
#   snapshot: 1,000,000 distinct keys loaded (bench/load_keys.py, 16-byte values), then a
#             snapshot asked with BGSAVE on every node at once (Redis: BGSAVE): the time until
#             it is taken (skiff: every node's `snapshots_taken` moved; Redis: `LASTSAVE`
#             moved) and its size (skiff: `last_snapshot_bytes`; Redis: dump.rdb);
#   stall:    SET p99 with one connection over 3,000 requests, without a snapshot and while
#             one runs (BGSAVE right after the load starts).
#
# Needs: redis-tools, redis-server (apt), python3, a release build of skiff-mio.
# Usage: bench/state.sh [rounds] [out-dir]   (out: bench/results/state.tsv and a summary)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
OUT=${2:-bench/results}
SKIFF=$PWD/target/release/skiff
REDIS_PORT=6399
. bench/lib.sh
bench_init skiff-state
need_tools "apt install redis-tools redis-server python3" redis-benchmark redis-server redis-cli python3
[ -x "$SKIFF" ] || { echo "needs $SKIFF: cargo build --release -p skiff-mio" >&2; exit 1; }
ports_free 6381 6382 6383 $REDIS_PORT
mkdir -p "$OUT"
RESULTS="$OUT/state.tsv"
printf 'round\tsystem\tmeasure\tvalue\n' >"$RESULTS"
HZ=$(getconf CLK_TCK)

emit() { printf '%s\t%s\t%s\t%s\n' "$@" | tee -a "$RESULTS"; }
cpu_ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
rss_kb() { awk '/VmRSS/ {print $2}' /proc/"$1"/status; }
ops() { tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1; }

# The loads every system gets: PORT, the pid whose CPU and memory count, how many nodes it
# holds, and how to ask for a snapshot and know it is done.
loads() { # loads SYSTEM ROUND PORT PID NODES
  local system=$1 round=$2 port=$3 pid=$4 nodes=$5 i t0 t1 ops_s rss
  for i in 1 2 3 4; do
    ops_s=$(redis-benchmark -p "$port" -t set -c 50 -P 16 -r 1000000 -d 64 -n 250000 -q 2>/dev/null | ops)
    emit "$round" "$system" "grow-chunk$i-ops" "$ops_s"
  done
  rss=$(rss_kb "$pid")
  emit "$round" "$system" "rss-mb-per-node" "$(awk -v r="$rss" -v n="$nodes" 'BEGIN { printf "%.0f", r / 1024 / n }')"
  t0=$(cpu_ticks "$pid")
  redis-benchmark -p "$port" -t set -c 50 -r 1000000 -d 64 -n 200000 -q >/dev/null 2>&1
  t1=$(cpu_ticks "$pid")
  emit "$round" "$system" "cpu-s-per-100k-set" "$(awk -v d=$((t1 - t0)) -v hz="$HZ" 'BEGIN { printf "%.2f", d / hz / 2 }')"
}

p99_of() { # p99_of PORT [snapshot-command]: SET c1 p99 (ms), with the command run as it starts
  local port=$1; shift
  redis-benchmark -p "$port" -t set -c 1 -r 1000000 -d 64 -n 3000 >"$WORK/p99" 2>/dev/null &
  local b=$!
  if [ $# -gt 0 ]; then sleep 0.2; "$@" >/dev/null; fi
  wait "$b"
  tr '\r' '\n' <"$WORK/p99" | awk '/latency summary/ { getline; getline; print $5 }'
}

skiff_taken() { local p s=0; for p in 6381 6382 6383; do s=$((s + $(redis-cli -p $p info | awk -F: '/^snapshots_taken/ {print $2+0; exit}'))); done; echo $s; }
skiff_bgsave() { local p; for p in 6381 6382 6383; do redis-cli -p $p bgsave >/dev/null; done; }
skiff_wait_snapshot() { # until every node took one more snapshot than $1 (3 nodes)
  local before=$1
  until [ "$(skiff_taken)" -ge $((before + 3)) ]; do sleep 0.01; done
}

skiff_round() {
  rm -rf "$WORK/skiff"; mkdir -p "$WORK/skiff"
  ( cd "$WORK/skiff" && exec "$SKIFF" local-cluster >"$WORK/skiff.log" 2>&1 ) &
  local pid=$! leader before t0 t1
  pids+=($pid)
  sleep 3
  leader=$(skiff_leader)
  loads skiff "$1" "$leader" "$pid" 3
  stop "${pids[@]}"
  # A fresh cluster for the 1M distinct keys.
  rm -rf "$WORK/skiff"; mkdir -p "$WORK/skiff"
  ( cd "$WORK/skiff" && exec "$SKIFF" local-cluster >"$WORK/skiff.log" 2>&1 ) &
  pid=$!; pids+=($pid); sleep 3
  leader=$(skiff_leader)
  python3 bench/load_keys.py 1000000 "$leader" >/dev/null
  sleep 1
  before=$(skiff_taken); t0=$(date +%s.%N)
  skiff_bgsave; skiff_wait_snapshot "$before"
  t1=$(date +%s.%N)
  emit "$1" skiff snapshot-1m-s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
  emit "$1" skiff snapshot-1m-mb "$(redis-cli -p "$leader" info | awk -F: '/^last_snapshot_bytes/ { printf "%.1f", $2 / 1048576 }')"
  emit "$1" skiff set-c1-p99-ms "$(p99_of "$leader")"
  before=$(skiff_taken)
  emit "$1" skiff set-c1-p99-ms-snapshotting "$(p99_of "$leader" skiff_bgsave)"
  skiff_wait_snapshot "$before"
  stop "${pids[@]}"
}

redis_round() {
  rm -rf "$WORK/redis"; mkdir -p "$WORK/redis"
  redis-server --port $REDIS_PORT --dir "$WORK/redis" --appendonly yes --appendfsync always --save "" \
    --daemonize no >"$WORK/redis.log" 2>&1 &
  local pid=$! last t0 t1
  pids+=($pid)
  sleep 1
  loads redis "$1" $REDIS_PORT "$pid" 1
  redis-cli -p $REDIS_PORT flushall >/dev/null
  python3 bench/load_keys.py 1000000 $REDIS_PORT >/dev/null
  sleep 1.1  # LASTSAVE has a resolution of a second
  last=$(redis-cli -p $REDIS_PORT lastsave); t0=$(date +%s.%N)
  redis-cli -p $REDIS_PORT bgsave >/dev/null
  until [ "$(redis-cli -p $REDIS_PORT lastsave)" != "$last" ]; do sleep 0.01; done
  t1=$(date +%s.%N)
  emit "$1" redis snapshot-1m-s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
  emit "$1" redis snapshot-1m-mb "$(awk -v s="$(stat -c %s "$WORK/redis/dump.rdb")" 'BEGIN { printf "%.1f", s / 1048576 }')"
  emit "$1" redis set-c1-p99-ms "$(p99_of $REDIS_PORT)"
  emit "$1" redis set-c1-p99-ms-snapshotting "$(p99_of $REDIS_PORT redis-cli -p $REDIS_PORT bgsave)"
  stop "${pids[@]}"
}

echo "# skiff and Redis (appendfsync always): $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
  skiff_round "$r"
  redis_round "$r"
done

# Per measure: each system's median over the rounds, and skiff/Redis (median [range]).
awk -F'\t' 'NR > 1 { v[$3, $2, $1] = $4; m[$3] = 1; rounds[$1] = 1 }
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
  }
  function med(k, s,   r, n, x) { n = 0; for (r in rounds) if ((k, s, r) in v) x[++n] = v[k, s, r]; return n ? median(x, n) : "-" }
  function ratio(k,   r, n, x, lo, hi) {
    n = 0; lo = 1e9; hi = 0
    for (r in rounds) if ((k, "skiff", r) in v && (k, "redis", r) in v && v[k, "redis", r] > 0) {
      x[++n] = v[k, "skiff", r] / v[k, "redis", r]; if (x[n] < lo) lo = x[n]; if (x[n] > hi) hi = x[n]
    }
    return n ? sprintf("%.2f [%.2f-%.2f]", median(x, n), lo, hi) : "-"
  }
  END { for (k in m) printf "state %s | skiff %s | redis %s | skiff/redis %s\n", k, med(k, "skiff"), med(k, "redis"), ratio(k) }' \
  "$RESULTS" | sort | tee "$OUT/state-summary.txt"
echo "results: $RESULTS"
