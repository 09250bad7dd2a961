"""The two NSQ adapters of the queue framework: a source and a handler.

* :class:`NSQSource` plays the queue's :class:`~client.queue.QueueProducer` role over
  a :class:`client.Consumer`: each ``produce()`` takes the next received
  :class:`~client.Message`. Several sources may share one consumer (several fetchers).
* :class:`NSQHandler` plays the queue's :class:`~client.queue.QueueConsumer` role: it
  awaits the user's handler with the message, then answers nsqd: ``FIN`` if the handler
  returned, ``REQ`` (with the consumer's requeue policy) if it raised. A handler may answer
  the message itself; the adapter then leaves it alone. Once its ``give_back`` predicate
  holds (the queue is stopping), messages not started yet are REQ'd at once, unhandled.

:class:`~client.queue.NSQQueue` wires both to a :class:`~client.queue.Queue`; use these
directly only to build a different arrangement.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final, Literal, final

import trio

from ..consumer import Consumer
from ..message import Message
from .interfaces import Nothing, ProduceListener

__all__ = ["MessageHandler", "NSQHandler", "NSQSource"]

logger = logging.getLogger(__name__)

MessageHandler = Callable[[Message], Awaitable[object]]
"""The user's handler: returning means done (FIN), raising means retry (REQ)."""

#: a requeue on cancellation is best effort: it must not hold up the cancellation
_CANCEL_REQUEUE_TIMEOUT: Final = 1.0


@final
class NSQSource:
    """A queue source over a :class:`client.Consumer` that the caller opened.

    ``produce()`` returns the next message the consumer received. While the consumer is
    paused through :meth:`set_paused` the queue is told so (``on_producer_pause``). Once the
    consumer closes, ``produce()`` waits until the queue stops it.

    Args:
        consumer: An opened consumer; the source neither opens nor closes it.
    """

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer
        self._listeners: list[ProduceListener] = []
        self._paused = False

    def __repr__(self) -> str:
        return f"<NSQSource {self._consumer.topic}/{self._consumer.channel}>"

    @property
    def consumer(self) -> Consumer:
        """The consumer this source reads."""
        return self._consumer

    def add_listener(self, listener: ProduceListener) -> None:
        """Register the queue's listener (QueueProducer protocol)."""
        self._listeners.append(listener)
        if self._paused:
            listener.on_producer_pause()

    def set_paused(self, paused: bool) -> None:
        """Report a paused (or resumed) consumer to the queue; the caller changes its RDY."""
        if paused == self._paused:
            return
        self._paused = paused
        for listener in self._listeners:
            if paused:
                listener.on_producer_pause()
            else:
                listener.on_producer_resume()

    async def produce(self) -> Message | Literal[Nothing.NOTHING]:
        """The next received message (QueueProducer protocol).

        Cancel-safe: a cancelled call took no message. Never returns
        :data:`~client.queue.NOTHING`: the wait happens inside the consumer.
        """
        try:
            return await self._consumer.__anext__()
        except StopAsyncIteration:
            # The consumer is closing (its queue is being stopped): nothing more will come.
            await trio.sleep_forever()


@final
class NSQHandler:
    """A queue handler: call ``handler(message)``, then FIN or REQ the message.

    Args:
        handler: The user's coroutine function.
        backoff: A failed message also makes the consumer back off (RDY 0 for a while,
            go-nsq's flow control), so a failing dependency is not hammered.
        touch_interval: While the handler runs, ``TOUCH`` the message this often (seconds),
            so a slow handler does not reach nsqd's message timeout. ``None`` never touches.
        give_back: Checked before each message; while it returns True, messages are REQ'd
            without delay (and without backoff) instead of handled, and counted in
            :attr:`given_back`. :class:`~client.queue.NSQQueue` sets it once it stops, so
            messages buffered but not started go straight back to nsqd.

    On cancellation (the queue was cancelled, not stopped) the message is requeued at
    once without delay, best effort; if even that cannot be sent, nsqd redelivers it after
    its timeout.
    """

    def __init__(
        self,
        handler: MessageHandler,
        *,
        backoff: bool = True,
        touch_interval: float | None = None,
        give_back: Callable[[], bool] | None = None,
    ) -> None:
        if touch_interval is not None and not touch_interval > 0:
            raise ValueError(f"touch_interval must be > 0 or None, got {touch_interval!r}")
        self._handler = handler
        self._backoff = backoff
        self._touch_interval = touch_interval
        self._give_back = give_back
        #: messages REQ'd unhandled because ``give_back`` held
        self.given_back = 0

    async def consume(self, item: Message) -> None:
        """Handle one message and answer it (QueueConsumer protocol).

        Raises:
            Exception: What the handler raised, after the message was requeued (the queue
                logs and counts it).
        """
        if self._give_back is not None and self._give_back():
            if not item.has_responded:
                self.given_back += 1
                await item.requeue(0.0, backoff=False)
            return
        try:
            if self._touch_interval is None:
                await self._handler(item)
            else:
                await self._call_touching(item, self._touch_interval)
        except Exception:
            if not item.has_responded:
                await item.requeue(backoff=self._backoff)
            raise
        except BaseException:
            if not item.has_responded:
                with trio.CancelScope(shield=True):
                    with trio.move_on_after(_CANCEL_REQUEUE_TIMEOUT):
                        await item.requeue(0.0, backoff=False)
            raise
        if not item.has_responded:
            await item.finish()

    async def on_event(self, event: object) -> None:
        """Events broadcast to the queue are not used by NSQ handlers."""

    async def _call_touching(self, message: Message, interval: float) -> None:
        error: Exception | None = None

        async def touch_forever() -> None:
            while True:
                await trio.sleep(interval)
                await message.touch()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(touch_forever)
            try:
                await self._handler(message)
            except Exception as exc:
                error = exc
            finally:
                nursery.cancel_scope.cancel()
        if error is not None:
            raise error
