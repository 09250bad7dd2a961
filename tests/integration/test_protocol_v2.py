"""nsqd protocol V2 over real sockets (names follow nsqd/protocol_v2_test.go)."""

from __future__ import annotations

import dataclasses
import json
import struct

import pytest
import trio
from helpers import RawConn

from client.protocol import FrameType, commands


async def consumer(server, topic: str, channel: str, rdy: int = 1, **identify) -> RawConn:
    conn = await RawConn.open(server.tcp_address)
    if identify:
        await conn.identify(**identify)
    await conn.sub(topic, channel, rdy)
    return conn


async def test_basic_v2(nsqd_server):
    pub = await RawConn.open(nsqd_server.tcp_address)
    await pub.pub("test_basic", b"hello")
    sub = await consumer(nsqd_server, "test_basic", "ch")
    msg = await sub.message()
    assert msg.body == b"hello"
    assert msg.attempts == 1
    assert len(msg.id) == 16
    await sub.send(commands.fin(msg.id))
    await pub.pub("test_basic", b"second")
    assert (await sub.message()).body == b"second"


async def test_identify_feature_negotiation(nsqd_server):
    conn = await RawConn.open(nsqd_server.tcp_address)
    resp = await conn.identify(client_id="c1", hostname="h", user_agent="test/1.0",
                               heartbeat_interval=5000, msg_timeout=2000)
    assert list(resp) == ["max_rdy_count", "version", "max_msg_timeout", "msg_timeout", "tls_v1",
                          "deflate", "deflate_level", "max_deflate_level", "snappy", "sample_rate",
                          "auth_required", "output_buffer_size", "output_buffer_timeout"]
    assert resp["max_rdy_count"] == 2500
    assert resp["version"] == "1.3.0"
    assert resp["msg_timeout"] == 2000
    assert resp["max_msg_timeout"] == 900000
    assert resp["output_buffer_timeout"] == 250


async def test_identify_without_negotiation_says_ok(nsqd_server):
    conn = await RawConn.open(nsqd_server.tcp_address)
    assert await conn.identify(feature_negotiation=False) == b"OK"


@pytest.mark.parametrize("field,value,text", [
    ("heartbeat_interval", 999, b"E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid"),
    ("heartbeat_interval", 60001, b"E_BAD_BODY IDENTIFY heartbeat interval (60001) is invalid"),
    ("msg_timeout", 500, b"E_BAD_BODY IDENTIFY msg timeout (500) is invalid"),
    ("sample_rate", 100, b"E_BAD_BODY IDENTIFY sample rate (100) is invalid"),
    ("output_buffer_size", 63, b"E_BAD_BODY IDENTIFY output buffer size (63) is invalid"),
    ("output_buffer_timeout", 10, b"E_BAD_BODY IDENTIFY output buffer timeout (10) is invalid"),
])
async def test_identify_bad_values_fatal(nsqd_server, field, value, text):
    conn = await RawConn.open(nsqd_server.tcp_address)
    await conn.send(commands.identify({field: value}))
    assert await conn.error() == text
    assert await conn.closed()


async def test_identify_bad_json(nsqd_server):
    conn = await RawConn.open(nsqd_server.tcp_address)
    await conn.send(b"IDENTIFY\n" + struct.pack(">l", 5) + b"{nope")
    assert await conn.error() == b"E_BAD_BODY IDENTIFY failed to decode JSON body"
    assert await conn.closed()


async def test_multiple_consumers_fan_out_to_channels(nsqd_server):
    a = await consumer(nsqd_server, "fanout", "a", rdy=10)
    b = await consumer(nsqd_server, "fanout", "b", rdy=10)
    pub = await RawConn.open(nsqd_server.tcp_address)
    await pub.send(commands.mpub("fanout", [b"m%d" % i for i in range(5)]))
    assert await pub.response() == b"OK"
    for conn in (a, b):
        got = [(await conn.message()).body for _ in range(5)]
        assert got == [b"m%d" % i for i in range(5)]


async def test_messages_wait_for_first_channel(nsqd_server):
    pub = await RawConn.open(nsqd_server.tcp_address)
    for i in range(3):
        await pub.pub("early", b"e%d" % i)
    sub = await consumer(nsqd_server, "early", "late", rdy=10)
    assert [(await sub.message()).body for _ in range(3)] == [b"e0", b"e1", b"e2"]


