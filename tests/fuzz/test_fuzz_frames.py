"""FrameReader / ResponseReader / decode_message (server → client stream): splits, garbage, limits."""

from __future__ import annotations

import struct

from fuzz_strategies import msg_ids, mutated, splits
from hypothesis import given
from hypothesis import strategies as st

from client.protocol import (
    Frame,
    FrameReader,
    RawMessage,
    RemoteProtocolError,
    ResponseReader,
    decode_message,
    encode_frame,
    encode_message,
    encode_message_frame,
    encode_v1_response,
)

MAX_FRAME = 512

frames = st.lists(st.builds(Frame, st.sampled_from([0, 1, 2, 7, 2**32 - 1]), st.binary(max_size=120)),
                  min_size=1, max_size=10)


def _read_frames(pieces: list[bytes], *, one_at_a_time: bool = False
                 ) -> tuple[list[Frame], Exception | None]:
    reader = FrameReader(MAX_FRAME)
    out: list[Frame] = []
    for piece in pieces:
        reader.feed(piece)
        try:
            if one_at_a_time:
                while (frame := reader.next_frame()) is not None:
                    out.append(frame)
            else:
                out.extend(reader.frames())
        except RemoteProtocolError as exc:
            return out, exc
        # never more than one frame (and its size word) is held back
        assert reader.buffered <= MAX_FRAME + 4 + len(piece)
        assert reader.buffered < MAX_FRAME + 4 or one_at_a_time
    return out, None


@given(frames.flatmap(lambda fs: st.tuples(st.just(fs), splits(b"".join(encode_frame(*f) for f in fs)))),
       st.booleans())
def test_frames_any_split(case: tuple[list[Frame], list[bytes]], one_at_a_time: bool) -> None:
    expected, pieces = case
    got, exc = _read_frames(pieces, one_at_a_time=one_at_a_time)
    assert exc is None and got == expected


@given(frames.flatmap(lambda fs: mutated(b"".join(encode_frame(*f) for f in fs)))
       .flatmap(lambda data: st.tuples(st.just(data), splits(data))), st.booleans())
def test_mutated_frames_split_invariant(case: tuple[bytes, list[bytes]], one_at_a_time: bool) -> None:
    stream, pieces = case
    whole, whole_exc = _read_frames([stream], one_at_a_time=one_at_a_time)
    split, split_exc = _read_frames(pieces, one_at_a_time=one_at_a_time)
    assert (whole_exc is None) == (split_exc is None)
    if whole_exc is None or one_at_a_time:
        assert split == whole
    else:
        assert split[:len(whole)] == whole
    for frame in split:
        assert len(frame.data) <= MAX_FRAME - 4


@given(st.binary(max_size=300).flatmap(lambda data: st.tuples(st.just(data), splits(data))))
def test_responses_garbage(case: tuple[bytes, list[bytes]]) -> None:
    stream, pieces = case
    reader = ResponseReader(MAX_FRAME)
    got: list[bytes] = []
    try:
        for piece in pieces:
            reader.feed(piece)
            got.extend(reader.responses())
            assert reader.buffered < MAX_FRAME + 4
    except RemoteProtocolError:
        return
    # what came out is exactly the stream's complete size-prefixed chunks
    assert b"".join(encode_v1_response(r) for r in got) == stream[:len(stream) - reader.buffered]


@given(st.integers(-2**31, -1) | st.integers(MAX_FRAME + 1, 2**31 - 1))
def test_frame_size_out_of_range_refused_before_buffering(size: int) -> None:
    reader = FrameReader(MAX_FRAME)
    reader.feed(struct.pack(">l", size))
    try:
        reader.frames()
    except RemoteProtocolError:
        return
    raise AssertionError("an out-of-range frame size was accepted")


@given(st.integers(0, 3))
def test_frame_without_type(size: int) -> None:
    reader = FrameReader(MAX_FRAME)
    reader.feed(struct.pack(">l", size) + b"x" * size)
    try:
        reader.frames()
    except RemoteProtocolError:
        return
    raise AssertionError("a frame without type was accepted")


@given(msg_ids, st.integers(-2**63, 2**63 - 1), st.integers(0, 65535), st.binary(max_size=100))
def test_message_roundtrip(msg_id: bytes, ts: int, attempts: int, body: bytes) -> None:
    data = encode_message(msg_id, ts, attempts, body)
    assert decode_message(data) == RawMessage(msg_id, ts, attempts, body)
    reader = FrameReader()
    reader.feed(encode_message_frame(msg_id, ts, attempts, body))
    (frame,) = reader.frames()
    assert frame == Frame(2, data)


@given(st.binary(max_size=60))
def test_decode_message_garbage(data: bytes) -> None:
    try:
        msg = decode_message(data)
    except RemoteProtocolError:
        assert len(data) < 26
        return
    assert len(msg.id) == 16 and 0 <= msg.attempts <= 65535 and msg.body == data[26:]
