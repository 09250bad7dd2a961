"""NSQPusher: go-queue's kq ``Pusher`` for NSQ, batching pushes into MPUBs.

::

    async with Producer("127.0.0.1:4150") as producer:
        async with NSQPusher(producer, "events", flush_interval=0.1) as pusher:
            await pusher.push(b"hello")     # buffered; one MPUB per chunk

Pushes accumulate in a :class:`~client.queue.ChunkExecutor`; a chunk is published with one
``MPUB`` once its bodies reach ``chunk_size_bytes`` (or ``max_items`` bodies), or
``flush_interval`` seconds after its first push. :meth:`NSQPusher.push` returns once the
body is buffered, not when nsqd acknowledged it: as in kq, a failed chunk is logged and
counted (and passed to ``on_error``), never raised to the pusher's callers. Closing (or
:meth:`NSQPusher.stop` when run as a service) publishes what is buffered first.

An MPUB is all or nothing: one body nsqd refuses (larger than its ``--max-msg-size``) fails
its whole chunk. Keep ``chunk_size_bytes`` under nsqd's ``--max-body-size`` (5 MiB by
default); each body counts 4 bytes of MPUB framing.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Protocol, final

import trio

from ..errors import BadTopicError
from ..producer import Producer
from ..protocol import is_valid_topic_name
from .executors import ChunkExecutor

__all__ = [
    "DEFAULT_PUSH_CHUNK_SIZE",
    "DEFAULT_PUSH_FLUSH_INTERVAL",
    "MultiPublisher",
    "NSQPusher",
    "PushErrorHook",
    "PusherStatistics",
]

logger = logging.getLogger(__name__)

DEFAULT_PUSH_CHUNK_SIZE: Final = 1024 * 1024
DEFAULT_PUSH_FLUSH_INTERVAL: Final = 1.0
DEFAULT_PUSH_MAX_ITEMS: Final = 10_000
_MPUB_FRAMING: Final = 4  # the size prefix of each body in an MPUB

PushErrorHook = Callable[[list[bytes], Exception], "Awaitable[object] | object"]
"""Called (sync or async) with a chunk whose MPUB failed, and the error."""


class MultiPublisher(Protocol):
    """What the pusher publishes through: :class:`client.Producer` or
    :class:`client.HTTPProducer`."""

    async def multi_publish(self, topic: str, bodies: Iterable[bytes]) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PusherStatistics:
    """A snapshot of a pusher: bodies ``pushed``, ``published`` (acknowledged by nsqd) in
    ``chunks`` MPUBs, ``failed`` (in ``failed_chunks``), and ``buffered`` now."""

    pushed: int
    published: int
    chunks: int
    failed: int
    failed_chunks: int
    buffered: int
    buffered_bytes: int


@final
class NSQPusher:
    """Push bodies to ``topic``, batched into MPUBs (a :class:`~client.queue.Pusher`).

    Use it as ``async with pusher:`` or run it as a service (``run()``/``stop()``, e.g. in a
    :class:`~client.queue.ServiceGroup`); either way it must be open before :meth:`push`.

    Args:
        producer: A publisher the caller opened and closes (:class:`client.Producer`,
            :class:`client.HTTPProducer`), or nsqd TCP addresses for a
            :class:`client.Producer` that the pusher opens and closes itself.
        topic: Where to publish.
        chunk_size_bytes: Publish once the buffered bodies (plus 4 bytes each) reach this.
        flush_interval: Longest wait, in seconds, between a push into an empty buffer and
            its publication.
        max_items: Publish once this many bodies are buffered, whatever their size.
        on_error: Called with each chunk that could not be published and the error
            (default: the error is logged).

    Raises:
        BadTopicError: If ``topic`` is not a valid topic name.
        ValueError: If a size or interval is out of range.
    """

    def __init__(
        self,
        producer: MultiPublisher | str | Sequence[str],
        topic: str,
        *,
        chunk_size_bytes: int = DEFAULT_PUSH_CHUNK_SIZE,
        flush_interval: float = DEFAULT_PUSH_FLUSH_INTERVAL,
        max_items: int = DEFAULT_PUSH_MAX_ITEMS,
        on_error: PushErrorHook | None = None,
    ) -> None:
        if not is_valid_topic_name(topic):
            raise BadTopicError("E_BAD_TOPIC", f"topic name {topic!r} is not valid")
        self._addresses: list[str] | None = None
        self._publisher: MultiPublisher | None = None
        if isinstance(producer, str):
            self._addresses = [producer]
        elif isinstance(producer, Sequence):
            self._addresses = list(producer)
            if not self._addresses:
                raise ValueError("at least one nsqd address is needed")
        else:
            self._publisher = producer
        self._topic = topic
        self._on_error = on_error
        self._executor: ChunkExecutor[bytes] = ChunkExecutor(
            self._publish,
            chunk_size_bytes=chunk_size_bytes,
            flush_interval=flush_interval,
            max_items=max_items,
        )
        self._stack: AsyncExitStack | None = None
        self._entered = False
        self._stop = trio.Event()
        self._published = 0
        self._chunks = 0
        self._failed = 0
        self._failed_chunks = 0

    def __repr__(self) -> str:
        return f"<NSQPusher {self._topic}>"

    @property
    def name(self) -> str:
        """The topic (Pusher protocol)."""
        return self._topic

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> NSQPusher:
        if self._entered:
            raise RuntimeError("an NSQPusher can be opened only once")
        self._entered = True
        async with AsyncExitStack() as stack:
            if self._addresses is not None:
                self._publisher = await stack.enter_async_context(Producer(self._addresses))
            await stack.enter_async_context(self._executor)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Refuse further pushes, publish what is buffered, close an owned producer."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open, signal started, wait for :meth:`stop`, then close (Service protocol).

        Raises:
            RuntimeError: If the pusher was opened before.
        """
        async with self:
            task_status.started()
            await self._stop.wait()

    def stop(self) -> None:
        """Make :meth:`run` publish what is buffered and return; returns at once."""
        self._stop.set()

    # -- pushing ----------------------------------------------------------------------

    async def push(self, item: bytes | str) -> None:
        """Buffer one body (``str`` is UTF-8 encoded); waits while the buffer is full.

        Raises:
            RuntimeError: If the pusher was not opened yet.
            trio.ClosedResourceError: If it was closed.
        """
        body = item.encode() if isinstance(item, str) else item
        await self._executor.add(body, len(body) + _MPUB_FRAMING)

    async def flush(self) -> None:
        """Publish everything buffered now; returns once that MPUB has been answered."""
        await self._executor.flush()

    def statistics(self) -> PusherStatistics:
        """Return a snapshot of the counters."""
        stats = self._executor.statistics()
        return PusherStatistics(
            pushed=stats.added,
            published=self._published,
            chunks=self._chunks,
            failed=self._failed,
            failed_chunks=self._failed_chunks,
            buffered=stats.buffered,
            buffered_bytes=stats.buffered_bytes,
        )

    async def _publish(self, chunk: list[bytes]) -> None:
        assert self._publisher is not None
        try:
            await self._publisher.multi_publish(self._topic, chunk)
        except Exception as exc:
            self._failed += len(chunk)
            self._failed_chunks += 1
            if self._on_error is None:
                raise  # the executor logs it
            logger.warning("PUSHER(%s): MPUB of %d bodies failed: %r", self._topic, len(chunk), exc)
            try:
                result = self._on_error(chunk, exc)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("PUSHER(%s): on_error hook failed", self._topic)
            return
        self._published += len(chunk)
        self._chunks += 1
