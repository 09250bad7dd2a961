"""CommandReader (client → server V2/V1 stream): split invariance, limits, only its own errors."""

from __future__ import annotations

import json

from fuzz_strategies import bodies, msg_ids, mutated, names, splits
from hypothesis import given
from hypothesis import strategies as st

from client.protocol import (
    FIN_RUN,
    V1_BODY_COMMANDS,
    V2_BODY_COMMANDS,
    Command,
    CommandReader,
    RemoteProtocolError,
    commands,
)

MAX_LINE = 96
MAX_BODY = 300


def _cmd(name: bytes, *params: bytes, body: bytes | None = None) -> Command:
    return Command(name, list(params), body, None)


@st.composite
def valid_command(draw: st.DrawFn) -> tuple[bytes, Command]:
    """One encoded V2 command and the Command the reader must return for it."""
    kind = draw(st.sampled_from(["NOP", "CLS", "RDY", "FIN", "REQ", "TOUCH", "SUB", "PUB", "MPUB",
                                 "DPUB", "IDENTIFY", "AUTH", "CRLF"]))
    if kind == "NOP":
        return commands.nop(), _cmd(b"NOP")
    if kind == "CLS":
        return commands.cls(), _cmd(b"CLS")
    if kind == "RDY":
        n = draw(st.integers(0, 10**6))
        return commands.rdy(n), _cmd(b"RDY", b"%d" % n)
    if kind in ("FIN", "TOUCH"):
        # ids free of spaces/newlines, as the server's own ids (hex) are
        mid = draw(msg_ids.filter(lambda m: b" " not in m and b"\n" not in m and not m.endswith(b"\r")))
        enc = commands.fin(mid) if kind == "FIN" else commands.touch(mid)
        return enc, _cmd(kind.encode(), mid)
    if kind == "REQ":
        mid = draw(msg_ids.map(lambda m: m.hex()[:16].encode()))  # nsqd's ids are hex
        delay = draw(st.integers(0, 10**7))
        return commands.req(mid, delay), _cmd(b"REQ", mid, b"%d" % delay)
    if kind == "SUB":
        t, c = draw(names.filter(lambda n: len(n) < 40)), draw(names.filter(lambda n: len(n) < 40))
        return commands.sub(t, c), _cmd(b"SUB", t.encode(), c.encode())
    if kind == "PUB":
        t, b = draw(names), draw(bodies)
        return commands.pub(t, b), _cmd(b"PUB", t.encode(), body=b)
    if kind == "DPUB":
        t, b, d = draw(names), draw(bodies), draw(st.integers(0, 10**6))
        return commands.dpub(t, d, b), _cmd(b"DPUB", t.encode(), b"%d" % d, body=b)
    if kind == "MPUB":
        t = draw(names)
        msgs = draw(st.lists(st.binary(min_size=1, max_size=30), min_size=1, max_size=6))
        return commands.mpub(t, msgs), _cmd(b"MPUB", t.encode(), body=commands.mpub_body(msgs))
    if kind == "IDENTIFY":
        data = draw(st.dictionaries(st.sampled_from(["client_id", "hostname", "user_agent"]),
                                    st.text(alphabet="abc xyz\"\\é\x01", max_size=12)))
        body = json.dumps(data, separators=(",", ":")).encode()
        return commands.identify(data), _cmd(b"IDENTIFY", body=body)
    if kind == "AUTH":
        secret = draw(st.binary(min_size=1, max_size=40))
        return commands.auth(secret), _cmd(b"AUTH", body=secret)
    # CRLF line endings are accepted (the '\r' is stripped)
    t, c = draw(names.filter(lambda n: len(n) < 40)), draw(names.filter(lambda n: len(n) < 40))
    return b"SUB %s %s\r\n" % (t.encode(), c.encode()), _cmd(b"SUB", t.encode(), c.encode())


def feed_all(reader: CommandReader, pieces: list[bytes]) -> tuple[list[Command], Exception | None]:
    """Feed piece by piece as a server does (commands() after every feed), checking bounds."""
    out: list[Command] = []
    for piece in pieces:
        reader.feed(piece)
        try:
            out.extend(reader.commands())
        except RemoteProtocolError as exc:
            return out, exc
        if reader.failed:
            break
        # unparsed bytes never exceed one line plus one body
        assert reader.buffered <= MAX_LINE + 2 + 4 + MAX_BODY
    return out, None


@given(st.lists(valid_command(), min_size=1, max_size=12).flatmap(
    lambda cmds: st.tuples(st.just(cmds), splits(b"".join(e for e, _ in cmds)))))
def test_valid_stream_any_split(case: tuple[list[tuple[bytes, Command]], list[bytes]]) -> None:
    cmds, pieces = case
    expected = [c for _, c in cmds]
    whole, exc = feed_all(CommandReader(max_line=MAX_LINE, max_body_size=MAX_BODY), [b"".join(pieces)])
    assert exc is None and whole == expected
    split, exc = feed_all(CommandReader(max_line=MAX_LINE, max_body_size=MAX_BODY), pieces)
    assert exc is None and split == expected