async def test_rdy_shares_channel_across_consumers(nsqd_server):
    rdys = [1, 5, 20]
    conns = [await consumer(nsqd_server, "share", "ch", rdy=r) for r in rdys]
    # make sure every RDY has been processed: a NOP round trip per conn is not answered,
    # so publish once everyone is subscribed and let counts settle via stats
    pub = await RawConn.open(nsqd_server.tcp_address)
    await pub.send(commands.mpub("share", [b"x"] * 26))
    assert await pub.response() == b"OK"
    counts = []
    for conn, _rdy in zip(conns, rdys, strict=False):
        got = 0
        with trio.move_on_after(1.0):
            while True:
                await conn.message()
                got += 1
        counts.append(got)
    # nobody exceeds its RDY while it FINs nothing, and all 26 are out
    assert counts == rdys
    channel = nsqd_server.nsqd.topics["share"].channels["ch"]
    assert len(channel.in_flight) == 26
    assert channel.depth() == 0


async def test_rdy_zero_stops_delivery(nsqd_server):
    sub = await consumer(nsqd_server, "rdy0", "ch", rdy=0)
    pub = await RawConn.open(nsqd_server.tcp_address)
    await pub.pub("rdy0", b"a")
    with pytest.raises(trio.TooSlowError):
        await sub.message(timeout=0.3)
    await sub.send(commands.rdy(1))
    assert (await sub.message()).body == b"a"


async def test_client_timeout_redelivers_with_attempts(start_nsqd):
    server = await start_nsqd(http_address="", msg_timeout=0.3, queue_scan_interval=0.05)
    sub = await consumer(server, "timeout", "ch")
    pub = await RawConn.open(server.tcp_address)
    await pub.pub("timeout", b"slow")
    first = await sub.message()
    assert first.attempts == 1
    again = await sub.message()
    assert again.id == first.id and again.attempts == 2
    await sub.send(commands.fin(first.id))
    channel = server.nsqd.topics["timeout"].channels["ch"]
    assert channel.timeout_count == 1
    # FIN of a timed-out delivery is accepted for the redelivery


async def test_touch_extends_timeout(start_nsqd):
    server = await start_nsqd(http_address="", msg_timeout=0.5, queue_scan_interval=0.05)
    sub = await consumer(server, "touch", "ch")
    pub = await RawConn.open(server.tcp_address)
    await pub.pub("touch", b"t")
    msg = await sub.message()
    start = trio.current_time()
    for _ in range(4):
        await trio.sleep(0.25)
        await sub.send(commands.touch(msg.id))
    # 1 s after delivery the message is still ours: FIN works, no redelivery
    assert trio.current_time() - start >= 1.0
    await sub.send(commands.fin(msg.id))
    with pytest.raises(trio.TooSlowError):
        await sub.message(timeout=0.7)
    assert server.nsqd.topics["touch"].channels["ch"].timeout_count == 0


async def test_req_with_delay(nsqd_server):
    sub = await consumer(nsqd_server, "req", "ch")
    pub = await RawConn.open(nsqd_server.tcp_address)
    await pub.pub("req", b"again")
    msg = await sub.message()
    t0 = trio.current_time()
    await sub.send(commands.req(msg.id, 400))
    redelivered = await sub.message()
    assert trio.current_time() - t0 >= 0.4
    assert redelivered.id == msg.id and redelivered.attempts == 2


async def test_req_zero_redelivers_now(nsqd_server):
    sub = await consumer(nsqd_server, "req0", "ch")
    pub = await RawConn.open(nsqd_server.tcp_address)
    await pub.pub("req0", b"x")
    msg = await sub.message()
    await sub.send(commands.req(msg.id, 0))
    assert (await sub.message(timeout=2)).attempts == 2


async def test_dpub_not_delivered_early(nsqd_server):
    sub = await consumer(nsqd_server, "dpub", "ch", rdy=5)
    pub = await RawConn.open(nsqd_server.tcp_address)
    t0 = trio.current_time()
    await pub.send(commands.dpub("dpub", 500, b"later"))
    assert await pub.response() == b"OK"
    await pub.pub("dpub", b"now")
    assert (await sub.message()).body == b"now"
    msg = await sub.message()
    assert msg.body == b"later"
    assert trio.current_time() - t0 >= 0.5


