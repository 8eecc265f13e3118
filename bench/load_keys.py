"""Loads N distinct keys (key:000000000000.., 16-byte values) into a skiff node's RESP port,
pipelined 1000 SETs at a time; fails unless every answer is +OK.

Usage: python3 bench/load_keys.py N PORT
"""
import socket
import sys

n, port = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
batch = 1000
for base in range(0, n, batch):
    count = min(batch, n - base)
    s.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$16\r\n0123456789abcdef\r\n" % i
                       for i in range(base, base + count)))
    want, got = count * 5, b""
    while len(got) < want:
        chunk = s.recv(1 << 16)
        if not chunk:
            sys.exit("the connection closed")
        got += chunk
    if got != b"+OK\r\n" * count:
        sys.exit("unexpected answers: %r" % got[:200])
