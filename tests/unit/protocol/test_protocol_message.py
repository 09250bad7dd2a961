"""The message wire struct: ``[timestamp:int64 ns][attempts:uint16][id:16][body]``."""

from __future__ import annotations

import struct

import pytest

from client.protocol import (
    MESSAGE_HEADER_SIZE,
    MSG_ID_LENGTH,
    Frame,
    FrameReader,
    FrameType,
    LocalProtocolError,
    RawMessage,
    RemoteProtocolError,
    decode_message,
    encode_frame,
    encode_message,
    encode_message_frame,
)

MSG_ID = b"0a1b2c3d4e5f6789"  # NSQ ids are 16 hex characters


def test_header_constants() -> None:
    assert MSG_ID_LENGTH == 16
    assert MESSAGE_HEADER_SIZE == 8 + 2 + 16 == 26


def test_encode_message_exact_bytes() -> None:
    data = encode_message(MSG_ID, 0x0102030405060708, 0x090A, b"body")
    assert data == (
        b"\x01\x02\x03\x04\x05\x06\x07\x08"  # timestamp, big-endian int64 ns
        b"\x09\x0a"  # attempts, big-endian uint16
        + MSG_ID
        + b"body"
    )


def test_decode_message_exact_fields() -> None:
    data = b"\xff" * 8 + b"\xff\xff" + MSG_ID + b"\n\x00tail"
    assert decode_message(data) == RawMessage(id=MSG_ID, timestamp=-1, attempts=65535, body=b"\n\x00tail")


@pytest.mark.parametrize("timestamp", [0, 1, -1, 1_700_000_000_123_456_789, 2**63 - 1, -(2**63)])
@pytest.mark.parametrize("attempts", [0, 1, 256, 65535])
@pytest.mark.parametrize("body", [b"", b"x", b"\x00\n\r\xff" * 3, bytes(range(256)) * 4])
def test_round_trip(timestamp: int, attempts: int, body: bytes) -> None:
    data = encode_message(MSG_ID, timestamp, attempts, body)
    assert len(data) == MESSAGE_HEADER_SIZE + len(body)
    msg = decode_message(data)
    assert msg == RawMessage(MSG_ID, timestamp, attempts, body)
    assert (msg.id, msg.timestamp, msg.attempts, msg.body) == (MSG_ID, timestamp, attempts, body)
    assert encode_message(*_args(msg)) == data

    frame = encode_message_frame(MSG_ID, timestamp, attempts, body)
    assert frame == encode_frame(FrameType.MESSAGE, data)


def _args(msg: RawMessage) -> tuple[bytes, int, int, bytes]:
    return msg.id, msg.timestamp, msg.attempts, msg.body


def test_message_frame_through_frame_reader(three_ways) -> None:
    wire = encode_message_frame(MSG_ID, 123, 2, b"payload")
    expected = [Frame(FrameType.MESSAGE, encode_message(MSG_ID, 123, 2, b"payload"))]
    three_ways(FrameReader, FrameReader.frames, wire, expected)

    reader = FrameReader()
    reader.feed(wire * 3)
    got = [decode_message(f.data) for f in reader.frames()]
    assert got == [RawMessage(MSG_ID, 123, 2, b"payload")] * 3


def test_message_frame_size_word() -> None:
    frame = encode_message_frame(MSG_ID, 0, 1, b"abc")
    (size, frame_type) = struct.unpack_from(">lL", frame)
    assert size == 4 + MESSAGE_HEADER_SIZE + 3 == len(frame) - 4
    assert frame_type == FrameType.MESSAGE


def test_message_id_is_opaque_bytes() -> None:
    raw_id = bytes(range(16))  # any 16 bytes travel untouched
    assert decode_message(encode_message(raw_id, 5, 1, b"")).id == raw_id


@pytest.mark.parametrize("length", range(MESSAGE_HEADER_SIZE))
def test_decode_short_data(length: int) -> None:
    with pytest.raises(RemoteProtocolError, match="shorter than its header"):
        decode_message(encode_message(MSG_ID, 1, 1, b"")[:length])


def test_decode_header_only_is_empty_body() -> None:
    assert decode_message(encode_message(MSG_ID, 7, 1, b"")).body == b""


@pytest.mark.parametrize("encode", [encode_message, encode_message_frame])
@pytest.mark.parametrize("bad_id", [b"", b"x" * 15, b"x" * 17, b"x" * 32])
def test_encode_bad_id_length(encode, bad_id: bytes) -> None:
    with pytest.raises(LocalProtocolError, match="16 bytes"):
        encode(bad_id, 0, 1, b"body")


@pytest.mark.parametrize("encode", [encode_message, encode_message_frame])
@pytest.mark.parametrize(
    ("timestamp", "attempts"), [(0, -1), (0, 65536), (2**63, 1), (-(2**63) - 1, 1)]
)
def test_encode_out_of_range_header(encode, timestamp: int, attempts: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode(MSG_ID, timestamp, attempts, b"body")
