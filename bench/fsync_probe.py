#!/usr/bin/env python3
"""The disk's cost of one durable WAL write: a 131-byte write (one SET's record) and
fdatasync, N times, in a file that is appended to ("app"), written over zeros written
beforehand ("pre"), written over space allocated with fallocate ("fal", what skiff's
FileStorage does), or over fallocated space overwritten with zeros a chunk ahead of the
records ("ahead": a record lands on blocks already written, so its sync carries no
unwritten-to-written change of the block map, whose journal commit a fal sync pays each
time it reaches a new block; measured and left out of FileStorage, see the README). Prints p50, p90, p99 and the longest, in microseconds. Run one,
then three at once (three nodes on one disk):

    python3 bench/fsync_probe.py fal /tmp/probe 2000
    for i in 1 2 3; do python3 bench/fsync_probe.py fal /tmp/probe$i 2000 & done; wait

RECORD (bytes per write, 131) and AHEAD (the chunk zeroed ahead, 1 MiB) may be set in the
environment.
"""
import os
import sys
import time

mode, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
size = int(os.environ.get("RECORD", "131"))
ahead = int(os.environ.get("AHEAD", str(1 << 20)))
space = max(8 << 20, 2 * n * size + 2 * ahead)
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
if mode == "pre":
    os.write(fd, b"\0" * space)
    os.fsync(fd)
elif mode in ("fal", "ahead"):
    os.posix_fallocate(fd, 0, space)
    os.fsync(fd)
elif mode != "app":
    sys.exit("mode: app, pre, fal or ahead")
record = b"x" * size
zeros = b"\0" * ahead
offset, zeroed, latencies = 0, 0, []
for _ in range(n):
    start = time.perf_counter()
    if mode == "ahead" and offset + size > zeroed:
        os.pwrite(fd, zeros, max(zeroed, offset))
        zeroed = max(zeroed, offset) + ahead
    os.pwrite(fd, record, offset)
    offset += len(record)
    os.fdatasync(fd)
    latencies.append(time.perf_counter() - start)
os.close(fd)
os.unlink(path)
latencies.sort()
us = lambda q: latencies[min(n - 1, int(n * q))] * 1e6
print(f"{mode} p50 {us(0.5):.0f} us p90 {us(0.9):.0f} us p99 {us(0.99):.0f} us max {latencies[-1] * 1e6:.0f} us")