def _same_outcome(stream: bytes, pieces: list[bytes], body_commands: frozenset[bytes]) -> None:
    def reader() -> CommandReader:
        return CommandReader(body_commands, max_line=MAX_LINE, max_body_size=MAX_BODY)

    whole, whole_exc = feed_all(reader(), [stream])
    split, split_exc = feed_all(reader(), pieces)
    # the same verdict however TCP cut the bytes, and the same commands in the same order;
    # except that a call that raises returns nothing, so the commands parsed in that call
    # before the bad line are dropped (none was answered and the connection closes)
    assert (whole_exc is None) == (split_exc is None)
    if whole_exc is None:
        assert split == whole
    else:
        assert split[:len(whole)] == whole
    for cmd in whole:
        if cmd.body is not None:
            assert 0 < len(cmd.body) <= MAX_BODY
        if cmd.bad_body_size is not None:
            assert cmd is whole[-1] and (cmd.bad_body_size <= 0 or cmd.bad_body_size > MAX_BODY)


@given(st.lists(valid_command(), min_size=1, max_size=8).flatmap(
    lambda cmds: mutated(b"".join(e for e, _ in cmds))).flatmap(
    lambda data: st.tuples(st.just(data), splits(data))))
def test_mutated_stream_split_invariant(case: tuple[bytes, list[bytes]]) -> None:
    _same_outcome(case[0], case[1], V2_BODY_COMMANDS)


garbage = st.lists(st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"\n", b"\r\n", b" ", b"PUB t\n", b"MPUB ", b"IDENTIFY\n", b"FIN ",
                     b"\x00\x00\x00\x05", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"A" * 120]),
), max_size=30).map(b"".join)


@given(garbage.flatmap(lambda data: st.tuples(st.just(data), splits(data))),
       st.sampled_from(["v2", "v1"]))
def test_garbage_only_protocol_errors(case: tuple[bytes, list[bytes]], proto: str) -> None:
    body_commands = V1_BODY_COMMANDS if proto == "v1" else V2_BODY_COMMANDS
    _same_outcome(case[0], case[1], body_commands)


@given(st.integers(MAX_LINE + 1, 4 * MAX_LINE), st.integers(1, 50))
def test_line_without_newline_is_refused_at_the_limit(length: int, piece: int) -> None:
    reader = CommandReader(max_line=MAX_LINE, max_body_size=MAX_BODY)
    data = b"X" * length
    raised = False
    for i in range(0, length, piece):
        reader.feed(data[i:i + piece])
        try:
            assert reader.commands() == []
        except RemoteProtocolError:
            raised = True
            break
        assert reader.buffered <= MAX_LINE + piece
    assert raised
    assert reader.commands() == []  # a failed reader stays silent


@given(st.sampled_from([b"PUB t\n", b"MPUB t\n", b"IDENTIFY\n", b"AUTH\n", b"DPUB t 1\n"]),
       st.one_of(st.integers(-2**31, 0), st.integers(MAX_BODY + 1, 2**31 - 1)))
def test_bad_body_size_stops_before_buffering(line: bytes, size: int) -> None:
    reader = CommandReader(max_line=MAX_LINE, max_body_size=MAX_BODY)
    reader.feed(line + size.to_bytes(4, "big", signed=True) + b"NOP\n")
    (cmd,) = reader.commands()
    assert cmd.body is None and cmd.bad_body_size == size and reader.failed
    reader.feed(b"NOP\n")
    assert reader.commands() == []


@given(st.lists(valid_command(), min_size=1, max_size=6), st.data())
def test_early_reject_before_body(cmds: list[tuple[bytes, Command]], data: st.DataObject) -> None:
    """A rejected body command comes back without its body; commands after it never do."""
    reject = data.draw(st.sampled_from([b"PUB", b"MPUB", b"DPUB", b"IDENTIFY", b"AUTH"]))
    stream = b"".join(e for e, _ in cmds)
    pieces = data.draw(splits(stream))
    reader = CommandReader(max_line=MAX_LINE, max_body_size=MAX_BODY,
                           early_reject=lambda name, params: name == reject)
    got, exc = feed_all(reader, pieces)
    assert exc is None
    expected = [c for _, c in cmds]
    for i, cmd in enumerate(got):
        if cmd.name == reject and cmd.body is None:
            assert i == len(got) - 1 and reader.failed
            assert cmd.params == expected[i].params
        else:
            assert cmd == expected[i]
    if not reader.failed:
        assert got == expected


def _expanded(cmds: list[Command]) -> list[Command]:
    out: list[Command] = []
    for cmd in cmds:
        if cmd.name == FIN_RUN:
            out.extend(_cmd(b"FIN", msg_id) for msg_id in cmd.params)
        else:
            out.append(cmd)
    return out


fin_heavy = st.lists(st.one_of(
    st.builds(commands.fin, msg_ids), st.builds(commands.fin, msg_ids), st.sampled_from([
        b"FIN ", b"\n", b"\r\n", b" ", b"NOP\n", b"RDY 3\n", b"FIN 0123456789abcdef\n"]),
    st.binary(max_size=24)), max_size=40).map(b"".join)


@given(fin_heavy.flatmap(lambda data: st.tuples(st.just(data), splits(data))))
def test_fin_runs_are_the_fins_the_general_parse_finds(case: tuple[bytes, list[bytes]]) -> None:
    """With ``fin_runs`` the commands are the same once each FIN_RUN is read as its FINs,
    however the stream is cut."""
    data, pieces = case
    plain, plain_exc = feed_all(CommandReader(max_line=MAX_LINE, max_body_size=MAX_BODY), [data])
    for feed in ([data], pieces):
        reader = CommandReader(max_line=MAX_LINE, max_body_size=MAX_BODY, fin_runs=True)
        runs, exc = feed_all(reader, feed)
        assert (exc is None) == (plain_exc is None)
        if exc is None:
            assert _expanded(runs) == plain
        else:
            assert _expanded(runs) == plain[:len(_expanded(runs))]
