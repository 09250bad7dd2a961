"""``to_nsq``: publish each line of stdin (or ``--delimiter``-separated record) to a topic.

Every record goes to every ``--nsqd-tcp-address``, batched into MPUBs. The exit status
is 0 once every record read has been acknowledged; a refused or timed-out publish is
reported on stderr and exits 1. SIGINT/SIGTERM stop reading; what was read is still
published and acknowledged before exiting.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import trio

from client import NSQError, Producer
from client.accumulator import PublishReceipt

from ._cli import ToolError, UsageError, fail, parse, run, watch_signals
from ._nsq import check_names, check_tcp_addresses, client_config, flag, user_agent
from ._progress import Progress

__all__ = ["Options", "main"]

PROG = "to_nsq"
_READ_SIZE = 1 << 20


@dataclass
class Options:
    """to_nsq's flags."""

    topic: str = flag("topic", "", "NSQ topic to publish to")
    delimiter: str = flag("delimiter", "\n", "character to split input from stdin")
    nsqd_tcp_addresses: list[str] = flag(
        "nsqd-tcp-address", [], "destination nsqd TCP address (may be given multiple times)")
    producer_opts: list[str] = flag(
        "producer-opt", [], "option to passthrough to the producer (may be given multiple "
        "times, go-nsq Config names, e.g. 'snappy' or 'dial_timeout,5s')")
    rate: int = flag("rate", 0, "Throttle messages to n/second. 0 to disable")
    progress: bool = flag("progress", False,
                          "show progress and rate on stderr (default: when stderr is a terminal)")
    batch_size: int = flag("batch-size", 500, "messages per MPUB at most")


class Publisher:
    """Splits stdin into records and queues them on every producer."""

    def __init__(self, opts: Options, producers: list[tuple[str, Producer]]) -> None:
        self.topic = opts.topic
        self.delimiter = opts.delimiter.encode()
        self.rate = opts.rate
        self.producers = producers
        self.receipts: deque[tuple[PublishReceipt, str]] = deque()
        self.read = 0
        self.stopping = False
        self._read_scope: trio.CancelScope | None = None
        self._allowance = 1.0
        self._last = 0.0

    def stop(self, _signum: int = 0) -> None:
        """Stop reading stdin (records already read are still published)."""
        self.stopping = True
        if self._read_scope is not None:
            self._read_scope.cancel()

    async def pump(self, fd: int) -> None:
        """Read ``fd`` to its end (or :meth:`stop`) and queue every record."""
        tail = b""
        self._last = trio.current_time()
        while not self.stopping:
            with trio.CancelScope() as self._read_scope:
                chunk = await trio.to_thread.run_sync(os.read, fd, _READ_SIZE, abandon_on_cancel=True)
            if self._read_scope.cancelled_caught:
                break
            if not chunk:
                break
            records = (tail + chunk if tail else chunk).split(self.delimiter)
            tail = records.pop()
            await self._publish(records)
        if tail:
            await self._publish([tail])

    async def _publish(self, records: list[bytes]) -> None:
        topic, receipts, producers = self.topic, self.receipts, self.producers
        for record in records:
            if not record:
                continue
            if self.rate:
                await self._throttle()
            for address, producer in producers:
                try:
                    receipt = producer.send_nowait(topic, record)
                except trio.WouldBlock:
                    receipt = await producer.send(topic, record)
                    self.reap()
                receipts.append((receipt, address))
            self.read += 1
        await trio.lowlevel.checkpoint()
        self.reap()

    async def _throttle(self) -> None:
        now = trio.current_time()
        self._allowance = min(float(self.rate), self._allowance + (now - self._last) * self.rate)
        self._last = now
        if self._allowance < 1.0:
            await trio.sleep((1.0 - self._allowance) / self.rate)
            self._allowance = 1.0
            self._last = trio.current_time()
        self._allowance -= 1.0

    def reap(self) -> None:
        """Forget the acknowledged receipts at the head of the queue.

        Raises:
            ToolError: a record was not published.
        """
        receipts = self.receipts
        while receipts and receipts[0][0].done:
            receipt, address = receipts.popleft()
            error = receipt.error
            if error is not None:
                raise ToolError(f"failed to publish to {address}: {error}")


async def _main(opts: Options, show_progress: bool) -> int:
    config = client_config(opts.producer_opts, "producer-opt", user_agent=user_agent(PROG))
    async with AsyncExitStack() as stack:
        producers: list[tuple[str, Producer]] = []
        for address in opts.nsqd_tcp_addresses:
            producer = Producer(address, config=config, batch_size=opts.batch_size,
                                max_pending=max(20_000, 4 * opts.batch_size))
            producers.append((address, await stack.enter_async_context(producer)))
        for address, producer in producers:
            try:
                await producer.connect()
            except NSQError as exc:
                raise ToolError(f"failed to connect to nsqd {address} - {exc}") from None
        publisher = Publisher(opts, producers)
        progress = Progress(PROG, lambda: publisher.read) if show_progress else None
        async with trio.open_nursery() as nursery:
            await nursery.start(watch_signals, publisher.stop)
            if progress is not None:
                nursery.start_soon(progress.run)
            await publisher.pump(sys.stdin.fileno() if sys.stdin else 0)
            nursery.cancel_scope.cancel()
        for _, producer in producers:
            await producer.aclose()  # sends every queued batch and waits for the answers
        publisher.reap()
        if progress is not None:
            progress.done()
        if publisher.receipts:  # pragma: no cover - aclose answers every batch
            raise ToolError(f"{len(publisher.receipts)} publishes unanswered")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``to_nsq`` console script."""
    opts, explicit = parse(Options, argv, PROG, "to_nsq: publish lines of stdin to NSQ")
    try:
        if not opts.topic:
            raise UsageError("--topic required")
        check_names([opts.topic])
        if len(opts.delimiter.encode()) != 1:
            raise UsageError("--delimiter must be a single byte")
        if not opts.nsqd_tcp_addresses:
            raise UsageError("--nsqd-tcp-address required")
        check_tcp_addresses(opts.nsqd_tcp_addresses, "nsqd-tcp-address")
        if opts.rate < 0:
            raise UsageError("--rate must be >= 0")
        if opts.batch_size < 1:
            raise UsageError("--batch-size must be >= 1")
    except UsageError as exc:
        fail(PROG, str(exc), 2)
    show = opts.progress if "progress" in explicit else sys.stderr.isatty()
    run(PROG, _main, opts, show, client_log_level=logging.ERROR)


if __name__ == "__main__":
    main()
