"""The V1 session as pure state: bytes in, registrations and response bytes out."""

from __future__ import annotations

import json
import struct

import pytest

from client.protocol import MAGIC_V1, ResponseReader, commands
from nsqlookupd.lookup_protocol_v1 import LookupProtocolV1, ServerInfo, SessionState
from nsqlookupd.registration_db import Registration, RegistrationDB

INFO = ServerInfo(tcp_port=4160, http_port=4161, broadcast_address="lookupd.local",
                  hostname="lookupd-host", version="1.3.0")
NODE = {"broadcast_address": "nsqd.local", "hostname": "nsqd-host", "tcp_port": 4150,
        "http_port": 4151, "version": "1.3.0"}


def responses(data: bytes) -> list[bytes]:
    reader = ResponseReader()
    reader.feed(data)
    out = reader.responses()
    assert reader.buffered == 0
    return out


def session(db: RegistrationDB | None = None, addr: str = "10.0.0.1:5000") -> LookupProtocolV1:
    return LookupProtocolV1(db if db is not None else RegistrationDB(), INFO, addr)


def identified(db: RegistrationDB, addr: str = "10.0.0.1:5000", now: float = 0.0) -> LookupProtocolV1:
    s = session(db, addr)
    (resp,) = responses(s.receive_data(MAGIC_V1 + commands.identify(NODE), now))
    assert resp.startswith(b"{")
    return s


def test_identify_response_is_go_json_and_registers_client() -> None:
    db = RegistrationDB()
    s = session(db)
    (resp,) = responses(s.receive_data(MAGIC_V1 + commands.identify(NODE), 7.0))
    assert resp == (b'{"broadcast_address":"lookupd.local","hostname":"lookupd-host",'
                    b'"http_port":4161,"tcp_port":4160,"version":"1.3.0"}')
    (client,) = db.find_producers("client", "", "")
    pi = client.peer_info
    assert (pi.id, pi.remote_address, pi.broadcast_address, pi.hostname) == (
        "10.0.0.1:5000", "10.0.0.1:5000", "nsqd.local", "nsqd-host")
    assert (pi.tcp_port, pi.http_port, pi.version, pi.last_update) == (4150, 4151, "1.3.0", 7.0)


def test_remote_address_in_body_is_overridden() -> None:
    db = RegistrationDB()
    s = session(db)
    s.receive_data(MAGIC_V1 + commands.identify({**NODE, "remote_address": "spoof:1"}), 0)
    assert db.find_producers("client", "", "")[0].peer_info.remote_address == "10.0.0.1:5000"


def test_identify_fields_match_case_insensitively_like_go() -> None:
    db = RegistrationDB()
    s = session(db)
    body = {k.upper(): v for k, v in NODE.items()}
    (resp,) = responses(s.receive_data(MAGIC_V1 + commands.identify(body), 0))
    assert resp.startswith(b"{")
    assert db.find_producers("client", "", "")[0].peer_info.tcp_port == 4150


def test_magic_split_byte_by_byte_then_commands() -> None:
    db = RegistrationDB()
    s = session(db)
    data = MAGIC_V1 + commands.identify(NODE) + commands.register("t", "c") + commands.ping()
    out = b"".join(s.receive_data(data[i : i + 1], 0) for i in range(len(data)))
    got = responses(out)
    assert got[1:] == [b"OK", b"OK"]
    assert [r.key for r in db.find_registrations("topic", "*", "")] == ["t"]
    assert [r.subkey for r in db.find_registrations("channel", "t", "*")] == ["c"]


def test_bad_magic_closes_with_e_bad_protocol() -> None:
    s = session()
    assert s.receive_data(b"  V", 0) == b""
    assert s.state is SessionState.MAGIC
    assert responses(s.receive_data(b"2PING\n", 0)) == [b"E_BAD_PROTOCOL"]
    assert s.closed
    assert s.receive_data(b"PING\n", 0) == b""


def test_ping_before_identify_is_ok() -> None:
    s = session()
    assert responses(s.receive_data(MAGIC_V1 + b"PING\nPING\r\n", 0)) == [b"OK", b"OK"]
    assert not s.closed