async def test_dpub_out_of_range(nsqd_server):
    pub = await RawConn.open(nsqd_server.tcp_address)
    await pub.send(commands.dpub("dpub", 3600001, b"x"))
    assert await pub.error() == b"E_INVALID DPUB timeout 3600001 out of range 0-3600000"
    assert await pub.closed()


async def test_fin_unknown_id_is_not_fatal(nsqd_server):
    sub = await consumer(nsqd_server, "fin", "ch")
    await sub.send(commands.fin(b"0" * 16))
    assert await sub.error() == b"E_FIN_FAILED FIN 0000000000000000 failed ID not in flight"
    # still usable
    pub = await RawConn.open(nsqd_server.tcp_address)
    await pub.pub("fin", b"ok")
    assert (await sub.message()).body == b"ok"


async def test_fin_other_clients_message(nsqd_server):
    a = await consumer(nsqd_server, "own", "ch")
    b = await consumer(nsqd_server, "own", "ch", rdy=0)
    pub = await RawConn.open(nsqd_server.tcp_address)
    await pub.pub("own", b"mine")
    msg = await a.message()
    await b.send(commands.fin(msg.id))
    err = await b.error()
    assert err == b"E_FIN_FAILED FIN " + msg.id + b" failed client does not own message"


async def test_cls_close_wait(nsqd_server):
    sub = await consumer(nsqd_server, "cls", "ch")
    await sub.send(commands.cls())
    assert await sub.response() == b"CLOSE_WAIT"


async def test_ephemeral_channel_and_topic_vanish(nsqd_server):
    sub = await consumer(nsqd_server, "eph#ephemeral", "ch#ephemeral")
    topics = nsqd_server.nsqd.topics
    assert "ch#ephemeral" in topics["eph#ephemeral"].channels
    await sub.aclose()
    with trio.fail_after(5):
        while "eph#ephemeral" in topics:
            await trio.sleep(0.01)


async def test_ephemeral_channel_on_durable_topic(nsqd_server):
    sub = await consumer(nsqd_server, "dur", "tmp#ephemeral")
    topic = nsqd_server.nsqd.topics["dur"]
    await sub.aclose()
    with trio.fail_after(5):
        while "tmp#ephemeral" in topic.channels:
            await trio.sleep(0.01)
    assert "dur" in nsqd_server.nsqd.topics


async def test_paused_channel_holds_messages(nsqd_server):
    sub = await consumer(nsqd_server, "pause", "ch", rdy=10)
    channel = nsqd_server.nsqd.topics["pause"].channels["ch"]
    channel.pause()
    pub = await RawConn.open(nsqd_server.tcp_address)
    await pub.pub("pause", b"held")
    with pytest.raises(trio.TooSlowError):
        await sub.message(timeout=0.3)
    channel.unpause(trio.current_time())
    assert (await sub.message()).body == b"held"


async def test_paused_topic_holds_messages(nsqd_server):
    sub = await consumer(nsqd_server, "tpause", "ch", rdy=10)
    topic = nsqd_server.nsqd.topics["tpause"]
    topic.pause()
    pub = await RawConn.open(nsqd_server.tcp_address)
    await pub.pub("tpause", b"held")
    with pytest.raises(trio.TooSlowError):
        await sub.message(timeout=0.3)
    assert topic.depth() == 1
    topic.unpause()
    assert (await sub.message()).body == b"held"


async def test_disconnect_requeues_in_flight(nsqd_server):
    a = await consumer(nsqd_server, "dis", "ch")
    pub = await RawConn.open(nsqd_server.tcp_address)
    await pub.pub("dis", b"x")
    msg = await a.message()
    await a.aclose()
    b = await consumer(nsqd_server, "dis", "ch")
    again = await b.message()
    assert again.id == msg.id and again.attempts == 2


async def test_heartbeats_and_missed_heartbeat_closes(nsqd_server):
    conn = await RawConn.open(nsqd_server.tcp_address)
    await conn.identify(heartbeat_interval=1000)
    ftype, data = await conn.frame(timeout=3, skip_heartbeats=False)
    assert (ftype, data) == (FrameType.RESPONSE, b"_heartbeat_")
    # never answer: after two intervals without a read nsqd closes the connection
    t0 = trio.current_time()
    with trio.fail_after(6):
        while True:
            chunk = await conn.stream.receive_some(1024)
            if not chunk:
                break
    assert trio.current_time() - t0 >= 0.9


