"""Loads N distinct keys (key:000000000000.., 16-byte values) into a skiff node's RESP port
over CONNS connections at once (default 50; a RESP session commits its commands one after
the other, so one connection would take minutes for a million keys), each pipelining 1000
SETs at a time; fails unless every answer is +OK.

Usage: python3 bench/load_keys.py N PORT [CONNS]
"""
import selectors
import socket
import sys

n, port = int(sys.argv[1]), int(sys.argv[2])
conns = int(sys.argv[3]) if len(sys.argv) > 3 else 50
BATCH = 1000
batches = iter(range(0, n, BATCH))
sel = selectors.DefaultSelector()


def send_next(s):
    base = next(batches, None)
    if base is None:
        sel.unregister(s)
        s.close()
        return
    count = min(BATCH, n - base)
    s.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$16\r\n0123456789abcdef\r\n" % i
                       for i in range(base, base + count)))
    sel.modify(s, selectors.EVENT_READ, [count * 5, b""])


for _ in range(conns):
    s = socket.create_connection(("127.0.0.1", port))
    sel.register(s, selectors.EVENT_READ, None)
    send_next(s)
while sel.get_map():
    for key, _ in sel.select():
        s, state = key.fileobj, key.data
        chunk = s.recv(1 << 16)
        if not chunk:
            sys.exit("a connection closed")
        state[1] += chunk
        if len(state[1]) >= state[0]:
            if state[1] != b"+OK\r\n" * (state[0] // 5):
                sys.exit("unexpected answers: %r" % state[1][:200])
            send_next(s)
