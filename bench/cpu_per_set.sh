#!/usr/bin/env bash
# CPU time per SET of skiff's 3 nodes and of one durable Redis, and where skiff's goes.
#
# Each round starts `skiff local-cluster` and one `redis-server` (`appendonly yes`,
# `appendfsync always`) afresh, runs the same redis-benchmark SET load on each (64-byte
# values, random keys out of 100,000, CONNS connections, N requests), and reads the CPU time
# (user + system, /proc/<pid>/stat) each server process used meanwhile, and redis-benchmark's
# own; skiff's also per thread: the leader's event loop, the two followers' loops and the
# three storage threads (the process's total also holds its other threads: metrics, snapshot
# encoding, the main thread). The time the kernel spends for them elsewhere (softirq work
# charged to other tasks, block-layer kworkers) is not counted, for either. Prints per round
# and system ops/s, CPU us per SET of the server and of the client, then per system the
# medians with their ranges, and skiff/Redis.
#
# Needs: redis-tools, redis-server (apt); a release build of skiff-mio.
# Usage: bench/cpu_per_set.sh [rounds] [conns] [requests]   (defaults 3 50 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_init cpu-per-set
ROUNDS=${1:-3} CONNS=${2:-50} N=${3:-100000}
SKIFF=$PWD/target/release/skiff REDIS_PORT=6390
need_tools "apt-get install redis-tools redis-server" redis-benchmark redis-cli redis-server
[ -x "$SKIFF" ] || { echo "needs $SKIFF: cargo build --release -p skiff-mio" >&2; exit 1; }
ports_free 6381 6382 6383 $REDIS_PORT
TICK=$(getconf CLK_TCK)

ticks() { awk '{ print $14 + $15 }' "$1"; } # ticks /proc/PID[/task/TID]/stat

# Runs the load on PORT; prints "ops_per_s client_ticks" (redis-benchmark's CPU, from `times`
# in the subshell that ran it).
load() { # load PORT
  ( redis-benchmark -p "$1" -t set -n "$N" -c "$CONNS" -r 100000 -d 64 --csv | tail -1 | cut -d, -f2 | tr -d '"\n'
    times >"$WORK/times"  # not in a pipeline: a pipeline's `times` runs in another subshell
    tail -1 "$WORK/times" | awk -v k="$TICK" '{ printf " %.0f\n", (fmt($1) + fmt($2)) * k }
      function fmt(t,   m) { m = t; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", t); sub(/s$/, "", t); return m * 60 + t }' )
}

# The thread id of node ID's event loop in the cluster process PID (`skiff-node-ID`), and
# the ids of every node's loop and storage thread.
loop_tid() { local t; for t in /proc/"$1"/task/*; do if [ "$(cat "$t/comm")" = "skiff-node-$2" ]; then echo "${t##*/}"; fi; done; }
loop_tids() { local t; for t in /proc/"$1"/task/*; do case $(cat "$t/comm") in skiff-node-*) echo "${t##*/}" ;; esac; done; }
storage_tids() { local t; for t in /proc/"$1"/task/*; do case $(cat "$t/comm") in skiff-storage-*) echo "${t##*/}" ;; esac; done; }
# CPU us per SET of TICKS clock ticks.
us() { awk -v t="$1" -v k="$TICK" -v n="$N" 'BEGIN { printf "%.1f", t * 1e6 / k / n }'; }

printf 'round\tsystem\tops_per_s\tcpu_us_per_set\tclient_us_per_set\tleader_loop\tfollower_loops\tstorage_threads\n' >"$WORK/rows"
for r in $(seq 1 "$ROUNDS"); do
  mkdir -p "$WORK/skiff"; rm -rf "$WORK/skiff"/*
  ( cd "$WORK/skiff" && exec "$SKIFF" local-cluster >"$WORK/skiff.log" 2>&1 ) &
  pids+=($!)
  cluster=$!
  sleep 3
  "$SKIFF" put warmup 1 >/dev/null
  port=$(skiff_leader)
  leader_tid=$(loop_tid "$cluster" $((port - 6380)))
  mapfile -t loops < <(loop_tids "$cluster")
  mapfile -t stores < <(storage_tids "$cluster")
  declare -A before=()
  for t in "${loops[@]}" "${stores[@]}"; do before[$t]=$(ticks /proc/"$cluster"/task/"$t"/stat); done
  all0=$(ticks /proc/"$cluster"/stat)
  read -r ops client <<<"$(load "$port")"
  all1=$(ticks /proc/"$cluster"/stat)
  [ "$(skiff_leader)" = "$port" ] || { echo "round $r: the leader changed during the load" >&2; exit 1; }
  lead=0 rest=0 stor=0
  for t in "${loops[@]}"; do
    d=$(( $(ticks /proc/"$cluster"/task/"$t"/stat) - before[$t] ))
    if [ "$t" = "$leader_tid" ]; then lead=$d; else rest=$((rest + d)); fi
  done
  for t in "${stores[@]}"; do stor=$(( stor + $(ticks /proc/"$cluster"/task/"$t"/stat) - before[$t] )); done
  printf '%s\tskiff\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$ops" "$(us $((all1 - all0)))" "$(us "$client")" "$(us "$lead")" \
    "$(us "$rest")" "$(us "$stor")" | tee -a "$WORK/rows"
  stop "${pids[@]}"

  rm -rf "$WORK/redis"; mkdir -p "$WORK/redis"
  redis-server --port $REDIS_PORT --dir "$WORK/redis" --appendonly yes --appendfsync always --save "" \
    --daemonize no >"$WORK/redis.log" 2>&1 &
  rpid=$!
  pids+=("$rpid")
  for _ in $(seq 50); do redis-cli -p $REDIS_PORT ping >/dev/null 2>&1 && break; sleep 0.1; done
  c0=$(ticks /proc/"$rpid"/stat)
  read -r ops client <<<"$(load $REDIS_PORT)"
  c1=$(ticks /proc/"$rpid"/stat)
  printf '%s\tredis\t%s\t%s\t%s\t\t\t\n' "$r" "$ops" "$(us $((c1 - c0)))" "$(us "$client")" | tee -a "$WORK/rows"
  stop "${pids[@]}"
done

echo "# CPU us per SET, $CONNS connections, $N requests, median [range] of $ROUNDS rounds"
awk -F'\t' 'NR > 1 { v[$2] = v[$2] " " $4; o[$2] = o[$2] " " $3; c[$2] = c[$2] " " $5
    if ($2 == "redis") red[$1] = $4; else { sk[$1] = $4; l = l " " $6; f = f " " $7; st = st " " $8 } }
  function med(s,   a, n, i, j, t) { n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  function rng(s,   a, n, i, lo, hi) { n = split(s, a, " "); lo = hi = a[1]; for (i = 2; i <= n; i++) { if (a[i] + 0 < lo + 0) lo = a[i]; if (a[i] + 0 > hi + 0) hi = a[i] }
    return "[" lo "-" hi "]" }
  END {
    split("skiff redis", order, " ")
    for (i = 1; i <= 2; i++) { s = order[i]
      printf "%s: cpu_us_per_set=%s %s ops_per_s=%s %s client_us_per_set=%s %s\n", s, med(v[s]), rng(v[s]), med(o[s]), rng(o[s]), med(c[s]), rng(c[s]) }
    printf "skiff per SET: leader loop %s us, follower loops %s us, storage threads %s us (medians)\n", med(l), med(f), med(st)
    r = ""; for (k in sk) r = r " " sprintf("%.2f", sk[k] / red[k])
    printf "skiff/redis cpu per set: %s %s\n", med(r), rng(r)
  }' "$WORK/rows"
