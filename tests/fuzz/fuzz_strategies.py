"""Hypothesis strategies shared by the property tests: splits, mutations, names."""

from __future__ import annotations

from hypothesis import strategies as st

#: NSQ topic/channel names (the codec's encoders refuse anything else)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789._-", min_size=1, max_size=64)
bodies = st.binary(min_size=1, max_size=200)
msg_ids = st.binary(min_size=16, max_size=16)


@st.composite
def splits(draw: st.DrawFn, data: bytes, max_pieces: int = 40) -> list[bytes]:
    """``data`` cut at random offsets (pieces of one byte and empty pieces included)."""
    if not data:
        return [b""]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=max_pieces)))
    pieces = []
    prev = 0
    for cut in cuts + [len(data)]:
        pieces.append(data[prev:cut])
        prev = cut
    return pieces


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few random byte flips, insertions, deletions and truncation."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        if not buf:
            buf.extend(draw(st.binary(min_size=1, max_size=8)))
            continue
        i = draw(st.integers(0, len(buf) - 1))
        if op == "flip":
            buf[i] = draw(st.integers(0, 255))
        elif op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[i: i + draw(st.integers(1, 8))]
        elif op == "truncate":
            del buf[i:]
        else:
            j = draw(st.integers(i, min(len(buf), i + 64)))
            buf[j:j] = buf[i:j]
    return bytes(buf)
