"""IDENTIFY's output shaping over real sockets: sample_rate and output buffering."""

from __future__ import annotations

import pytest
import trio
from helpers import RawConn

from client.protocol import commands


async def _subscriber(server, topic: str, rdy: int, **identify) -> RawConn:
    conn = await RawConn.open(server.tcp_address)
    await conn.identify(**identify)
    await conn.sub(topic, "ch", rdy=rdy)
    return conn


async def _publish(server, topic: str, bodies: list[bytes]) -> None:
    pub = await RawConn.open(server.tcp_address)
    await pub.send(commands.mpub(topic, bodies))
    assert await pub.response() == b"OK"
    await pub.aclose()


async def _wait_subscribed(server, topic: str) -> None:
    with trio.fail_after(10):
        while not (topic in server.nsqd.topics
                   and any(c.ready_count for c in server.nsqd.clients.values())):
            await trio.sleep(0.01)


# ------------------------------------------------------------------ sample_rate
async def test_sample_rate_delivers_a_sample_and_drops_the_rest(nsqd_server):
    conn = await _subscriber(nsqd_server, "sampled", 2500, sample_rate=10)
    await _wait_subscribed(nsqd_server, "sampled")
    await _publish(nsqd_server, "sampled", [b"%d" % i for i in range(2000)])
    channel = nsqd_server.nsqd.topics["sampled"].channels["ch"]
    with trio.fail_after(10):
        while channel.depth():
            await trio.sleep(0.01)
    got = 0
    while got < len(channel.in_flight):
        await conn.message()
        got += 1
    # NSQ keeps a message when rand(100) <= sample_rate: 11 in 100
    assert 110 < got < 350, got
    # the others are gone from the channel, not queued nor in flight
    assert channel.depth() == 0 and len(channel.in_flight) == got


async def test_sample_rate_zero_delivers_everything(nsqd_server):
    conn = await _subscriber(nsqd_server, "unsampled", 2500, sample_rate=0)
    await _wait_subscribed(nsqd_server, "unsampled")
    await _publish(nsqd_server, "unsampled", [b"%d" % i for i in range(500)])
    bodies = {(await conn.message()).body for _ in range(500)}
    assert len(bodies) == 500


# ------------------------------------------------------------------ output buffering
async def _latency(server, topic: str, rdy: int, **identify) -> float:
    conn = await _subscriber(server, topic, rdy, **identify)
    await _wait_subscribed(server, topic)
    t0 = trio.current_time()
    await _publish(server, topic, [b"1" * 100])
    assert (await conn.message()).body == b"1" * 100
    return trio.current_time() - t0


async def test_output_buffer_timeout_holds_a_lone_message(nsqd_server):
    # NSQ's buffering, as asked: the message waits for more until the timeout
    elapsed = await _latency(nsqd_server, "buffered", 10,
                             output_buffer_size=16384, output_buffer_timeout=600)
    assert elapsed >= 0.5, elapsed


@pytest.mark.parametrize("identify, rdy", [
    ({}, 10),  # not asked for: every batch is written at once
    ({"output_buffer_size": -1}, 10),  # NSQ: no buffer
    ({"output_buffer_size": 16384, "output_buffer_timeout": -1}, 10),
    ({"output_buffer_size": 16384, "output_buffer_timeout": 5000}, 1),  # RDY used up: flushed
    ({"output_buffer_size": 64, "output_buffer_timeout": 5000}, 10),  # 100 B fill it
])
async def test_output_written_at_once(nsqd_server, identify, rdy):
    elapsed = await _latency(nsqd_server, "prompt", rdy, **identify)
    assert elapsed < 2, elapsed


async def test_response_flushes_buffered_messages(nsqd_server):
    conn = await _subscriber(nsqd_server, "flushed", 10, output_buffer_size=16384,
                             output_buffer_timeout=10_000)
    await _wait_subscribed(nsqd_server, "flushed")
    await _publish(nsqd_server, "flushed", [b"one"])
    (client,) = [c for c in nsqd_server.nsqd.clients.values() if c.ready_count]
    with trio.fail_after(5):
        while not client.out_bytes:  # until the message waits in the buffer
            await trio.sleep(0.01)
    t0 = trio.current_time()
    await conn.send(commands.pub("other", b"x"))  # its OK goes out with the message
    msg = await conn.message(timeout=5)
    assert msg.body == b"one"
    assert await conn.response() == b"OK"
    assert trio.current_time() - t0 < 2


# ------------------------------------------------------------------ output limit
@pytest.mark.parametrize("identify", [{}, {"output_buffer_size": 1024,
                                           "output_buffer_timeout": 250}])
async def test_messages_over_the_output_limit_all_arrive(start_nsqd, identify):
    # far more than the client's output limit (4 x --max-output-buffer-size) at once:
    # the channel stops at the limit and goes on once that much was written
    server = await start_nsqd(http_address="", max_output_buffer_size=4096)
    conn = await _subscriber(server, "over", 1000, **identify)
    await _wait_subscribed(server, "over")
    body = b"x" * 1000
    await _publish(server, "over", [body] * 1000)
    for i in range(1000):
        assert (await conn.message(timeout=5)).body == body, i
