#!/usr/bin/env python3
"""The loopback round trip a replicated write pays at least once: one byte sent over TCP
(TCP_NODELAY) to another process, which sends it back, N times. Prints the p50 and p90.
Beside bench/fsync_probe.py, the other cost a replicated write at one connection cannot
avoid:

    python3 bench/rtt_probe.py 5000
"""
import os
import socket
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
if n < 1:
    sys.exit("N: at least 1")
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
port = listener.getsockname()[1]
if os.fork() == 0:
    echo = socket.create_connection(("127.0.0.1", port))
    echo.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := echo.recv(64):
        echo.sendall(data)
    os._exit(0)
listener.settimeout(10)
conn, _ = listener.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
latencies = []
for _ in range(n):
    start = time.perf_counter()
    conn.sendall(b"x")
    if not conn.recv(64):
        sys.exit("the echoing process closed the connection")
    latencies.append(time.perf_counter() - start)
conn.close()
os.wait()
latencies.sort()
print(f"loopback round trip p50 {latencies[n // 2] * 1e6:.0f} us p90 {latencies[n * 9 // 10] * 1e6:.0f} us")
