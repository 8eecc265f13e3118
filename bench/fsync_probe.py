#!/usr/bin/env python3
"""The disk's cost of one durable WAL write: a 131-byte write (one SET's record) and
fdatasync, N times, in a file that is appended to ("app"), written over zeros written
beforehand ("pre"), or written over space allocated with fallocate ("fal", what skiff's
FileStorage does). Prints the p50 and p90 latency. Run one, then three at once (three nodes
on one disk):

    python3 bench/fsync_probe.py fal /tmp/probe 2000
    for i in 1 2 3; do python3 bench/fsync_probe.py fal /tmp/probe$i 2000 & done; wait
"""
import os
import sys
import time

mode, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
if mode == "pre":
    os.write(fd, b"\0" * (8 << 20))
    os.fsync(fd)
elif mode == "fal":
    os.posix_fallocate(fd, 0, 8 << 20)
    os.fsync(fd)
elif mode != "app":
    sys.exit("mode: app, pre or fal")
record = b"x" * 131
offset, latencies = 0, []
for _ in range(n):
    start = time.perf_counter()
    os.pwrite(fd, record, offset)
    offset += len(record)
    os.fdatasync(fd)
    latencies.append(time.perf_counter() - start)
os.close(fd)
os.unlink(path)
latencies.sort()
print(f"{mode} p50 {latencies[n // 2] * 1e6:.0f} us p90 {latencies[n * 9 // 10] * 1e6:.0f} us")
