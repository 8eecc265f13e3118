# Shell pieces the benchmark scripts share; source it after `cd` to the repository root:
#   . bench/lib.sh; bench_init NAME
# It keeps `pids` (processes a script started, killed on exit) and `WORK` (a scratch
# directory, removed on exit).

# A scratch directory and the exit trap that stops what was started and removes it.
bench_init() { # bench_init NAME
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
}
bench_cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }

# Stops the given processes and forgets every pid.
stop() { kill "$@" 2>/dev/null || true; wait "$@" 2>/dev/null || true; pids=(); }

# Exits unless every tool is on the PATH; HINT says how to install them.
need_tools() { # need_tools HINT TOOL...
  local hint=$1 tool; shift
  for tool in "$@"; do command -v "$tool" >/dev/null || { echo "needs $tool ($hint)" >&2; exit 1; }; done
}

# Exits if any port listens already (a forgotten cluster would be measured instead).
ports_free() { # ports_free PORT...
  local port
  for port in "$@"; do
    if (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then echo "port $port is taken: stop what listens there" >&2; exit 1; fi
  done
}

# The RESP port of the leader of `skiff local-cluster` (6381..6383); exits without one.
skiff_leader() { # skiff_leader [redis-cli flags]
  local port leader=""
  for port in 6381 6382 6383; do
    if redis-cli "$@" -p "$port" info raft | grep -q "role:Leader"; then leader=$port; fi
  done
  [ -n "$leader" ] || { echo "the skiff cluster has no leader" >&2; exit 1; }
  echo "$leader"
}

# Starts 3 etcd members on loopback (clients on 12379, 22379, 32379) with data under WORK,
# adds them to pids, and waits for them to elect.
etcd_start() { # etcd_start TOKEN
  local cl="m1=http://127.0.0.1:12380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380" i
  rm -rf "$WORK"/etcd*
  for i in 1 2 3; do
    etcd --name m$i --data-dir "$WORK/etcd$i" \
      --listen-client-urls http://127.0.0.1:${i}2379 --advertise-client-urls http://127.0.0.1:${i}2379 \
      --listen-peer-urls http://127.0.0.1:${i}2380 --initial-advertise-peer-urls http://127.0.0.1:${i}2380 \
      --initial-cluster "$cl" --initial-cluster-state new --initial-cluster-token "$1" \
      --log-level error --logger zap >"$WORK/etcd$i.log" 2>&1 &
    pids+=($!)
  done
  sleep 4
}
