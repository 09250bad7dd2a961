"""Command constructors: exact bytes, as NSQ's TCP protocol spec documents them.

V2: ``PUB <topic>\\n[4-byte size][body]``, ``MPUB <topic>\\n[4-byte body size]
[4-byte count]([4-byte size][body])*``, ``DPUB <topic> <ms>\\n[size][body]``,
``REQ <id> <ms>\\n``, ``RDY <n>\\n`` ...; V1 (nsqlookupd): ``REGISTER``, ``PING`` ...
"""

from __future__ import annotations

import json
import struct

import pytest

from client.protocol import (
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    commands,
)

MSG_ID = b"0a1b2c3d4e5f6789"


def size(n: int) -> bytes:
    return struct.pack(">l", n)


# ---------------------------------------------------------------- exact bytes


def test_identify() -> None:
    data = {"client_id": "c1", "feature_negotiation": True, "heartbeat_interval": 30000}
    body = b'{"client_id":"c1","feature_negotiation":true,"heartbeat_interval":30000}'
    assert commands.identify(data) == b"IDENTIFY\n" + size(len(body)) + body
    assert json.loads(commands.identify(data)[13:]) == data


def test_identify_empty_and_non_ascii() -> None:
    assert commands.identify({}) == b"IDENTIFY\n" + size(2) + b"{}"
    wire = commands.identify({"hostname": "hôte"})
    (n,) = struct.unpack_from(">l", wire, 9)
    assert n == len(wire) - 13
    assert json.loads(wire[13:]) == {"hostname": "hôte"}


def test_auth() -> None:
    assert commands.auth(b"s3cret") == b"AUTH\n" + size(6) + b"s3cret"
    assert commands.auth("s3cret") == commands.auth(b"s3cret")
    assert commands.auth(b"\x00\n") == b"AUTH\n\x00\x00\x00\x02\x00\n"


def test_sub() -> None:
    assert commands.sub("events", "archive") == b"SUB events archive\n"
    assert commands.sub("t#ephemeral", "c#ephemeral") == b"SUB t#ephemeral c#ephemeral\n"


@pytest.mark.parametrize(("count", "wire"), [(0, b"RDY 0\n"), (1, b"RDY 1\n"), (2500, b"RDY 2500\n")])
def test_rdy(count: int, wire: bytes) -> None:
    assert commands.rdy(count) == wire


def test_fin_touch() -> None:
    assert commands.fin(MSG_ID) == b"FIN 0a1b2c3d4e5f6789\n"
    assert commands.touch(MSG_ID) == b"TOUCH 0a1b2c3d4e5f6789\n"


def test_req() -> None:
    assert commands.req(MSG_ID, 5000) == b"REQ 0a1b2c3d4e5f6789 5000\n"
    assert commands.req(MSG_ID) == b"REQ 0a1b2c3d4e5f6789 0\n"
    assert commands.req(MSG_ID, 0) == b"REQ 0a1b2c3d4e5f6789 0\n"
    assert commands.req(MSG_ID, 1500.9) == b"REQ 0a1b2c3d4e5f6789 1500\n"


def test_req_negative_delay_is_clamped_to_zero() -> None:
    # nsqd refuses "-1" (not a base-10 number): the constructor sends 0 instead.
    assert commands.req(MSG_ID, -1) == b"REQ 0a1b2c3d4e5f6789 0\n"


def test_cls_nop_ping() -> None:
    assert commands.cls() == b"CLS\n"
    assert commands.nop() == b"NOP\n"
    assert commands.ping() == b"PING\n"


def test_pub() -> None:
    assert commands.pub("events", b"hello") == b"PUB events\n\x00\x00\x00\x05hello"
    body = b"\n\x00" * 1000
    assert commands.pub("t", body) == b"PUB t\n" + size(2000) + body
    assert commands.pub("t", b"") == b"PUB t\n\x00\x00\x00\x00"


def test_mpub() -> None:
    wire = commands.mpub("events", [b"a", b"bc"])
    assert wire == (
        b"MPUB events\n"
        b"\x00\x00\x00\x0f"  # body size: 4 (count) + 4+1 + 4+2
        b"\x00\x00\x00\x02"  # message count
        b"\x00\x00\x00\x01a"
        b"\x00\x00\x00\x02bc"
    )


def test_mpub_takes_any_iterable() -> None:
    bodies = [b"m%d" % i for i in range(10)]
    assert commands.mpub("t", (b for b in bodies)) == commands.mpub("t", bodies)
    assert commands.mpub("t", tuple(bodies)) == commands.mpub("t", bodies)


