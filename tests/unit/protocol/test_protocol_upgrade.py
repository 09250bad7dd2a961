"""FrameReader.next_frame / take_buffered: reading up to a transport upgrade."""

from __future__ import annotations

import pytest

from client.protocol import CommandReader, FrameReader, RemoteProtocolError, commands, encode_response


def test_next_frame_leaves_later_bytes_unparsed() -> None:
    data = encode_response(b'{"tls_v1":true}') + b"\x16\x03\x01 not a frame"
    reader = FrameReader()
    reader.feed(data)
    frame = reader.next_frame()
    assert frame is not None and frame.data == b'{"tls_v1":true}'
    assert reader.take_buffered() == b"\x16\x03\x01 not a frame"
    assert reader.buffered == 0
    assert reader.next_frame() is None


def test_next_frame_byte_by_byte() -> None:
    data = encode_response(b"one") + encode_response(b"two")
    reader = FrameReader()
    got = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        frame = reader.next_frame()
        if frame is not None:
            got.append(frame.data)
    assert got == [b"one", b"two"]


def test_reader_usable_after_take_buffered() -> None:
    reader = FrameReader()
    reader.feed(encode_response(b"a")[:3])
    assert reader.take_buffered() == encode_response(b"a")[:3]
    reader.feed(encode_response(b"b"))
    assert [f.data for f in reader.frames()] == [b"b"]


def test_next_frame_rejects_bad_size() -> None:
    reader = FrameReader(max_size=10)
    reader.feed(encode_response(b"x" * 20))
    with pytest.raises(RemoteProtocolError):
        reader.next_frame()


def test_command_reader_take_buffered() -> None:
    reader = CommandReader()
    reader.feed(commands.nop() + b"\x16\x03partial")
    assert [c.name for c in reader.commands()] == [b"NOP"]
    assert reader.take_buffered() == b"\x16\x03partial"
