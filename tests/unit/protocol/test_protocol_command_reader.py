"""CommandReader (the server side of the command stream) and parse_mpub_body."""

from __future__ import annotations

import struct
import time

import pytest

from client.protocol import (
    FIN_RUN,
    V1_BODY_COMMANDS,
    V2_BODY_COMMANDS,
    Command,
    CommandReader,
    MPUBError,
    RemoteProtocolError,
    commands,
    parse_mpub_body,
)
from client.protocol.reader import DEFAULT_MAX_LINE, FIN_RUN_MAX

MSG_ID = b"0a1b2c3d4e5f6789"
MB = 1024 * 1024


def size(n: int) -> bytes:
    return struct.pack(">l", n)


def v1_reader() -> CommandReader:
    return CommandReader(V1_BODY_COMMANDS)


def get(reader: CommandReader) -> list[Command]:
    return reader.commands()


def mpub_payload(bodies: list[bytes]) -> bytes:
    return size(len(bodies)) + b"".join(size(len(b)) + b for b in bodies)


# Every V2 command, built by the constructors and parsed back.
V2_ROUND_TRIPS = [
    pytest.param(
        commands.identify({"client_id": "c"}),
        Command(b"IDENTIFY", [], b'{"client_id":"c"}'),
        id="IDENTIFY",
    ),
    pytest.param(commands.auth(b"secret"), Command(b"AUTH", [], b"secret"), id="AUTH"),
    pytest.param(commands.sub("t", "c"), Command(b"SUB", [b"t", b"c"]), id="SUB"),
    pytest.param(commands.rdy(0), Command(b"RDY", [b"0"]), id="RDY0"),
    pytest.param(commands.rdy(2500), Command(b"RDY", [b"2500"]), id="RDY"),
    pytest.param(commands.fin(MSG_ID), Command(b"FIN", [MSG_ID]), id="FIN"),
    pytest.param(commands.req(MSG_ID, 1000), Command(b"REQ", [MSG_ID, b"1000"]), id="REQ"),
    pytest.param(commands.touch(MSG_ID), Command(b"TOUCH", [MSG_ID]), id="TOUCH"),
    pytest.param(commands.cls(), Command(b"CLS", []), id="CLS"),
    pytest.param(commands.nop(), Command(b"NOP", []), id="NOP"),
    pytest.param(commands.pub("t", b"hi\n"), Command(b"PUB", [b"t"], b"hi\n"), id="PUB"),
    pytest.param(
        commands.mpub("t", [b"a", b"bc"]),
        Command(b"MPUB", [b"t"], mpub_payload([b"a", b"bc"])),
        id="MPUB",
    ),
    pytest.param(
        commands.dpub("t", 250, b"\x00"), Command(b"DPUB", [b"t", b"250"], b"\x00"), id="DPUB"
    ),
]

V1_ROUND_TRIPS = [
    pytest.param(
        commands.identify({"tcp_port": 4150}),
        Command(b"IDENTIFY", [], b'{"tcp_port":4150}'),
        id="IDENTIFY",
    ),
    pytest.param(commands.register("t"), Command(b"REGISTER", [b"t"]), id="REGISTER-topic"),
    pytest.param(commands.register("t", "c"), Command(b"REGISTER", [b"t", b"c"]), id="REGISTER"),
    pytest.param(commands.unregister("t", "c"), Command(b"UNREGISTER", [b"t", b"c"]), id="UNREG"),
    pytest.param(commands.ping(), Command(b"PING", []), id="PING"),
]


def test_body_command_sets() -> None:
    assert {b"IDENTIFY", b"PUB", b"MPUB", b"DPUB", b"AUTH"} == V2_BODY_COMMANDS
    assert {b"IDENTIFY"} == V1_BODY_COMMANDS
    assert DEFAULT_MAX_LINE == 16 * 1024


def test_command_defaults() -> None:
    cmd = Command(b"NOP", [])
    assert cmd.body is None
    assert cmd.bad_body_size is None


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize(("wire", "command"), V2_ROUND_TRIPS)
def test_v2_round_trip(wire: bytes, command: Command, three_ways, every_split) -> None:
    three_ways(CommandReader, get, wire, [command])
    every_split(CommandReader, get, wire, [command])