async def test_sub_with_heartbeats_disabled(nsqd_server):
    conn = await RawConn.open(nsqd_server.tcp_address)
    await conn.identify(heartbeat_interval=-1)
    await conn.send(commands.sub("hb", "ch"))
    assert await conn.error() == b"E_INVALID cannot SUB with heartbeats disabled"


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("data,error", [
    (b"FOO\n", b"E_INVALID invalid command FOO"),
    (b"\n", b"E_INVALID invalid command "),
    (b"PUB\n", b"E_INVALID PUB insufficient number of parameters"),
    (b"PUB bad!topic\n" + struct.pack(">l", 1) + b"x", b'E_BAD_TOPIC PUB topic name "bad!topic" is not valid'),
    (b"PUB t\n" + struct.pack(">l", 0), b"E_BAD_MESSAGE PUB invalid message body size 0"),
    (b"PUB t\n" + struct.pack(">l", 1048577), b"E_BAD_MESSAGE PUB message too big 1048577 > 1048576"),
    (b"MPUB t\n" + struct.pack(">l", 4) + struct.pack(">l", 0), b"E_BAD_BODY MPUB invalid message count 0"),
    (b"MPUB t\n" + struct.pack(">l", 5242881), b"E_BAD_BODY MPUB body too big 5242881 > 5242880"),
    (b"MPUB t\n" + struct.pack(">ll", 8, 1) + struct.pack(">l", -1),
     b"E_BAD_MESSAGE MPUB invalid message(0) body size -1"),
    (b"DPUB t x\n", b"E_INVALID DPUB could not parse timeout x"),
    (b"SUB t\n", b"E_INVALID SUB insufficient number of parameters"),
    (b"SUB t bad!ch\n", b'E_BAD_CHANNEL SUB channel name "bad!ch" is not valid'),
    (b"RDY 1\n", b"E_INVALID cannot RDY in current state"),
    (b"FIN 0000000000000000\n", b"E_INVALID cannot FIN in current state"),
    (b"REQ 0000000000000000 0\n", b"E_INVALID cannot REQ in current state"),
    (b"TOUCH 0000000000000000\n", b"E_INVALID cannot TOUCH in current state"),
    (b"CLS\n", b"E_INVALID cannot CLS in current state"),
    (b"AUTH\n" + struct.pack(">l", 3) + b"abc", b"E_AUTH_DISABLED AUTH disabled"),
    # deeper than the JSON parser recurses (RecursionError)
    (b"IDENTIFY\n" + struct.pack(">l", 200_000) + b"[" * 200_000,
     b"E_BAD_BODY IDENTIFY failed to decode JSON body"),
    (b"IDENTIFY\n" + struct.pack(">l", 50) + b'{"heartbeat_interval": Infinity}'.ljust(50),
     b"E_BAD_BODY IDENTIFY failed to decode JSON body"),
    (b"IDENTIFY\n" + struct.pack(">l", 50) + b'{"heartbeat_interval": 1e400}'.ljust(50),
     b"E_BAD_BODY IDENTIFY failed to decode JSON body"),
    (b"DPUB t " + b"9" * 5000 + b"\n", b"E_INVALID DPUB could not parse timeout " + b"9" * 5000),
    (b"DPUB t " + b"9" * 5000 + b"\n" + struct.pack(">l", 1) + b"x" + b"DPUB t " + b"9" * 5000
     + b"\n" + struct.pack(">l", 1) + b"x",
     b"E_INVALID DPUB could not parse timeout " + b"9" * 5000),
])
async def test_bad_input_is_fatal(nsqd_server, data, error):
    conn = await RawConn.open(nsqd_server.tcp_address)
    await conn.send(data)
    assert await conn.error() == error
    assert await conn.closed()
    # the daemon and other clients are fine
    other = await RawConn.open(nsqd_server.tcp_address)
    await other.pub("healthy", b"x")


