"""pynsq-based equivalents of the command-line tools, for apps_bench.py's comparison.

    python _apps_pynsq.py to_nsq ADDR TOPIC              < lines
    python _apps_pynsq.py tail ADDR TOPIC CHANNEL N MAX_IN_FLIGHT    > /dev/null
    python _apps_pynsq.py to_file ADDR TOPIC CHANNEL PATH MAX_IN_FLIGHT
    python _apps_pynsq.py to_http ADDR TOPIC CHANNEL URL CONCURRENCY MAX_IN_FLIGHT
    python _apps_pynsq.py to_nsq_bridge ADDR TOPIC CHANNEL DEST_ADDR MAX_IN_FLIGHT

Each does what the tool of the same name does, the way a pynsq (tornado) user would
write it: MPUB batches for to_nsq, FIN after write+fsync for to_file, FIN after the
HTTP answer / the destination's acknowledgement. They run until SIGTERM (or, for
to_nsq and tail, until done).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import nsq
import tornado.ioloop


def to_nsq(addr: str, topic: str) -> None:
    loop = tornado.ioloop.IOLoop.current()
    writer = nsq.Writer([addr])
    lines = (line.rstrip(b"\n") for line in sys.stdin.buffer)
    state = {"inflight": 0, "eof": False, "errors": 0}
    batch, window = 500, 8

    def send() -> None:
        while state["inflight"] < window and not state["eof"]:
            bodies = [b for _, b in zip(range(batch), lines, strict=False) if b]
            if not bodies:
                state["eof"] = True
                break
            state["inflight"] += 1
            writer.mpub(topic, bodies, callback=done)
        if state["eof"] and not state["inflight"]:
            loop.stop()

    def done(conn: Any, data: Any) -> None:
        state["inflight"] -= 1
        if isinstance(data, nsq.Error):
            state["errors"] += 1
        send()

    def start() -> None:
        if writer.conns:
            send()
        else:
            loop.call_later(0.01, start)

    loop.add_callback(start)
    loop.start()
    sys.exit(1 if state["errors"] else 0)


def tail(addr: str, topic: str, channel: str, count: str, max_in_flight: str) -> None:
    loop = tornado.ioloop.IOLoop.current()
    out = sys.stdout.buffer
    total = int(count)
    state = {"shown": 0}

    def handler(message: Any) -> bool:
        out.write(message.body)
        out.write(b"\n")
        state["shown"] += 1
        if state["shown"] == total:
            out.flush()
            loop.add_callback(loop.stop)
        return True

    nsq.Reader(topic=topic, channel=channel, message_handler=handler, nsqd_tcp_addresses=[addr],
               max_in_flight=int(max_in_flight))
    loop.start()


def to_file(addr: str, topic: str, channel: str, path: str, max_in_flight: str) -> None:
    loop = tornado.ioloop.IOLoop.current()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    limit = int(max_in_flight)
    pending: list[Any] = []
    chunk: list[bytes] = []

    def sync() -> None:
        if pending:
            os.write(fd, b"".join(chunk))
            chunk.clear()
            os.fsync(fd)
            for message in pending:
                message.finish()
            pending.clear()

    def handler(message: Any) -> None:
        message.enable_async()
        chunk.append(message.body + b"\n")
        pending.append(message)
        if len(pending) >= limit:
            sync()

    nsq.Reader(topic=topic, channel=channel, message_handler=handler, nsqd_tcp_addresses=[addr],
               max_in_flight=limit)
    tornado.ioloop.PeriodicCallback(sync, 50).start()
    loop.start()


def to_http(addr: str, topic: str, channel: str, url: str, concurrency: str, max_in_flight: str) -> None:
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    loop = tornado.ioloop.IOLoop.current()
    AsyncHTTPClient.configure(None, max_clients=int(concurrency))
    client = AsyncHTTPClient()

    def handler(message: Any) -> None:
        message.enable_async()
        request = HTTPRequest(url, method="POST", body=message.body,
                              headers={"Content-Type": "application/octet-stream"})

        def done(future: Any) -> None:
            try:
                ok = future.result().code // 100 == 2
            except Exception:  # any failure requeues
                ok = False
            if ok:
                message.finish()
            else:
                message.requeue()

        client.fetch(request, raise_error=False).add_done_callback(done)

    nsq.Reader(topic=topic, channel=channel, message_handler=handler, nsqd_tcp_addresses=[addr],
               max_in_flight=int(max_in_flight))
    loop.start()


def to_nsq_bridge(addr: str, topic: str, channel: str, dest: str, max_in_flight: str) -> None:
    loop = tornado.ioloop.IOLoop.current()
    writer = nsq.Writer([dest])

    def handler(message: Any) -> None:
        message.enable_async()

        def done(conn: Any, data: Any) -> None:
            if isinstance(data, nsq.Error):
                message.requeue()
            else:
                message.finish()

        writer.pub(topic, message.body, callback=done)

    def start() -> None:
        if writer.conns:
            nsq.Reader(topic=topic, channel=channel, message_handler=handler, nsqd_tcp_addresses=[addr],
                       max_in_flight=int(max_in_flight))
        else:
            loop.call_later(0.01, start)

    loop.add_callback(start)
    loop.start()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    role, *rest = sys.argv[1:]
    {"to_nsq": to_nsq, "tail": tail, "to_file": to_file, "to_http": to_http,
     "to_nsq_bridge": to_nsq_bridge}[role](*rest)