@pytest.mark.parametrize(("wire", "command"), V1_ROUND_TRIPS)
def test_v1_round_trip(wire: bytes, command: Command, three_ways, every_split) -> None:
    three_ways(v1_reader, get, wire, [command])
    every_split(v1_reader, get, wire, [command])


def test_v2_every_command_in_one_feed(three_ways, every_split) -> None:
    wire = b"".join(p.values[0] for p in V2_ROUND_TRIPS)
    expected = [p.values[1] for p in V2_ROUND_TRIPS]
    three_ways(CommandReader, get, wire, expected)
    every_split(CommandReader, get, wire, expected)


def test_v1_every_command_in_one_feed(three_ways, every_split) -> None:
    wire = b"".join(p.values[0] for p in V1_ROUND_TRIPS)
    expected = [p.values[1] for p in V1_ROUND_TRIPS]
    three_ways(v1_reader, get, wire, expected)
    every_split(v1_reader, get, wire, expected)


def test_mpub_body_parses_back() -> None:
    bodies = [b"one", b"\x00two\n", b"3" * 1000]
    reader = CommandReader()
    reader.feed(commands.mpub("t", bodies))
    (cmd,) = reader.commands()
    assert cmd.body is not None
    assert parse_mpub_body(cmd.body, max_msg_size=MB, max_body_size=5 * MB) == bodies


def test_v1_only_identify_has_a_body() -> None:
    # On nsqlookupd's protocol "PUB x\n" is an ordinary (unknown) line: no body follows.
    reader = v1_reader()
    reader.feed(b"PUB x\nPING\nAUTH\nDPUB t 1\n")
    assert reader.commands() == [
        Command(b"PUB", [b"x"]),
        Command(b"PING", []),
        Command(b"AUTH", []),
        Command(b"DPUB", [b"t", b"1"]),
    ]
    assert reader.buffered == 0


def test_custom_body_commands() -> None:
    reader = CommandReader(frozenset({b"BLOB"}))
    reader.feed(b"PUB t\nBLOB\n" + size(2) + b"ab")
    assert reader.commands() == [Command(b"PUB", [b"t"]), Command(b"BLOB", [], b"ab")]


# ---------------------------------------------------------------- line details


def test_crlf_endings(three_ways) -> None:
    wire = b"RDY 1\r\nNOP\r\nPUB t\r\n" + size(3) + b"a\r\n" + b"SUB t c\r\n"
    expected = [
        Command(b"RDY", [b"1"]),
        Command(b"NOP", []),
        Command(b"PUB", [b"t"], b"a\r\n"),
        Command(b"SUB", [b"t", b"c"]),
    ]
    three_ways(CommandReader, get, wire, expected)


def test_only_a_final_cr_is_stripped() -> None:
    reader = CommandReader()
    reader.feed(b"RDY 1\r\r\n\r\n\nNOP \n")
    assert reader.commands() == [
        Command(b"RDY", [b"1\r"]),
        Command(b"", []),
        Command(b"", []),
        Command(b"NOP", [b""]),
    ]


def slow_path(data: bytes) -> list[Command]:
    """Parse ``data`` one byte at a time, so no fast path ever sees a whole line."""
    reader = CommandReader(V2_BODY_COMMANDS)
    out: list[Command] = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        out += reader.commands()
    return out


@pytest.mark.parametrize("data", [
    b"FIN 0123456789abcdef\n" * 3,
    b"FIN abcd\nNOP\nNOP\nNOP\n",         # a newline where the 16-byte ID would be
    b"FIN 0123456789abcde\r\nNOP\n",      # 15 bytes and CRLF
    b"FIN 0123456 89abcdef\n",             # two words
    b"FIN 0123456789abcdef0\nNOP\n",       # 17 bytes
    b"FIN\n",
], ids=["three", "newline-inside", "crlf", "space", "long", "bare"])
def test_fin_fast_path_parses_like_the_general_path(data: bytes) -> None:
    reader = CommandReader(V2_BODY_COMMANDS)
    reader.feed(data)
    assert reader.commands() == slow_path(data)


