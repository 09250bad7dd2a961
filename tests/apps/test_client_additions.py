"""The two client additions the tools use: Producer.connect() and Consumer.buffered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
from apps_helpers import TIMEOUT, tcp

from client import Consumer, NotConnectedError, Producer


async def test_producer_connect(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd()
    async with Producer(tcp(server)) as producer:
        await producer.connect()
        assert producer.statistics().address == tcp(server)
        await producer.connect()  # already connected: nothing to do
        assert producer.statistics().connects == 1
    async with Producer("127.0.0.1:1") as producer:
        with pytest.raises(NotConnectedError):
            await producer.connect()


async def test_consumer_buffered(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd()
    async with Producer(tcp(server)) as producer:
        await producer.multi_publish("buf", [b"%d" % i for i in range(10)])
    async with Consumer("buf", "c", nsqd_tcp_addresses=[tcp(server)], max_in_flight=10) as consumer:
        with trio.fail_after(TIMEOUT):
            while consumer.buffered < 10:
                await trio.sleep(0.01)
        message = await consumer.__anext__()
        assert consumer.buffered == 9
        await message.finish()