def test_mpub_needs_a_message() -> None:
    with pytest.raises(LocalProtocolError, match="at least one"):
        commands.mpub("t", [])
    with pytest.raises(LocalProtocolError):
        commands.mpub("t", iter(()))


def test_mpub_body_is_mpub_without_line_and_size() -> None:
    for bodies in ([b"a", b"bc"], [b"x" * 100] * 200, [b"", b"\n\x00" * 70000], (b"t",)):
        wire = commands.mpub("topic", bodies)
        body = commands.mpub_body(bodies)
        assert wire == b"MPUB topic\n" + size(len(body)) + body
    with pytest.raises(LocalProtocolError, match="at least one"):
        commands.mpub_body([])


def test_dpub() -> None:
    assert commands.dpub("events", 3000, b"later") == b"DPUB events 3000\n\x00\x00\x00\x05later"
    assert commands.dpub("t", 0, b"x") == b"DPUB t 0\n\x00\x00\x00\x01x"


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (commands.register("t"), b"REGISTER t\n"),
        (commands.register("t", "c"), b"REGISTER t c\n"),
        (commands.register("t", None), b"REGISTER t\n"),
        (commands.register("t", ""), b"REGISTER t\n"),
        (commands.unregister("t"), b"UNREGISTER t\n"),
        (commands.unregister("t", "c#ephemeral"), b"UNREGISTER t c#ephemeral\n"),
    ],
)
def test_register_unregister(wire: bytes, expected: bytes) -> None:
    assert wire == expected


def test_every_constructor_is_exported() -> None:
    assert sorted(commands.__all__) == [
        "auth", "cls", "dpub", "fin", "identify", "mpub", "mpub_body", "nop", "ping", "pub", "rdy",
        "register", "req", "sub", "touch", "unregister",
    ]  # fmt: skip


# ---------------------------------------------------------------- refusals

BAD_NAMES = ["", "a b", "a/b", "x" * 65, "é", "t\n", "#ephemeral", "a#ephemeral#ephemeral", "a:b"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_topic(name: str) -> None:
    for make in (
        lambda: commands.pub(name, b"x"),
        lambda: commands.mpub(name, [b"x"]),
        lambda: commands.dpub(name, 1, b"x"),
        lambda: commands.sub(name, "c"),
        lambda: commands.register(name),
        lambda: commands.unregister(name, "c"),
    ):
        with pytest.raises(LocalProtocolError, match="invalid topic name"):
            make()


@pytest.mark.parametrize("name", [n for n in BAD_NAMES if n])  # "" means "no channel" for REGISTER
def test_invalid_channel(name: str) -> None:
    for make in (
        lambda: commands.sub("t", name),
        lambda: commands.register("t", name),
        lambda: commands.unregister("t", name),
    ):
        with pytest.raises(LocalProtocolError, match="invalid channel name"):
            make()
    with pytest.raises(LocalProtocolError):
        commands.sub("t", "")


@pytest.mark.parametrize("bad_id", [b"", b"0a1b2c3d4e5f678", b"0a1b2c3d4e5f67890", b"x" * 32])
def test_bad_message_id_length(bad_id: bytes) -> None:
    for make in (
        lambda: commands.fin(bad_id),
        lambda: commands.req(bad_id, 10),
        lambda: commands.touch(bad_id),
    ):
        with pytest.raises(LocalProtocolError, match="16 bytes"):
            make()


@pytest.mark.parametrize("count", [-1, -2500])
def test_negative_rdy(count: int) -> None:
    with pytest.raises(LocalProtocolError, match="RDY"):
        commands.rdy(count)


@pytest.mark.parametrize("delay", [-1, -60_000])
def test_negative_dpub_delay(delay: int) -> None:
    with pytest.raises(LocalProtocolError, match="DPUB"):
        commands.dpub("t", delay, b"x")


# ---------------------------------------------------------------- error classes


def test_protocol_error_is_abstract() -> None:
    with pytest.raises(TypeError):
        ProtocolError("nope")
    for cls in (LocalProtocolError, RemoteProtocolError):
        err = cls("boom")
        assert isinstance(err, ProtocolError)
        assert isinstance(err, Exception)
        assert str(err) == "boom"
    assert not issubclass(LocalProtocolError, RemoteProtocolError)
    assert not issubclass(RemoteProtocolError, LocalProtocolError)