def expand_fin_runs(cmds: list[Command]) -> list[Command]:
    """A FIN_RUN as the FIN commands it stands for."""
    out: list[Command] = []
    for cmd in cmds:
        if cmd.name == FIN_RUN:
            out.extend(Command(b"FIN", [msg_id]) for msg_id in cmd.params)
        else:
            out.append(cmd)
    return out


def fin_ids(n: int, start: int = 0) -> list[bytes]:
    return [b"%016x" % i for i in range(start, start + n)]


def test_fin_runs_take_consecutive_fins_as_one_command() -> None:
    reader = CommandReader(fin_runs=True)
    ids = fin_ids(5)
    data = b"".join(commands.fin(i) for i in ids[:3]) + commands.rdy(7) \
        + b"".join(commands.fin(i) for i in ids[3:]) + b"FIN 0123"
    reader.feed(data)
    assert reader.commands() == [Command(FIN_RUN, ids[:3]), Command(b"RDY", [b"7"]),
                                 Command(FIN_RUN, ids[3:])]
    assert reader.buffered == 8  # the incomplete FIN waits for the rest of its line
    reader.feed(b"456789abcdef\n")
    assert reader.commands() == [Command(FIN_RUN, [b"0123456789abcdef"])]


def test_fins_between_other_commands_are_short_runs() -> None:
    ids = fin_ids(40)
    for every, sizes in ((1, [1] * 40), (2, [2] * 20), (3, [3] * 13 + [1])):
        data = b"".join(commands.fin(i) + (commands.nop() if n % every == every - 1 else b"")
                        for n, i in enumerate(ids))
        reader = CommandReader(fin_runs=True)
        reader.feed(data)
        got = reader.commands()
        assert expand_fin_runs(got) == slow_path(data)
        assert [len(c.params) for c in got if c.name == FIN_RUN] == sizes


def test_a_fin_run_is_at_most_fin_run_max_ids() -> None:
    reader = CommandReader(fin_runs=True)
    ids = fin_ids(FIN_RUN_MAX + 3)
    reader.feed(b"".join(commands.fin(i) for i in ids))
    assert reader.commands() == [Command(FIN_RUN, ids[:FIN_RUN_MAX]),
                                 Command(FIN_RUN, ids[FIN_RUN_MAX:])]


@pytest.mark.parametrize("odd", [
    b"FIN 0123456789abcde\r\n",     # CRLF: a 15-byte ID
    b"FIN 0123456 89abcdef\n",       # two words
    b"FIN 01234567\n9abcdef\n",      # a newline inside
    b"FIN 0123456789abcdef0\n",      # 17 bytes
    b"FIN 0123456789abcdef extra\n",  # a second word (NSQ uses the first)
    b"FIN\n",
    b"NOP\n",
], ids=["crlf", "space", "newline", "long", "extra", "bare", "nop"])
@pytest.mark.parametrize("where", [0, 1, 40, 99])
def test_fin_runs_end_where_the_general_parse_differs(odd: bytes, where: int) -> None:
    ids = fin_ids(100)
    lines = [commands.fin(i) for i in ids]
    lines.insert(where, odd)
    data = b"".join(lines)
    reader = CommandReader(fin_runs=True)
    reader.feed(data)
    got = reader.commands()
    assert expand_fin_runs(got) == slow_path(data)
    runs = [c.params for c in got if c.name == FIN_RUN]
    assert [i for run in runs for i in run] == ids and len(runs) == (1 if where == 0 else 2)


def test_repeated_lines_reuse_their_words_and_keep_bodies_apart() -> None:
    data = b"".join(commands.dpub("t", 5000, b"m%d" % i) for i in range(5)) \
        + commands.dpub("t", 6000, b"other") + commands.pub("t", b"p") + commands.dpub("t", 5000, b"x")
    reader = CommandReader(V2_BODY_COMMANDS)
    reader.feed(data)
    got = reader.commands()
    assert got == slow_path(data)
    assert [c.body for c in got[:5]] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert got[5].params == [b"t", b"6000"] and got[7].params == [b"t", b"5000"]


def test_params_split_on_single_spaces() -> None:
    reader = CommandReader()
    reader.feed(b"SUB  t c\n")
    assert reader.commands() == [Command(b"SUB", [b"", b"t", b"c"])]


