"""The client library against our nsqd (in-process, 127.0.0.1 port 0): round trips,
batching under concurrency, error mapping over TCP and HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import trio

from client import (
    BadMessageError,
    BadTopicError,
    ClientConfig,
    Consumer,
    HTTPProducer,
    InvalidError,
    Message,
    Producer,
    encode_json,
    encode_msgpack,
)

TIMEOUT = 30


def tcp(server: Any) -> str:
    return "%s:%d" % server.tcp_address


async def drain(consumer: Consumer, count: int) -> list[Message]:
    got: list[Message] = []
    with trio.fail_after(TIMEOUT):
        async for message in consumer:
            got.append(message)
            await message.finish()
            if len(got) == count:
                break
    return got


async def test_round_trip_pub_mpub_dpub(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd()
    async with Producer(tcp(server)) as producer:
        await producer.publish("rt", encode_json({"n": 1}))
        await producer.multi_publish("rt", [encode_msgpack({"n": 2}), b"three"])
        await producer.deferred_publish("rt", b"deferred", delay=0.2)
    async with Consumer("rt", "c", nsqd_tcp_addresses=[tcp(server)], max_in_flight=10) as consumer:
        got = await drain(consumer, 4)
    bodies = [m.body for m in got]
    assert bodies[-1] == b"deferred"  # delivered last, after its delay
    assert got[0].json() == {"n": 1}
    assert got[1].msgpack() == {"n": 2}
    assert bodies[2] == b"three"
    assert all(m.attempts == 1 and len(m.id) == 16 and m.timestamp > 0 for m in got)
    channel = server.nsqd.topics["rt"].channels["c"]
    assert channel.message_count == 4


async def test_requeue_redelivers_with_more_attempts(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd()
    async with Producer(tcp(server)) as producer:
        await producer.publish("rq", b"again")
    config = ClientConfig(max_backoff_duration=0.0)
    async with Consumer("rq", "c", nsqd_tcp_addresses=[tcp(server)], config=config) as consumer:
        with trio.fail_after(TIMEOUT):
            first = await consumer.__anext__()
            await first.requeue(delay=0.05)
            second = await consumer.__anext__()
            await second.touch()
            await second.finish()
    assert first.id == second.id and (first.attempts, second.attempts) == (1, 2)


async def test_batched_publishes_each_get_their_ack(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd()
    acked: list[int] = []

    async def publish(producer: Producer, i: int) -> None:
        await producer.publish("batch", b"%05d" % i)
        acked.append(i)

    async with Producer(tcp(server), batch=True, batch_size=50) as producer:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                for i in range(2000):
                    nursery.start_soon(publish, producer, i)
        stats = producer.statistics()
    assert sorted(acked) == list(range(2000))
    assert stats.messages_published == 2000 and stats.publish_errors == 0
    assert stats.batches_sent < 2000 // 10  # coalesced, not one PUB each
    async with Consumer("batch", "c", nsqd_tcp_addresses=[tcp(server)], max_in_flight=500) as consumer:
        got = await drain(consumer, 2000)
    assert sorted(m.body for m in got) == [b"%05d" % i for i in range(2000)]


async def test_send_receipts(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd()
    async with Producer(tcp(server)) as producer:
        receipts = [await producer.send("receipts", b"%d" % i) for i in range(500)]
        receipts.append(producer.send_nowait("receipts", b"500"))
        with trio.fail_after(TIMEOUT):
            for receipt in receipts:
                await receipt
        assert all(r.done and r.error is None for r in receipts)
    assert server.nsqd.topics["receipts"].message_count == 501


async def test_error_mapping_over_tcp(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd(max_msg_size=100)
    async with Producer(tcp(server), batch=True) as producer:
        with pytest.raises(BadTopicError):
            await producer.publish("no spaces allowed", b"x")
        with pytest.raises(BadMessageError) as too_big:
            await producer.publish("errors", b"x" * 101)
        assert too_big.value.code == "E_BAD_MESSAGE"
        with pytest.raises(BadMessageError):
            await producer.publish("errors", b"")
        with pytest.raises(InvalidError) as bad_defer:
            await producer.deferred_publish("errors", b"x", delay=10 * 3600)
        assert bad_defer.value.code == "E_INVALID"
        with pytest.raises(BadMessageError):
            await producer.multi_publish("errors", [b"ok", b"y" * 101])
        # the producer recovers from every fatal error (nsqd closed the connection)
        await producer.publish("errors", b"fine")
        assert producer.statistics().connects >= 4
    assert server.nsqd.topics["errors"].message_count == 1


async def test_batch_with_one_bad_message(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd(max_msg_size=100)
    outcome: dict[bytes, str] = {}

    async def publish(producer: Producer, body: bytes) -> None:
        try:
            await producer.publish("mixed", body)
            outcome[body] = "ok"
        except BadMessageError:
            outcome[body] = "bad"

    async with Producer(tcp(server), batch=True, flush_interval=0.5) as producer:
        await producer.publish("mixed", b"first")
        async with trio.open_nursery() as nursery:
            for body in (b"a", b"b" * 200, b"c"):
                nursery.start_soon(publish, producer, body)
    assert outcome == {b"a": "ok", b"b" * 200: "bad", b"c": "ok"}
    assert server.nsqd.topics["mixed"].message_count == 3


async def test_http_producer_round_trip_and_errors(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd(max_msg_size=100)
    async with HTTPProducer(server.http_url) as producer:
        await producer.publish("http", b"one")
        await producer.multi_publish("http", [b"two", b"with\nnewline"])
        await producer.deferred_publish("http", b"later", delay=0.1)
        with pytest.raises(BadTopicError) as bad_topic:
            await producer.publish("bad topic", b"x")
        assert bad_topic.value.status_code == 400 and bad_topic.value.desc == "INVALID_TOPIC"
        with pytest.raises(BadMessageError) as too_big:
            await producer.publish("http", b"x" * 101)
        assert too_big.value.status_code == 413 and too_big.value.desc == "MSG_TOO_BIG"
        with pytest.raises(BadMessageError):
            await producer.publish("http", b"")
        with pytest.raises(InvalidError):
            await producer.deferred_publish("http", b"x", delay=-0.0 + 10 * 3600)
    async with Consumer("http", "c", nsqd_tcp_addresses=[tcp(server)], max_in_flight=10) as consumer:
        got = await drain(consumer, 4)
    assert sorted(m.body for m in got) == [b"later", b"one", b"two", b"with\nnewline"]


async def test_http_producer_fails_over(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd()
    dead = "http://127.0.0.1:1"
    async with HTTPProducer([dead, server.http_url]) as producer:
        await producer.publish("http_fo", b"x")
    assert server.nsqd.topics["http_fo"].message_count == 1


async def test_stats_seen_by_nsqd(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd()
    config = ClientConfig(client_id="stats-client", user_agent="trio-nsq-test/1")
    async with Producer(tcp(server)) as producer:
        await producer.publish("seen", b"x")
    async with Consumer("seen", "c", nsqd_tcp_addresses=[tcp(server)], config=config) as consumer:
        message = await consumer.__anext__()
        import httpx

        async with httpx.AsyncClient() as http:
            stats = (await http.get(f"{server.http_url}/stats", params={"format": "json"})).json()
        await message.finish()
    text = json.dumps(stats)
    assert "stats-client" in text and "trio-nsq-test/1" in text
