"""Pusher combinators, after go-zero's ``BalancedPusher`` and ``MultiPusher``.

Both are themselves :class:`~client.queue.interfaces.Pusher` objects, so they nest: a
``MultiPusher`` of ``BalancedPusher`` objects publishes each item once to each of several
clusters, load-balanced within a cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Generic, TypeVar, final

import trio

from .interfaces import Pusher

__all__ = [
    "BalancedPusher",
    "MultiPushError",
    "MultiPusher",
    "NoAvailablePusherError",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class NoAvailablePusherError(Exception):
    """Every pusher of a :class:`BalancedPusher` failed for one item.

    Attributes:
        errors: The failure of each pusher tried, in order, keyed by pusher name.
    """

    def __init__(self, errors: Mapping[str, Exception]) -> None:
        super().__init__(f"no available pusher: all {len(errors)} failed")
        self.errors: Mapping[str, Exception] = MappingProxyType(dict(errors))


class MultiPushError(Exception):
    """Some pushers of a :class:`MultiPusher` failed; the others delivered the item.

    Attributes:
        errors: The failures, keyed by pusher name.
        total: How many pushers were asked.
    """

    def __init__(self, errors: Mapping[str, Exception], total: int) -> None:
        names = ", ".join(errors)
        super().__init__(f"push failed on {len(errors)} of {total} pushers: {names}")
        self.errors: Mapping[str, Exception] = MappingProxyType(dict(errors))
        self.total = total


def _join_names(pushers: Sequence[Pusher[T]]) -> str:
    if not pushers:
        raise ValueError("at least one pusher is required")
    return ",".join(pusher.name for pusher in pushers)


@final
class BalancedPusher(Generic[T]):
    """Push each item to one pusher, round robin; on failure try the next one.

    Args:
        pushers: The candidates; their names joined with ``,`` name this pusher.

    Raises:
        ValueError: If ``pushers`` is empty.
    """

    def __init__(self, pushers: Sequence[Pusher[T]]) -> None:
        self._name = _join_names(pushers)
        self._pushers = tuple(pushers)
        self._next = 0

    @property
    def name(self) -> str:
        """The members' names, comma-separated."""
        return self._name

    async def push(self, item: T) -> None:
        """Deliver ``item`` through the first pusher, in rotation, that accepts it.

        Each call starts one place further along the rotation than the previous call.

        Raises:
            NoAvailablePusherError: If every pusher raised.
        """
        count = len(self._pushers)
        start = self._next
        self._next = (start + 1) % count
        errors: dict[str, Exception] = {}
        for offset in range(count):
            target = self._pushers[(start + offset) % count]
            try:
                await target.push(item)
            except Exception as exc:
                logger.warning("PUSHER(%s): push failed: %r", target.name, exc)
                errors[target.name] = exc
            else:
                return
        raise NoAvailablePusherError(errors)


@final
class MultiPusher(Generic[T]):
    """Push each item to every pusher, concurrently.

    Args:
        pushers: The destinations; their names joined with ``,`` name this pusher.

    Raises:
        ValueError: If ``pushers`` is empty.
    """

    def __init__(self, pushers: Sequence[Pusher[T]]) -> None:
        self._name = _join_names(pushers)
        self._pushers = tuple(pushers)

    @property
    def name(self) -> str:
        """The members' names, comma-separated."""
        return self._name

    async def push(self, item: T) -> None:
        """Deliver ``item`` to every pusher; returns when all have finished.

        Raises:
            MultiPushError: If at least one pusher raised (the rest still delivered).
        """
        errors: dict[str, Exception] = {}

        async def push_one(target: Pusher[T]) -> None:
            try:
                await target.push(item)
            except Exception as exc:
                logger.warning("PUSHER(%s): push failed: %r", target.name, exc)
                errors[target.name] = exc

        if len(self._pushers) == 1:
            await push_one(self._pushers[0])
        else:
            async with trio.open_nursery() as nursery:
                for target in self._pushers:
                    nursery.start_soon(push_one, target)
        if errors:
            raise MultiPushError(errors, len(self._pushers))
