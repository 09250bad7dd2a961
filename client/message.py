"""A message received by a consumer, with the responses nsqd expects for it.

Every delivered message must be answered exactly once: :meth:`Message.finish` (done),
or :meth:`Message.requeue` (deliver again later). :meth:`Message.touch` extends the
server-side timeout while work continues. Body helpers decode JSON and msgpack;
:func:`encode_json` / :func:`encode_msgpack` are their publishing counterparts.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, final

import msgpack
from trio.lowlevel import checkpoint_if_cancelled

__all__ = ["Message", "Responder", "encode_json", "encode_msgpack"]


class Responder(Protocol):
    """What sends a message's answers (the consumer's connection state).

    The answer methods only queue the command and return True when the connection's
    write buffer is full; then :meth:`wait_writable` applies the backpressure.
    """

    def finish(self, message: Message) -> bool: ...

    def requeue(self, message: Message, delay: float | None, backoff: bool) -> bool: ...

    def touch(self, message: Message) -> bool: ...

    async def wait_writable(self) -> None:
        """Wait for room in the write buffer (cancelling only cancels the wait)."""
        ...


@final
class Message:
    """One delivery of an NSQ message.

    Attributes:
        id: the 16-byte message id.
        body: the payload.
        timestamp: nanoseconds since the epoch when nsqd accepted the message.
        attempts: how many times it has been delivered, this time included.
        address: the nsqd it came from.
    """

    __slots__ = ("_responded", "_responder", "address", "attempts", "body", "id", "timestamp")

    def __init__(
        self,
        id: bytes,
        body: bytes,
        timestamp: int,
        attempts: int,
        *,
        responder: Responder | None = None,
        address: str = "",
    ) -> None:
        self.id = id
        self.body = body
        self.timestamp = timestamp
        self.attempts = attempts
        self.address = address
        self._responder = responder
        self._responded = False

    def __repr__(self) -> str:
        return f"<Message {self.id.decode('ascii', 'replace')} attempts={self.attempts} {len(self.body)}B>"

    @property
    def has_responded(self) -> bool:
        """True once :meth:`finish` or :meth:`requeue` was called."""
        return self._responded

    @property
    def responder(self) -> Responder | None:
        """What answers this message (its connection), None when not received from nsqd."""
        return self._responder

    def claim(self) -> Responder:
        """Take the message's one answer without sending it: marks it answered and
        returns the responder to answer through at once (the consumer does this to hand
        messages back while closing). Applications use :meth:`finish` / :meth:`requeue`.

        Raises:
            RuntimeError: the message was not received from nsqd.
        """
        responder = self._responder
        if responder is None:
            raise RuntimeError("this message was not received from nsqd; it cannot be answered")
        self._responded = True
        return responder

    async def finish(self) -> None:
        """Tell nsqd the message is done (``FIN``). Later answers are ignored.

        The FIN is queued on the connection the message came from; this waits only when
        that connection's write buffer is full. If the connection has gone, the FIN is
        dropped and nsqd will deliver the message again after its timeout.

        Cancellation: if cancelled, the message was not answered (a cancel while
            waiting for room in the write buffer comes after the answer was queued).
        """
        if self._responded:
            return
        await checkpoint_if_cancelled()
        responder = self.claim()
        if responder.finish(self):
            await responder.wait_writable()

    async def requeue(self, delay: float | None = None, backoff: bool = True) -> None:
        """Give the message back to nsqd for a later delivery (``REQ``).

        Args:
            delay: seconds before it is delivered again; ``None`` applies the
                consumer's requeue policy (by default ``default_requeue_delay`` times
                the attempts, capped at ``max_requeue_delay``).
            backoff: also slow the consumer down (counts as a failure for backoff).

        Cancellation: if cancelled, the message was not answered (a cancel while
            waiting for room in the write buffer comes after the answer was queued).
        """
        if self._responded:
            return
        await checkpoint_if_cancelled()
        responder = self.claim()
        if responder.requeue(self, delay, backoff):
            await responder.wait_writable()

    async def touch(self) -> None:
        """Reset the message's server-side timeout (``TOUCH``); ignored once answered.

        Cancellation: if cancelled, no TOUCH was queued (a cancel while waiting for room
            in the write buffer comes after it was).
        """
        if self._responded:
            return
        await checkpoint_if_cancelled()
        responder = self._responder
        if responder is None:
            raise RuntimeError("this message was not received from nsqd; it cannot be answered")
        if responder.touch(self):
            await responder.wait_writable()

    def json(self, **kwargs: Any) -> Any:
        """The body decoded as JSON (``kwargs`` go to :func:`json.loads`)."""
        return json.loads(self.body, **kwargs)

    def msgpack(self, **kwargs: Any) -> Any:
        """The body decoded as msgpack (``kwargs`` go to :func:`msgpack.unpackb`)."""
        return msgpack.unpackb(self.body, **kwargs)


def encode_json(value: Any, **kwargs: Any) -> bytes:
    """``value`` as compact UTF-8 JSON bytes, ready to publish."""
    kwargs.setdefault("separators", (",", ":"))
    return json.dumps(value, **kwargs).encode()


def encode_msgpack(value: Any, **kwargs: Any) -> bytes:
    """``value`` as msgpack bytes, ready to publish."""
    packed: bytes = msgpack.packb(value, **kwargs)
    return packed
