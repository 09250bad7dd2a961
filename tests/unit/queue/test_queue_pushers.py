"""BalancedPusher and MultiPusher: rotation, failover, fan-out and error aggregation."""

from __future__ import annotations

import pytest
import trio

from client.queue import (
    BalancedPusher,
    MultiPusher,
    MultiPushError,
    NoAvailablePusherError,
)


class FakePusher:
    def __init__(self, name: str, *, fail: bool = False, delay: float = 0.0) -> None:
        self._name = name
        self.fail = fail
        self.delay = delay
        self.items: list[str] = []

    @property
    def name(self) -> str:
        return self._name

    async def push(self, item: str) -> None:
        await trio.sleep(self.delay)
        if self.fail:
            raise ConnectionError(f"{self._name} is down")
        self.items.append(item)


async def test_balanced_pusher_rotates() -> None:
    a, b, c = FakePusher("a"), FakePusher("b"), FakePusher("c")
    pusher = BalancedPusher([a, b, c])
    assert pusher.name == "a,b,c"
    for n in range(7):
        await pusher.push(f"m{n}")
    assert a.items == ["m0", "m3", "m6"]
    assert b.items == ["m1", "m4"]
    assert c.items == ["m2", "m5"]


async def test_balanced_pusher_fails_over_to_the_next() -> None:
    a, b, c = FakePusher("a"), FakePusher("b", fail=True), FakePusher("c")
    pusher = BalancedPusher([a, b, c])
    for n in range(6):
        await pusher.push(f"m{n}")
    assert b.items == []
    # Turns: a, b->c, c, a, b->c, c
    assert a.items == ["m0", "m3"]
    assert c.items == ["m1", "m2", "m4", "m5"]


async def test_balanced_pusher_raises_when_all_fail() -> None:
    pushers = [FakePusher(name, fail=True) for name in "xyz"]
    pusher = BalancedPusher(pushers)
    with pytest.raises(NoAvailablePusherError) as info:
        await pusher.push("lost")
    assert list(info.value.errors) == ["x", "y", "z"]
    assert all(isinstance(e, ConnectionError) for e in info.value.errors.values())
    pushers[2].fail = False
    await pusher.push("kept")  # recovers once a member is back
    assert pushers[2].items == ["kept"]


async def test_multi_pusher_delivers_to_all_concurrently(autojump_clock: trio.abc.Clock) -> None:
    members = [FakePusher(name, delay=1.0) for name in "abc"]
    pusher = MultiPusher(members)
    start = trio.current_time()
    await pusher.push("hello")
    assert trio.current_time() - start == pytest.approx(1.0)
    assert [m.items for m in members] == [["hello"]] * 3


async def test_multi_pusher_aggregates_errors(autojump_clock: trio.abc.Clock) -> None:
    a, b, c = FakePusher("a"), FakePusher("b", fail=True), FakePusher("c", fail=True)
    pusher = MultiPusher([a, b, c])
    with pytest.raises(MultiPushError) as info:
        await pusher.push("m")
    assert set(info.value.errors) == {"b", "c"}
    assert info.value.total == 3
    assert a.items == ["m"]


async def test_single_member_multi_pusher_and_nesting() -> None:
    left = BalancedPusher([FakePusher("l1"), FakePusher("l2")])
    right_member = FakePusher("r1", fail=True)
    pusher: MultiPusher[str] = MultiPusher([left, MultiPusher([right_member])])
    assert pusher.name == "l1,l2,r1"
    with pytest.raises(MultiPushError) as info:
        await pusher.push("m")
    assert set(info.value.errors) == {"r1"}
    assert isinstance(info.value.errors["r1"], MultiPushError)


def test_empty_pusher_lists_are_rejected() -> None:
    with pytest.raises(ValueError):
        BalancedPusher([])
    with pytest.raises(ValueError):
        MultiPusher([])