async def test_unexpected_handler_failure_is_an_error_frame(nsqd_server, monkeypatch, caplog):
    def broken(nsqd, client, cmd):
        raise RuntimeError("a bug")

    table = nsqd_server.nsqd.protocol.commands
    monkeypatch.setitem(table, b"NOP", dataclasses.replace(table[b"NOP"], run=broken))
    conn = await RawConn.open(nsqd_server.tcp_address)
    await conn.send(commands.nop())
    assert await conn.error() == b"E_INVALID NOP failed"
    assert await conn.closed()
    assert any("NOP" in r.getMessage() and r.exc_info for r in caplog.records)
    other = await RawConn.open(nsqd_server.tcp_address)
    await other.pub("healthy", b"x")


@pytest.mark.parametrize("line,error", [
    (b"RDY 2501\n", b"E_INVALID RDY count 2501 out of range 0-2500"),
    (b"RDY x\n", b"E_INVALID RDY could not parse count x"),
    (b"RDY " + b"1" * 5000 + b"\n", b"E_INVALID RDY could not parse count " + b"1" * 5000),
    (b"REQ 0000000000000000 " + b"1" * 5000 + b"\n",
     b"E_INVALID REQ could not parse timeout " + b"1" * 5000),
    (b"FIN short\n", b"E_INVALID invalid message ID"),
    (b"REQ 0000000000000000 x\n", b"E_INVALID REQ could not parse timeout x"),
    (b"SUB t ch\n", b"E_INVALID cannot SUB in current state"),
    (b"IDENTIFY\n" + struct.pack(">l", 2) + b"{}", b"E_INVALID cannot IDENTIFY in current state"),
])
async def test_bad_input_after_sub(nsqd_server, line, error):
    conn = await consumer(nsqd_server, "after", "sub", rdy=0)
    await conn.send(line)
    assert await conn.error() == error
    assert await conn.closed()


async def test_bad_magic(nsqd_server):
    conn = await RawConn.open(nsqd_server.tcp_address, magic=b"  V9")
    assert await conn.error() == b"E_BAD_PROTOCOL"
    assert await conn.closed()


async def test_garbage_line_too_long_closes(nsqd_server):
    conn = await RawConn.open(nsqd_server.tcp_address)
    await conn.send(b"A" * 70000)
    assert await conn.closed()


async def test_pipelined_commands_answered_in_order(nsqd_server):
    conn = await RawConn.open(nsqd_server.tcp_address)
    data = commands.pub("pipe", b"1") + commands.nop() + commands.mpub("pipe", [b"2", b"3"]) \
        + commands.dpub("pipe", 10, b"4")
    await conn.send(data)
    assert [await conn.response() for _ in range(3)] == [b"OK", b"OK", b"OK"]
    assert nsqd_server.nsqd.topics["pipe"].message_count == 4


async def test_mpub_large_batch_split_across_reads(nsqd_server):
    sub = await consumer(nsqd_server, "big", "ch", rdy=2500)
    pub = await RawConn.open(nsqd_server.tcp_address)
    bodies = [b"%05d" % i + b"x" * 1000 for i in range(2000)]
    await pub.send(commands.mpub("big", bodies))
    assert await pub.response() == b"OK"
    got = [(await sub.message()).body for _ in range(2000)]
    assert got == bodies


async def test_delete_channel_disconnects_consumers(nsqd_server):
    sub = await consumer(nsqd_server, "del", "ch")
    nsqd_server.nsqd.topics["del"].delete_channel("ch")
    assert await sub.closed()


async def test_empty_channel_drops_queued(nsqd_server):
    pub = await RawConn.open(nsqd_server.tcp_address)
    sub = await consumer(nsqd_server, "empty", "ch", rdy=0)
    await pub.send(commands.mpub("empty", [b"a", b"b"]))
    assert await pub.response() == b"OK"
    channel = nsqd_server.nsqd.topics["empty"].channels["ch"]
    assert channel.depth() == 2
    channel.empty()
    assert channel.depth() == 0
    await sub.send(commands.rdy(5))
    with pytest.raises(trio.TooSlowError):
        await sub.message(timeout=0.3)


async def test_json_of_stats_objects_unchanged_by_bad_clients(nsqd_server):
    """A fatal error on one connection leaves other subscribers' in-flight state alone."""
    good = await consumer(nsqd_server, "iso", "ch", rdy=1)
    pub = await RawConn.open(nsqd_server.tcp_address)
    await pub.pub("iso", b"x")
    msg = await good.message()
    bad = await RawConn.open(nsqd_server.tcp_address)
    await bad.send(b"BOGUS\n")
    await bad.closed()
    await good.send(commands.fin(msg.id))
    await pub.pub("iso", b"y")
    assert (await good.message()).body == b"y"
    assert json.dumps(nsqd_server.nsqd.metadata())