def test_line_at_max_line_is_accepted() -> None:
    line = b"X" * 100
    reader = CommandReader(max_line=100)
    reader.feed(line + b"\n")
    assert reader.commands() == [Command(line, [])]

    reader = CommandReader(max_line=100)
    for byte in line + b"\n":
        reader.feed(bytes([byte]))
        got = reader.commands()
    assert got == [Command(line, [])]


def test_long_line_whole() -> None:
    reader = CommandReader(max_line=100)
    reader.feed(b"NOP\n" + b"X" * 101 + b"\n")
    with pytest.raises(RemoteProtocolError, match="longer than 100"):
        reader.commands()
    assert reader.failed
    assert reader.commands() == []


def test_long_line_without_newline() -> None:
    reader = CommandReader(max_line=100)
    reader.feed(b"X" * 100)
    assert reader.commands() == []  # could still end in time
    reader.feed(b"X")
    with pytest.raises(RemoteProtocolError):
        reader.commands()
    assert reader.failed


def test_long_line_byte_at_a_time() -> None:
    reader = CommandReader(max_line=100)
    with pytest.raises(RemoteProtocolError):
        for _ in range(200):
            reader.feed(b"X")
            assert reader.commands() == []
    assert reader.failed


def test_default_max_line_line() -> None:
    reader = CommandReader()
    reader.feed(b"X" * (DEFAULT_MAX_LINE + 1) + b"\n")
    with pytest.raises(RemoteProtocolError):
        reader.commands()


def test_long_line_dribble_stays_fast() -> None:
    line = b"SUB " + b"t" * (DEFAULT_MAX_LINE - 10)
    reader = CommandReader()
    start = time.perf_counter()
    got = []
    for byte in line + b"\n":
        reader.feed(bytes([byte]))
        got.extend(reader.commands())
    assert time.perf_counter() - start < 2
    assert got == [Command(b"SUB", [line[4:]])]


# ---------------------------------------------------------------- bodies


@pytest.mark.parametrize("bad", [0, -1, -(2**31), 1001])
@pytest.mark.parametrize("name", sorted(V2_BODY_COMMANDS))
def test_bad_body_size(name: bytes, bad: int) -> None:
    reader = CommandReader(max_body_size=1000)
    reader.feed(b"NOP\nRDY 3\n" + name + b" t\n" + size(bad) + b"junk NOP\nNOP\n")
    assert reader.commands() == [
        Command(b"NOP", []),
        Command(b"RDY", [b"3"]),
        Command(name, [b"t"], None, bad),
    ]
    assert reader.failed
    assert reader.buffered == 0
    reader.feed(b"NOP\n")
    assert reader.commands() == []


def test_bad_body_size_fed_byte_at_a_time() -> None:
    reader = CommandReader(max_body_size=1000)
    wire = b"NOP\nPUB t\n" + size(5000) + b"x" * 10
    got: list[Command] = []
    for byte in wire:
        reader.feed(bytes([byte]))
        got.extend(reader.commands())
    assert got == [Command(b"NOP", []), Command(b"PUB", [b"t"], None, 5000)]
    assert reader.failed


def test_body_limits_per_command() -> None:
    # nsqd: PUB/DPUB are limited by --max-msg-size, MPUB/IDENTIFY/AUTH by --max-body-size
    reader = CommandReader(max_body_size=1000, body_limits={b"PUB": 10})
    reader.feed(commands.mpub("t", [b"m" * 100]) + commands.pub("t", b"p" * 10) + b"PUB t\n"
                + size(11))
    assert reader.commands() == [
        Command(b"MPUB", [b"t"], struct.pack(">ll", 1, 100) + b"m" * 100),
        Command(b"PUB", [b"t"], b"p" * 10),
        Command(b"PUB", [b"t"], None, 11),
    ]
    assert reader.failed


def test_leftover_does_not_keep_a_large_buffer_alive() -> None:
    reader = CommandReader()
    reader.feed(commands.pub("t", b"x" * 100_000) + b"NO")
    assert len(reader.commands()) == 1
    assert len(reader._buf) == 2  # the 100 KB buffer was let go
    reader.feed(b"P\n")
    assert reader.commands() == [Command(b"NOP", [])]


