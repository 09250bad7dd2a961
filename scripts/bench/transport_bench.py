"""nsqd consume throughput over plain TCP, TLS, snappy, deflate and TLS+snappy.

    python scripts/bench/transport_bench.py [--messages 300000] [--size 100] [--modes plain,tls,...]

One nsqd subprocess with a throwaway certificate (trustme). For each mode: N messages
are published plainly (MPUB x200, not timed), then one reader negotiates the mode in
IDENTIFY and consumes them all (RDY 2500, every message FIN'd, FINs batched per read,
as scripts/bench/nsqd_bench.py). Prints msgs/s, nsqd CPU seconds and the bytes per
message the reader got under the codec (TLS's own overhead not counted). Bodies are
JSON-like text (compressible, not trivially).
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from _common import cpu_seconds, daemon, fin_loop

from client.compression import DeflateCodec, SnappyCodec
from client.protocol import FrameReader, commands

MODES = ("plain", "tls", "snappy", "deflate", "tls+snappy", "tls+deflate")
_unpack = struct.Struct(">lL").unpack_from


def _bodies(start: int, n: int, size: int) -> list[bytes]:
    out = []
    for i in range(start, start + n):
        body = (f'{{"id":{i},"user":"user{i % 997}","event":"page_view","path":"/items/{i * 7919 % 100003}",'
                f'"ts":{1700000000000 + i * 13}}}').encode()
        out.append((body + b" " * size)[:size] if len(body) < size else body[:size])
    return out


def publish(addr: tuple[str, int], topic: str, total: int, size: int, batch: int = 200) -> None:
    sock = socket.create_connection(addr)
    sock.sendall(b"  V2" + commands.sub(topic, "ch") + commands.cls())
    reader = FrameReader()
    seen = 0
    while seen < 2:  # OK, CLOSE_WAIT: the channel exists before the messages
        reader.feed(sock.recv(65536))
        seen += len(reader.frames())
    sock.close()
    sock = socket.create_connection(addr)
    sock.sendall(b"  V2")
    reader = FrameReader()
    for start in range(0, total - total % batch, batch):
        sock.sendall(commands.mpub(topic, _bodies(start, batch, size)))
        got = 0
        while not got:
            reader.feed(sock.recv(65536))
            got = len(reader.frames())
    sock.close()


class _Conn:
    """A blocking client connection that negotiates TLS/snappy/deflate like go-nsq."""

    def __init__(self, addr: tuple[str, int], mode: str, ssl_ctx: ssl.SSLContext | None) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.codec = None
        self.raw_bytes = 0
        self._buf = b""
        features = {"tls_v1": "tls" in mode, "snappy": "snappy" in mode,
                    "deflate": "deflate" in mode, "deflate_level": 1}
        self.sock.sendall(b"  V2" + commands.identify({"feature_negotiation": True, **features}))
        self._frame()  # IDENTIFY's JSON
        if features["tls_v1"]:
            assert ssl_ctx is not None and not self._buf
            self.sock = ssl_ctx.wrap_socket(self.sock, server_hostname="127.0.0.1")
            assert self._frame() == b"OK"
        if features["snappy"] or features["deflate"]:
            self.codec = SnappyCodec() if features["snappy"] else DeflateCodec(1)
            leftover, self._buf = self._buf, b""
            self._buf = self.codec.decompress(leftover)
            assert self._frame() == b"OK"

    def send(self, data: bytes) -> None:
        self.sock.sendall(self.codec.compress(data) if self.codec else data)

    def recv(self) -> bytes:
        while True:
            data = self.sock.recv(1 << 20)
            if not data:
                raise RuntimeError("closed")
            self.raw_bytes += len(data)
            if self.codec is None:
                return data
            out = self.codec.decompress(data)
            if out:
                return out

    def _frame(self) -> bytes:
        while True:
            if len(self._buf) >= 8:
                size, _ = _unpack(self._buf, 0)
                if len(self._buf) >= 4 + size:
                    data = self._buf[8 : 4 + size]
                    self._buf = self._buf[4 + size :]
                    return data
            self._buf += self.recv()


def consume(addr: tuple[str, int], topic: str, total: int, mode: str,
            ssl_ctx: ssl.SSLContext | None, rdy: int = 2500) -> tuple[int, float, int]:
    conn = _Conn(addr, mode, ssl_ctx)
    conn.send(commands.sub(topic, "ch"))
    assert conn._frame() == b"OK"
    conn.send(commands.rdy(rdy))
    raw0 = conn.raw_bytes
    t0 = time.perf_counter()
    got = fin_loop(conn.recv, conn.send, total, conn._buf)
    elapsed = time.perf_counter() - t0
    conn.sock.close()
    return got, elapsed, conn.raw_bytes - raw0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=300_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--modes", default=",".join(MODES))
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    import trustme

    with tempfile.TemporaryDirectory() as tmp:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        cert.private_key_pem.write_to_path(key_path)
        with open(cert_path, "wb") as f:
            for blob in cert.cert_chain_pems:
                f.write(blob.bytes())
        ssl_ctx = ssl.create_default_context()
        ca.configure_trust(ssl_ctx)
        with daemon("nsqd", "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                    "--https-address", "127.0.0.1:0", "--tls-cert", cert_path, "--tls-key", key_path,
                    "--mem-queue-size", str(args.messages + 1)) as (proc, addrs):
            tcp = addrs["TCP"]
            print(f"{args.messages} messages of {args.size} B per mode; RDY 2500, FIN each")
            print(f"{'mode':<12} {'msg/s':>10} {'nsqd CPU s':>11} {'recv B/msg':>11}")
            for mode in modes:
                topic = "bench_" + mode.replace("+", "_")
                publish(tcp, topic, args.messages, args.size)
                c0 = cpu_seconds(proc.pid)
                got, el, raw = consume(tcp, topic, args.messages, mode, ssl_ctx)
                cpu = cpu_seconds(proc.pid) - c0
                print(f"{mode:<12} {got / el:>10,.0f} {cpu:>11.2f} {raw / got:>11.1f}", flush=True)


if __name__ == "__main__":
    main()