# --------------------------------------------------------------------------- runs
# A pipelining client's PUBs, DPUBs and FINs arrive many to a read; nsqd takes each run
# at once (nsqd/protocol_pub.py). Answers must be exactly those of one-by-one handling.

@pytest.fixture
def run_calls(monkeypatch):
    """Count the runs nsqd handles as one (patched before the server starts)."""
    from nsqd.protocol_v2 import ProtocolV2

    calls: list[tuple[bytes, int]] = []
    publish_run, fin_run = ProtocolV2.publish_run, ProtocolV2.fin_run

    def counting(self, client, cmds, start):
        taken, err = publish_run(self, client, cmds, start)
        calls.append((cmds[start].name, taken))
        return taken, err

    def counting_fins(self, client, msg_ids):
        taken = fin_run(self, client, msg_ids)
        calls.append((b"FIN", len(msg_ids) if taken else 0))
        return taken

    monkeypatch.setattr(ProtocolV2, "publish_run", counting)
    monkeypatch.setattr(ProtocolV2, "fin_run", counting_fins)
    return calls


async def test_pub_run_stops_before_a_bad_command(start_nsqd, run_calls):
    server = await start_nsqd()
    sub = await consumer(server, "runs", "ch", rdy=10)
    pub = await RawConn.open(server.tcp_address)
    good = b"".join(commands.pub("runs", b"m%d" % i) for i in range(3))
    await pub.send(good + b"PUB runs\n" + struct.pack(">l", 0) + commands.pub("runs", b"never"))
    assert [await pub.response() for _ in range(3)] == [b"OK"] * 3
    assert await pub.error() == b"E_BAD_MESSAGE PUB invalid message body size 0"
    assert await pub.closed()
    assert sorted([(await sub.message()).body for _ in range(3)]) == [b"m0", b"m1", b"m2"]
    assert (b"PUB", 3) in run_calls
    assert server.nsqd.topics["runs"].message_count == 3


async def test_dpub_run_keeps_each_delay_and_topic(start_nsqd, run_calls):
    server = await start_nsqd()
    fast = await consumer(server, "later", "ch", rdy=10)
    other = await consumer(server, "elsewhere", "ch", rdy=10)
    pub = await RawConn.open(server.tcp_address)
    t0 = trio.current_time()
    await pub.send(commands.dpub("later", 300, b"a") + commands.dpub("later", 300, b"b")
                   + commands.dpub("later", 100, b"c") + commands.dpub("elsewhere", 100, b"d")
                   + commands.dpub("later", 3600001, b"too-far"))
    assert [await pub.response() for _ in range(4)] == [b"OK"] * 4
    assert await pub.error() == b"E_INVALID DPUB timeout 3600001 out of range 0-3600000"
    assert (await other.message()).body == b"d"
    first = await fast.message()
    assert first.body == b"c" and trio.current_time() - t0 >= 0.1
    assert sorted([(await fast.message()).body for _ in range(2)]) == [b"a", b"b"]
    assert trio.current_time() - t0 >= 0.3
    assert (b"DPUB", 3) in run_calls


async def test_fin_run_reports_a_bad_id_and_goes_on(start_nsqd, run_calls):
    server = await start_nsqd()
    sub = await consumer(server, "fins", "ch", rdy=3)
    pub = await RawConn.open(server.tcp_address)
    await pub.send(commands.mpub("fins", [b"1", b"2", b"3"]))
    assert await pub.response() == b"OK"
    ids = [(await sub.message()).id for _ in range(3)]
    await sub.send(commands.fin(ids[0]) + commands.fin(b"f" * 16) + commands.fin(ids[1])
                   + commands.fin(ids[2]) + b"FIN short\n")
    assert await sub.error() == b"E_FIN_FAILED FIN ffffffffffffffff failed ID not in flight"
    assert await sub.error() == b"E_INVALID invalid message ID"
    assert await sub.closed()
    channel = server.nsqd.topics["fins"].channels["ch"]
    assert not channel.in_flight
    assert (b"FIN", 4) in run_calls