def test_v1_bad_identify_size() -> None:
    reader = CommandReader(V1_BODY_COMMANDS, max_body_size=10)
    reader.feed(b"PING\nIDENTIFY\n" + size(11))
    assert reader.commands() == [Command(b"PING", []), Command(b"IDENTIFY", [], None, 11)]
    assert reader.failed


def test_body_of_max_body_size_is_accepted() -> None:
    reader = CommandReader(max_body_size=1000)
    reader.feed(commands.pub("t", b"b" * 1000))
    assert reader.commands() == [Command(b"PUB", [b"t"], b"b" * 1000)]
    assert not reader.failed


def test_body_split_across_many_feeds() -> None:
    body = bytes(range(256)) * 400  # 100 KiB with every byte value, '\n' included
    wire = commands.pub("t", body) + commands.nop()
    wire_size = {b"PUB": len(wire) - 4, b"NOP": 4}
    reader = CommandReader()
    got: list[Command] = []
    fed = 0
    for i in range(0, len(wire), 997):
        chunk = wire[i : i + 997]
        reader.feed(chunk)
        fed += len(chunk)
        got.extend(reader.commands())
        assert reader.buffered == fed - sum(wire_size[c.name] for c in got)
    assert got == [Command(b"PUB", [b"t"], body), Command(b"NOP", [])]
    assert reader.buffered == 0


def test_buffered_counts_partial_command() -> None:
    reader = CommandReader()
    wire = commands.pub("t", b"hello")
    reader.feed(b"NOP\n" + wire[:8])
    assert reader.buffered == 12
    assert reader.commands() == [Command(b"NOP", [])]
    assert reader.buffered == 8
    reader.feed(wire[8:])
    assert reader.buffered == len(wire)
    assert reader.commands() == [Command(b"PUB", [b"t"], b"hello")]
    assert reader.buffered == 0


def test_commands_without_new_data() -> None:
    reader = CommandReader()
    assert reader.commands() == []
    reader.feed(b"PUB t\n" + size(10) + b"abc")
    assert reader.commands() == []
    assert reader.commands() == []
    reader.feed(b"")
    assert reader.commands() == []
    assert reader.buffered == 6 + 4 + 3


def _feed_in_chunks(reader: CommandReader, wire: bytes, chunk: int) -> list[Command]:
    got: list[Command] = []
    for i in range(0, len(wire), chunk):
        reader.feed(wire[i : i + chunk])
        got.extend(reader.commands())
    return got


def test_five_megabyte_body_in_64k_chunks_is_linear() -> None:
    body = b"p" * (5 * MB)
    wire = commands.pub("big", body)
    reader = CommandReader()
    start = time.perf_counter()
    got = _feed_in_chunks(reader, wire, 64 * 1024)
    assert time.perf_counter() - start < 2
    assert got == [Command(b"PUB", [b"big"], body)]
    assert reader.buffered == 0


def test_many_small_commands_in_small_chunks_is_linear() -> None:
    wire = (commands.pub("t", b"m" * 100) + commands.rdy(1)) * 5000  # ~600 KB
    reader = CommandReader()
    start = time.perf_counter()
    got = _feed_in_chunks(reader, wire, 7)
    assert time.perf_counter() - start < 2
    assert len(got) == 10000


# ---------------------------------------------------------------- parse_mpub_body


def test_mpub_error_is_remote() -> None:
    err = MPUBError("E_BAD_BODY", "text")
    assert isinstance(err, RemoteProtocolError)
    assert err.code == "E_BAD_BODY"
    assert str(err) == "text"


@pytest.mark.parametrize(
    "bodies", [[b"x"], [b"a", b"bb", b"ccc"], [b"\x00" * 100] * 50, [b"\n"]]
)
def test_parse_mpub_body_round_trip(bodies: list[bytes]) -> None:
    assert parse_mpub_body(mpub_payload(bodies), 100, 10_000) == bodies


def test_parse_mpub_body_message_of_max_msg_size() -> None:
    assert parse_mpub_body(mpub_payload([b"x" * 10]), 10, 1000) == [b"x" * 10]


def mpub_error(body: bytes, max_msg_size: int = 10, max_body_size: int = 104) -> tuple[str, str]:
    with pytest.raises(MPUBError) as info:
        parse_mpub_body(body, max_msg_size, max_body_size)
    return info.value.code, str(info.value)


