"""DPUB to a topic no channel takes yet: the topic queues it (memory or disk) with its due
time, and a channel created later gets it no earlier than due."""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio
from helpers import RawConn

from client.protocol import commands


@pytest.mark.parametrize("mem_queue_size", [10000, 0])
async def test_topic_queued_dpub_keeps_its_delay(start_nsqd: Any, mem_queue_size: int) -> None:
    node = await start_nsqd(mem_queue_size=mem_queue_size)
    pub = await RawConn.open(node.tcp_address)
    sent = time.monotonic()
    await pub.pub("q", b"now")
    await pub.send(commands.dpub("q", 600, b"later"))
    assert await pub.response() == b"OK"
    topic = node.nsqd.topics["q"]
    assert topic.depth() == 2
    if mem_queue_size == 0:
        assert topic.backend.depth() == 2 and not topic.memory
    sub = await RawConn.open(node.tcp_address)
    await sub.sub("q", "c", 5)
    with trio.fail_after(10):
        first = await sub.message()
        second = await sub.message()
    assert first.body == b"now" and second.body == b"later"
    assert time.monotonic() - sent >= 0.6
    await pub.aclose()
    await sub.aclose()
