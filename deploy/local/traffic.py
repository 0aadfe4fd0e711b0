#!/usr/bin/env python3
"""Real traffic for the emulated topology.

  traffic.py serve http ADDR PORT     an HTTP server (GET /N answers N bytes)
  traffic.py serve tcp ADDR PORT      reads "N M\\n" + N bytes, answers M bytes, closes
  traffic.py serve udp ADDR PORT      answers each datagram "M ..." with M bytes
  traffic.py client --http A:P --tcp A:P --udp A:P [--count N] [--seed S] [--pause S]
          connects N times to each server with varied sizes; prints one JSON line
          per connection: proto, client, cport, server, sport, c2s, s2c (payload
          bytes each way, as sent and received by the application); no two
          connections of a run from the same client port.
"""
import http.server
import json
import random
import socket
import socketserver
import sys
import time


class Http(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        try:
            n = int(self.path.strip("/") or "0")
        except ValueError:
            n = 0
        body = bytes((i * 7) & 0xff for i in range(n))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class Tcp(socketserver.BaseRequestHandler):
    def handle(self):
        f = self.request.makefile("rb")
        n, m = map(int, f.readline().split())
        f.read(n)
        self.request.sendall(b"y" * m)
        self.request.shutdown(socket.SHUT_WR)
        f.read()


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(kind, addr, port):
    if kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, port))
        while True:
            d, peer = s.recvfrom(65536)
            m = int(d.split()[0])
            s.sendto(b"u" * m, peer)
    handler = Http if kind == "http" else Tcp
    Server((addr, port), handler).serve_forever()


def recv_all(s):
    got = 0
    while True:
        x = s.recv(65536)
        if not x:
            return got
        got += len(x)


def hp(v):
    a, p = v.rsplit(":", 1)
    return a, int(p)


def client(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--http")
    ap.add_argument("--tcp")
    ap.add_argument("--udp")
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pause", type=float, default=0.02)
    a = ap.parse_args(argv)
    rnd = random.Random(a.seed)
    used = set()

    def fresh(kind, addr):
        """A socket connected to addr from a client port no connection of
        this run had: the kernel may hand one out twice (a UDP port at
        random), and the tests tell connections apart by their 5-tuple."""
        for _ in range(1000):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
            s.bind(("", 0))
            if s.getsockname()[1] not in used:
                used.add(s.getsockname()[1])
                s.settimeout(5 if kind == "udp" else 10)
                s.connect(addr)
                return s
            s.close()
        raise RuntimeError("no client port left that this run has not used")

    for _ in range(a.count):
        for kind in ("http", "tcp", "udp"):
            target = getattr(a, kind)
            if not target:
                continue
            addr = hp(target)
            s = fresh(kind, addr)
            if kind == "udp":
                c2s = s2c = 0
                for _ in range(rnd.randint(1, 4)):
                    req = f"{rnd.randint(1, 1400)} ".encode().ljust(rnd.randint(8, 300), b"q")
                    s.send(req)
                    c2s += len(req)
                    s2c += len(s.recv(65536))
            else:
                if kind == "http":
                    req = f"GET /{rnd.randint(0, 60000)} HTTP/1.0\r\nHost: {addr[0]}\r\n\r\n".encode()
                    s.sendall(req)
                    c2s = len(req)
                else:
                    n, m = rnd.randint(0, 50000), rnd.randint(0, 50000)
                    req = f"{n} {m}\n".encode() + b"x" * n
                    s.sendall(req)
                    c2s = len(req)
                s2c = recv_all(s)
            me = s.getsockname()
            s.close()
            print(json.dumps({"proto": "udp" if kind == "udp" else "tcp", "kind": kind,
                              "client": me[0], "cport": me[1], "server": addr[0],
                              "sport": addr[1], "c2s": c2s, "s2c": s2c}), flush=True)
            time.sleep(a.pause)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        client(sys.argv[2:])
