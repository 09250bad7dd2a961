"""V2 frames and V1 responses: encoders, FrameReader and ResponseReader."""

from __future__ import annotations

import struct
import time

import pytest

from client.protocol import (
    CLOSE_WAIT,
    HEARTBEAT,
    OK,
    Frame,
    FrameReader,
    FrameType,
    RemoteProtocolError,
    ResponseReader,
    encode_error,
    encode_frame,
    encode_message_frame,
    encode_response,
    encode_v1_response,
)
from client.protocol.frames import DEFAULT_MAX_FRAME_SIZE

MSG_ID = b"0123456789abcdef"


def frames(reader: FrameReader) -> list[Frame]:
    return reader.frames()


def responses(reader: ResponseReader) -> list[bytes]:
    return reader.responses()


# ---------------------------------------------------------------- encoders


def test_frame_type_values() -> None:
    assert [int(t) for t in FrameType] == [0, 1, 2]
    assert FrameType.RESPONSE == 0 and FrameType.ERROR == 1 and FrameType.MESSAGE == 2


def test_encode_frame_exact_bytes() -> None:
    # [size = 4 + len(data)][type][data]
    assert encode_frame(FrameType.RESPONSE, b"OK") == b"\x00\x00\x00\x06\x00\x00\x00\x00OK"
    assert encode_frame(FrameType.ERROR, b"") == b"\x00\x00\x00\x04\x00\x00\x00\x01"
    assert encode_frame(FrameType.MESSAGE, b"x" * 300) == (
        b"\x00\x00\x01\x30\x00\x00\x00\x02" + b"x" * 300
    )


def test_encode_response_and_error_are_frames() -> None:
    for data in (OK, HEARTBEAT, CLOSE_WAIT, b"", b'{"max_rdy_count":2500}'):
        assert encode_response(data) == encode_frame(FrameType.RESPONSE, data)
        assert encode_error(data) == encode_frame(FrameType.ERROR, data)
    assert encode_error(b"E_INVALID invalid command FOO") == (
        struct.pack(">ll", 33, 1) + b"E_INVALID invalid command FOO"
    )


def test_encode_v1_response_exact_bytes() -> None:
    assert encode_v1_response(b"OK") == b"\x00\x00\x00\x02OK"
    assert encode_v1_response(b"") == b"\x00\x00\x00\x00"


# ---------------------------------------------------------------- FrameReader

ONE_FRAME = [
    pytest.param(encode_response(OK), Frame(FrameType.RESPONSE, OK), id="ok"),
    pytest.param(encode_response(HEARTBEAT), Frame(FrameType.RESPONSE, HEARTBEAT), id="heartbeat"),
    pytest.param(encode_response(CLOSE_WAIT), Frame(FrameType.RESPONSE, CLOSE_WAIT), id="close"),
    pytest.param(
        encode_error(b"E_BAD_TOPIC PUB topic name \"a b\" is not valid"),
        Frame(FrameType.ERROR, b"E_BAD_TOPIC PUB topic name \"a b\" is not valid"),
        id="error",
    ),
    pytest.param(
        encode_message_frame(MSG_ID, 1_700_000_000_000_000_000, 3, b"hello\nworld\x00"),
        Frame(
            FrameType.MESSAGE,
            struct.pack(">qH", 1_700_000_000_000_000_000, 3) + MSG_ID + b"hello\nworld\x00",
        ),
        id="message",
    ),
    pytest.param(encode_frame(FrameType.RESPONSE, b""), Frame(0, b""), id="empty"),
    pytest.param(encode_frame(7, b"future"), Frame(7, b"future"), id="unknown-type"),
    pytest.param(
        encode_frame(FrameType.MESSAGE, bytes(range(256)) * 40),
        Frame(2, bytes(range(256)) * 40),
        id="binary-10k",
    ),
]


@pytest.mark.parametrize(("data", "frame"), ONE_FRAME)
def test_frame_reader_one_frame(data: bytes, frame: Frame, three_ways) -> None:
    three_ways(FrameReader, frames, data, [frame])


SMALL_FRAMES = [p for p in ONE_FRAME if len(p.values[0]) < 1000]


@pytest.mark.parametrize(("data", "frame"), SMALL_FRAMES)
def test_frame_reader_split_at_every_offset(data: bytes, frame: Frame, every_split) -> None:
    every_split(FrameReader, frames, data, [frame])


def test_frame_reader_many_frames_in_one_feed(three_ways, every_split) -> None:
    datas = [p.values[0] for p in SMALL_FRAMES]
    expected = [p.values[1] for p in SMALL_FRAMES]
    stream = b"".join(datas)
    three_ways(FrameReader, frames, stream, expected)
    every_split(FrameReader, frames, stream, expected)


def test_frame_reader_frame_type_is_comparable_to_enum() -> None:
    reader = FrameReader()
    reader.feed(encode_message_frame(MSG_ID, 0, 1, b"b") + encode_error(b"E_INVALID x"))
    message, error = reader.frames()
    assert message.type == FrameType.MESSAGE
    assert error.type == FrameType.ERROR
    assert message == (2, message.data)  # a plain NamedTuple


def test_frame_reader_no_data() -> None:
    reader = FrameReader()
    assert reader.buffered == 0
    assert reader.frames() == []
    reader.feed(b"")
    assert reader.buffered == 0
    assert reader.frames() == []


