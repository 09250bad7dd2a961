"""A worker process for the NSQQueue end-to-end test: consume until SIGTERM, journal every message.

    python tests/integration/queue_scripts/nsq_worker.py --nsqd H:P --topic T --channel C \
        --journal FILE [--conns 2] [--processors 8] [--queue-capacity 64]

Each handled message is appended to the journal as ``<id> <attempts> <body>\\n``. The
handler returns (so the message is FIN'd) only once its line is on disk: lines are group
committed, one write + fsync for every line queued while the previous fsync ran. The
journal therefore lists every message whose FIN could have been sent. A line torn by a
kill -9 is cut when the next worker opens the journal.

Prints ``READY`` on stdout once every connection is subscribed, and ``STATS <json>`` when
it stops; exits 0 after a graceful stop (SIGTERM or SIGINT).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from functools import partial
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from client import Message
from client.queue import NSQQueue, ServiceGroup


def _drop_torn_tail(path: str) -> None:
    """Cut a last line left incomplete by a killed worker: it was never committed."""
    try:
        with open(path, "r+b") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


class Journal:
    """Append-only file with group commit: ``await append(line)`` returns once it is synced."""

    def __init__(self, path: str) -> None:
        _drop_torn_tail(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._batch: list[bytes] = []
        self._done = trio.Event()
        self._wake = trio.Event()
        self.commits = 0

    async def append(self, line: bytes) -> None:
        self._batch.append(line)
        done = self._done
        self._wake.set()
        await done.wait()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)

    async def run(self) -> None:
        """Commit batches until cancelled (cancel only when no append is waiting)."""
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                batch, done = self._batch, self._done
                self._batch, self._done = [], trio.Event()
                # Not abandoned on cancel: a started write always completes.
                await trio.to_thread.run_sync(self._write, b"".join(batch))
                self.commits += 1
                done.set()
        finally:
            os.close(self._fd)


async def main(args: argparse.Namespace) -> None:
    journal = Journal(args.journal)

    async def handle(message: Message) -> None:
        await journal.append(b"%s %d %s\n" % (message.id, message.attempts, message.body))

    queue = NSQQueue(
        args.topic,
        args.channel,
        handle,
        nsqd_tcp_addresses=[args.nsqd],
        conns=args.conns,
        processors=args.processors,
        queue_capacity=args.queue_capacity,
        requeue_delay=0.0,
    )
    group = ServiceGroup([queue])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(journal.run)
        async with trio.open_nursery() as services:
            await services.start(partial(group.run, signals=(signal.SIGTERM, signal.SIGINT)))
            await queue.wait_connected()
            print("READY", flush=True)
        # Every handler has returned: no append is waiting.
        nursery.cancel_scope.cancel()
    stats = queue.statistics()
    print("STATS " + json.dumps({
        "handled": stats.handled,
        "failed": stats.failed,
        "given_back": stats.given_back,
        "finished": sum(c.messages_finished for c in stats.connections),
        "requeued": sum(c.messages_requeued for c in stats.connections),
        "received": sum(c.messages_received for c in stats.connections),
        "commits": journal.commits,
    }), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nsqd", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--journal", required=True)
    parser.add_argument("--conns", type=int, default=2)
    parser.add_argument("--processors", type=int, default=8)
    parser.add_argument("--queue-capacity", type=int, default=64)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="worker %(levelname)s %(name)s: %(message)s")
    trio.run(main, parser.parse_args())