def test_ping_updates_last_update() -> None:
    db = RegistrationDB()
    s = identified(db, now=1.0)
    assert responses(s.receive_data(b"PING\n", 50.0)) == [b"OK"]
    assert db.find_producers("client", "", "")[0].peer_info.last_update == 50.0


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"FOO\n", b"E_INVALID invalid command FOO"),
        (b"\n", b"E_INVALID invalid command "),
        (b"REGISTER t\n", b"E_INVALID client must IDENTIFY"),
        (b"UNREGISTER t\n", b"E_INVALID client must IDENTIFY"),
        (b"IDENTIFY\n" + struct.pack(">l", 6) + b"{nope}", b"E_BAD_BODY IDENTIFY failed to decode JSON body"),
        (b"IDENTIFY\n" + struct.pack(">l", 2) + b"[]", b"E_BAD_BODY IDENTIFY failed to decode JSON body"),
        (b"IDENTIFY\n" + struct.pack(">l", 0), b"E_BAD_BODY IDENTIFY failed to decode JSON body"),
        (b"IDENTIFY\n" + struct.pack(">l", -5), b"E_BAD_BODY IDENTIFY failed to read body"),
        (b"IDENTIFY\n" + struct.pack(">l", 10**8), b"E_BAD_BODY IDENTIFY failed to read body"),
        (b"IDENTIFY\n" + struct.pack(">l", 60000) + b"[" * 60000,
         b"E_BAD_BODY IDENTIFY failed to decode JSON body"),
        (b"IDENTIFY\n" + struct.pack(">l", 3) + b'"\xff"', b"E_BAD_BODY IDENTIFY failed to decode JSON body"),
        (commands.identify({**NODE, "tcp_port": "4150"}), b"E_BAD_BODY IDENTIFY failed to decode JSON body"),
        (commands.identify({**NODE, "tcp_port": 4150.5}), b"E_BAD_BODY IDENTIFY failed to decode JSON body"),
        (commands.identify({**NODE, "version": 1}), b"E_BAD_BODY IDENTIFY failed to decode JSON body"),
        (commands.identify({**NODE, "tcp_port": 0}), b"E_BAD_BODY IDENTIFY missing fields"),
        (commands.identify({k: v for k, v in NODE.items() if k != "version"}),
         b"E_BAD_BODY IDENTIFY missing fields"),
        (commands.identify({**NODE, "broadcast_address": None}), b"E_BAD_BODY IDENTIFY missing fields"),
    ],
)
def test_fatal_errors_before_identify(data: bytes, error: bytes) -> None:
    db = RegistrationDB()
    s = session(db)
    out = s.receive_data(MAGIC_V1 + data + b"PING\n", 0)
    assert responses(out) == [error]
    assert s.closed
    assert db.find_producers("client", "", "") == []


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"REGISTER\n", b"E_INVALID REGISTER insufficient number of params"),
        (b"REGISTER   \n", b"E_INVALID REGISTER insufficient number of params"),
        (b"UNREGISTER\n", b"E_INVALID UNREGISTER insufficient number of params"),
        (b"REGISTER bad!topic\n", b"E_BAD_TOPIC REGISTER topic name 'bad!topic' is not valid"),
        (b"REGISTER t bad/chan\n", b"E_BAD_CHANNEL REGISTER channel name 'bad/chan' is not valid"),
        (b"UNREGISTER " + b"x" * 65 + b"\n",
         b"E_BAD_TOPIC UNREGISTER topic name '" + b"x" * 65 + b"' is not valid"),
        (b"REGISTER t\xff\n", b"E_BAD_TOPIC REGISTER topic name 't\xff' is not valid"),
        (commands.identify(NODE), b"E_INVALID cannot IDENTIFY again"),
    ],
)
def test_fatal_errors_after_identify(line: bytes, error: bytes) -> None:
    db = RegistrationDB()
    s = identified(db)
    assert responses(s.receive_data(line, 0)) == [error]
    assert s.closed


def test_ok_responses_precede_the_error_in_one_batch() -> None:
    s = identified(RegistrationDB())
    out = s.receive_data(b"PING\nREGISTER t\nBOGUS\nPING\n", 0)
    assert responses(out) == [b"OK", b"OK", b"E_INVALID invalid command BOGUS"]


def test_trailing_space_is_trimmed_like_go() -> None:
    db = RegistrationDB()
    s = identified(db)
    assert responses(s.receive_data(b"REGISTER t c \n", 0)) == [b"OK"]
    assert [r.subkey for r in db.find_registrations("channel", "t", "*")] == ["c"]