def test_frame_reader_buffered_counts_every_unreturned_byte() -> None:
    reader = FrameReader()
    first = encode_response(OK)
    second = encode_error(b"E_INVALID nope")
    reader.feed(first[:3])
    assert reader.buffered == 3
    assert reader.frames() == []
    assert reader.buffered == 3
    reader.feed(first[3:] + second[:5])
    assert reader.buffered == len(first) + 5
    assert reader.frames() == [Frame(0, OK)]
    assert reader.buffered == 5
    reader.feed(second[5:-1])
    assert reader.frames() == []
    assert reader.buffered == len(second) - 1
    reader.feed(second[-1:])
    assert reader.frames() == [Frame(1, b"E_INVALID nope")]
    assert reader.buffered == 0


@pytest.mark.parametrize("size", [-1, -4, -(2**31)])
def test_frame_reader_negative_size(size: int) -> None:
    reader = FrameReader()
    reader.feed(struct.pack(">l", size))  # the size word alone is enough to refuse
    with pytest.raises(RemoteProtocolError, match="out of range"):
        reader.frames()


def test_frame_reader_negative_size_after_good_frames_fed_byte_by_byte() -> None:
    reader = FrameReader()
    data = encode_response(OK) + struct.pack(">l", -1)
    got: list[Frame] = []
    with pytest.raises(RemoteProtocolError):
        for byte in data:
            reader.feed(bytes([byte]))
            got.extend(reader.frames())
    assert got == [Frame(0, OK)]


def test_frame_reader_oversized() -> None:
    reader = FrameReader(max_size=100)
    reader.feed(struct.pack(">lL", 101, 0))  # refused before the body is buffered
    with pytest.raises(RemoteProtocolError, match="101"):
        reader.frames()

    reader = FrameReader(max_size=100)
    reader.feed(encode_frame(2, b"x" * 96))  # size 100 == max is fine
    assert reader.frames() == [Frame(2, b"x" * 96)]


def test_frame_reader_default_max_size() -> None:
    assert FrameReader().max_size == DEFAULT_MAX_FRAME_SIZE == 64 * 1024 * 1024
    reader = FrameReader()
    reader.feed(struct.pack(">l", DEFAULT_MAX_FRAME_SIZE + 1))
    with pytest.raises(RemoteProtocolError):
        reader.frames()


@pytest.mark.parametrize("size", [0, 1, 2, 3])
def test_frame_reader_frame_without_type(size: int) -> None:
    reader = FrameReader()
    reader.feed(struct.pack(">l", size) + b"\x00" * size)
    with pytest.raises(RemoteProtocolError, match="no type"):
        reader.frames()


def test_frame_reader_large_frame_in_chunks_is_linear() -> None:
    body = b"m" * (5 * 1024 * 1024)
    data = encode_frame(FrameType.MESSAGE, body)
    reader = FrameReader()
    got: list[Frame] = []
    start = time.perf_counter()
    for i in range(0, len(data), 64 * 1024):
        reader.feed(data[i : i + 64 * 1024])
        got.extend(reader.frames())
    assert time.perf_counter() - start < 2
    assert got == [Frame(2, body)]
    assert reader.buffered == 0


def test_frame_reader_dribble_is_linear() -> None:
    data = b"".join(encode_frame(FrameType.RESPONSE, b"r" * 1000) for _ in range(50))
    reader = FrameReader()
    count = 0
    start = time.perf_counter()
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        count += len(reader.frames())
    assert time.perf_counter() - start < 2
    assert count == 50


# ---------------------------------------------------------------- ResponseReader

ONE_RESPONSE = [
    pytest.param(encode_v1_response(OK), OK, id="ok"),
    pytest.param(encode_v1_response(b"E_INVALID"), b"E_INVALID", id="error"),
    pytest.param(encode_v1_response(b'{"tcp_port":4160}'), b'{"tcp_port":4160}', id="json"),
    pytest.param(encode_v1_response(b"\x00\n" * 500), b"\x00\n" * 500, id="binary"),
]


@pytest.mark.parametrize(("data", "response"), ONE_RESPONSE)
def test_response_reader_one_response(data: bytes, response: bytes, three_ways) -> None:
    three_ways(ResponseReader, responses, data, [response])


def test_response_reader_many_and_every_split(three_ways, every_split) -> None:
    stream = b"".join(p.values[0] for p in ONE_RESPONSE[:3]) + encode_v1_response(b"")
    expected = [p.values[1] for p in ONE_RESPONSE[:3]] + [b""]
    three_ways(ResponseReader, responses, stream, expected)
    every_split(ResponseReader, responses, stream, expected)


def test_response_reader_empty_response_is_valid() -> None:
    reader = ResponseReader()
    reader.feed(b"\x00\x00\x00\x00")
    assert reader.responses() == [b""]
    assert reader.buffered == 0


def test_response_reader_has_no_frame_type() -> None:
    # The same bytes read as V1 keep the 4 bytes a V2 reader would take as the type.
    reader = ResponseReader()
    reader.feed(encode_response(OK))
    assert reader.responses() == [b"\x00\x00\x00\x00OK"]


def test_response_reader_bad_sizes() -> None:
    reader = ResponseReader()
    reader.feed(struct.pack(">l", -1))
    with pytest.raises(RemoteProtocolError):
        reader.responses()

    reader = ResponseReader(max_size=10)
    reader.feed(struct.pack(">l", 11))
    with pytest.raises(RemoteProtocolError):
        reader.responses()

    reader = ResponseReader(max_size=10)
    reader.feed(encode_v1_response(b"x" * 10))
    assert reader.responses() == [b"x" * 10]


def test_response_reader_buffered() -> None:
    reader = ResponseReader()
    data = encode_v1_response(OK)
    reader.feed(data + data[:2])
    assert reader.buffered == len(data) + 2
    assert reader.responses() == [OK]
    assert reader.buffered == 2