@pytest.mark.parametrize("body", [b"", b"\x00", b"\x00\x00\x00"])
def test_mpub_no_count(body: bytes) -> None:
    assert mpub_error(body) == ("E_BAD_BODY", "MPUB failed to read message count")


@pytest.mark.parametrize("count", [0, -1, -(2**31)])
def test_mpub_count_not_positive(count: int) -> None:
    assert mpub_error(size(count)) == ("E_BAD_BODY", f"MPUB invalid message count {count}")


def test_mpub_too_many_messages() -> None:
    # NSQ: at most (max_body_size - 4) // 5 messages (4 for the count, 5 per message).
    assert mpub_error(size(21), max_body_size=104) == ("E_BAD_BODY", "MPUB invalid message count 21")
    # 20 is allowed, so the failure is about the missing messages instead
    assert mpub_error(size(20), max_body_size=104)[0] == "E_BAD_MESSAGE"
    bodies = [b"x"] * 20
    assert parse_mpub_body(mpub_payload(bodies), 10, 104) == bodies


@pytest.mark.parametrize("bad", [0, -1])
def test_mpub_message_size_not_positive(bad: int) -> None:
    body = size(2) + size(1) + b"a" + size(bad) + b"rest"
    assert mpub_error(body) == ("E_BAD_MESSAGE", f"MPUB invalid message(1) body size {bad}")
    assert mpub_error(size(1) + size(bad)) == (
        "E_BAD_MESSAGE",
        f"MPUB invalid message(0) body size {bad}",
    )


def test_mpub_message_too_big() -> None:
    body = size(1) + size(11) + b"x" * 11
    assert mpub_error(body, max_msg_size=10) == ("E_BAD_MESSAGE", "MPUB message too big 11 > 10")


@pytest.mark.parametrize("tail", [b"", b"\x00", b"\x00\x00\x00"])
def test_mpub_missing_message_size(tail: bytes) -> None:
    body = size(3) + size(1) + b"a" + tail
    assert mpub_error(body) == ("E_BAD_MESSAGE", "MPUB failed to read message(1) body size")


def test_mpub_truncated_message_body() -> None:
    body = size(2) + size(1) + b"a" + size(5) + b"abcd"
    assert mpub_error(body) == ("E_BAD_MESSAGE", "MPUB failed to read message body")


@pytest.mark.parametrize("extra", [b"x", b"\x00\x00\x00", b"\x00\x00\x00\x01z"])
def test_mpub_trailing_bytes(extra: bytes) -> None:
    body = mpub_payload([b"a"]) + extra
    assert mpub_error(body) == (
        "E_BAD_BODY",
        f"MPUB body has {len(extra)} bytes after its 1 messages",
    )


@pytest.mark.parametrize("count", [1, 2, 200])
def test_parse_mpub_body_same_sized_messages(count: int) -> None:
    bodies = [b"%03d" % i for i in range(count)]  # one size, different contents
    assert parse_mpub_body(mpub_payload(bodies), 100, 10_000) == bodies


@pytest.mark.parametrize(
    "body,error",
    [
        # the length of a grid of 2 x (4 + 2) bytes, but the second size word is 3
        (size(2) + size(2) + b"ab" + size(3) + b"cd", ("E_BAD_MESSAGE", "MPUB failed to read message body")),
        # a size word differing from the first only in its high byte
        (size(2) + size(2) + b"ab" + size(2 + (1 << 24)) + b"cd",
         ("E_BAD_MESSAGE", f"MPUB message too big {2 + (1 << 24)} > 10")),
        (size(2) + size(2) + b"ab" + size(1) + b"cd",
         ("E_BAD_BODY", "MPUB body has 1 bytes after its 2 messages")),
    ],
)
def test_mpub_grid_sized_body_with_other_sizes(body: bytes, error: tuple[str, str]) -> None:
    # a body exactly as long as same-sized messages would make it, but whose size words
    # differ: the same error as any other body
    assert mpub_error(body) == error


def test_mpub_grid_sized_body_with_smaller_messages() -> None:
    body = size(2) + size(3) + b"abc" + size(1) + b"def"
    assert len(body) == 4 + 2 * 7
    assert mpub_error(body) == ("E_BAD_BODY", "MPUB body has 2 bytes after its 2 messages")