def test_register_channel_registers_topic_too_and_is_idempotent() -> None:
    db = RegistrationDB()
    s = identified(db)
    out = s.receive_data(commands.register("t", "c") + commands.register("t", "c"), 0)
    assert responses(out) == [b"OK", b"OK"]
    assert len(db.find_producers("topic", "t", "")) == 1
    assert len(db.find_producers("channel", "t", "c")) == 1


def test_unregister_channel_keeps_topic_and_empty_registration() -> None:
    db = RegistrationDB()
    s = identified(db)
    s.receive_data(commands.register("t", "c") + commands.unregister("t", "c"), 0)
    assert db.find_producers("channel", "t", "c") == []
    assert db.find_registrations("channel", "t", "c") == [Registration("channel", "t", "c")]
    assert len(db.find_producers("topic", "t", "")) == 1


def test_unregister_ephemeral_channel_removes_it_when_last_producer_leaves() -> None:
    db = RegistrationDB()
    a = identified(db, "10.0.0.1:1")
    b = identified(db, "10.0.0.2:1")
    for s in (a, b):
        s.receive_data(commands.register("t", "c#ephemeral"), 0)
    a.receive_data(commands.unregister("t", "c#ephemeral"), 0)
    assert db.find_registrations("channel", "t", "c#ephemeral") != []
    b.receive_data(commands.unregister("t", "c#ephemeral"), 0)
    assert db.find_registrations("channel", "t", "c#ephemeral") == []


def test_unregister_ephemeral_topic_removes_it() -> None:
    db = RegistrationDB()
    s = identified(db)
    s.receive_data(commands.register("t#ephemeral") + commands.register("u"), 0)
    s.receive_data(commands.unregister("t#ephemeral") + commands.unregister("u"), 0)
    assert [r.key for r in db.find_registrations("topic", "*", "")] == ["u"]


def test_unregister_topic_drops_this_nodes_channels(caplog: pytest.LogCaptureFixture) -> None:
    db = RegistrationDB()
    a = identified(db, "10.0.0.1:1")
    b = identified(db, "10.0.0.2:1")
    a.receive_data(commands.register("t", "c1") + commands.register("t", "c2"), 0)
    b.receive_data(commands.register("t", "c1"), 0)
    assert responses(a.receive_data(commands.unregister("t"), 0)) == [b"OK"]
    assert [p.peer_info.id for p in db.find_producers("channel", "t", "c1")] == ["10.0.0.2:1"]
    assert db.find_producers("channel", "t", "c2") == []
    assert [p.peer_info.id for p in db.find_producers("topic", "t", "")] == ["10.0.0.2:1"]
    assert "unexpected UNREGISTER" in caplog.text


def test_connection_lost_removes_every_registration_of_that_node() -> None:
    db = RegistrationDB()
    a = identified(db, "10.0.0.1:1")
    b = identified(db, "10.0.0.2:1")
    a.receive_data(commands.register("t", "c") + commands.register("u"), 0)
    b.receive_data(commands.register("t"), 0)
    removed = a.connection_lost()
    assert set(removed) == {Registration("client", "", ""), Registration("topic", "t", ""),
                            Registration("channel", "t", "c"), Registration("topic", "u", "")}
    assert [p.peer_info.id for p in db.find_producers("client", "", "")] == ["10.0.0.2:1"]
    assert [p.peer_info.id for p in db.find_producers("topic", "*", "")] == ["10.0.0.2:1"]
    assert db.lookup_registrations("10.0.0.1:1") == []
    # the (now empty) registrations stay, as in NSQ
    assert [r.key for r in db.find_registrations("topic", "*", "")] == ["t", "u"]


def test_connection_lost_before_identify_is_harmless() -> None:
    s = session()
    assert s.connection_lost() == []
    assert s.closed


def test_overlong_line_closes_without_response() -> None:
    s = identified(RegistrationDB())
    assert s.receive_data(b"A" * (17 * 1024), 0) == b""
    assert s.closed


def test_identify_response_escapes_html_like_go() -> None:
    info = ServerInfo(1, 2, "a<b>&c", "h\u00e9", "1.3.0")
    s = LookupProtocolV1(RegistrationDB(), info, "x:1")
    (resp,) = responses(s.receive_data(MAGIC_V1 + commands.identify(NODE), 0))
    assert b'"broadcast_address":"a\\u003cb\\u003e\\u0026c"' in resp
    assert '"hostname":"h\u00e9"'.encode() in resp
    assert json.loads(resp)["broadcast_address"] == "a<b>&c"
