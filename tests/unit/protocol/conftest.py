"""Shared checks for the sans-I/O readers (h11's ``tr()`` idea: every reader is fed
the same bytes whole, one byte at a time, and with trailing partial data)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

Get = Callable[[Any], list[Any]]


def check_three_ways(make: Callable[[], Any], get: Get, data: bytes, expected: list[Any]) -> None:
    """Feed ``data`` to fresh readers three ways; each must produce ``expected``.

    ``data`` must end exactly where its last event ends.
    """
    assert data and expected

    # 1. the whole buffer at once
    reader = make()
    reader.feed(data)
    assert get(reader) == expected
    assert reader.buffered == 0
    assert get(reader) == []

    # 2. one byte at a time; a single event shows up only with its last byte
    reader = make()
    got: list[Any] = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        events = get(reader)
        if len(expected) == 1 and i < len(data) - 1:
            assert events == [], f"event before its last byte (offset {i})"
            assert reader.buffered == i + 1
        got.extend(events)
    assert got == expected
    assert reader.buffered == 0

    # 3. trailing partial data (the same bytes again, minus the last one) stays buffered
    reader = make()
    reader.feed(data + data[:-1])
    assert get(reader) == expected + expected[:-1]
    if len(expected) == 1:
        assert reader.buffered == len(data) - 1
    assert get(reader) == []
    reader.feed(data[-1:])
    assert get(reader) == expected[-1:]
    assert reader.buffered == 0


def check_every_split(make: Callable[[], Any], get: Get, data: bytes, expected: list[Any]) -> None:
    """Split ``data`` in two at every offset; the events must not depend on where."""
    for i in range(len(data) + 1):
        reader = make()
        reader.feed(data[:i])
        got = list(get(reader))
        reader.feed(data[i:])
        got.extend(get(reader))
        assert got == expected, f"split at {i}"
        assert reader.buffered == 0


@pytest.fixture
def three_ways() -> Callable[..., None]:
    return check_three_ways


@pytest.fixture
def every_split() -> Callable[..., None]:
    return check_every_split
