"""MPUB bodies (TCP and HTTP binary /mpub) and IDENTIFY's JSON: valid round trips, garbage refused
only with the documented errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from fuzz_strategies import mutated
from hypothesis import given
from hypothesis import strategies as st

from client.protocol import MPUBError, commands, parse_mpub_body
from internal.http import HTTPError
from nsqd.http import _parse_binary_mpub
from nsqd.identify import IdentifyData

MAX_MSG = 64
MAX_BODY = 1024

messages = st.lists(st.binary(min_size=1, max_size=MAX_MSG), min_size=1, max_size=12)


@given(messages)
def test_mpub_roundtrip(bodies: list[bytes]) -> None:
    assert parse_mpub_body(commands.mpub_body(bodies), MAX_MSG, MAX_BODY) == bodies
    assert _parse_binary_mpub(commands.mpub_body(bodies), MAX_MSG, MAX_BODY) == bodies


@given(messages.flatmap(lambda bodies: mutated(commands.mpub_body(bodies))) | st.binary(max_size=80))
def test_mpub_garbage(body: bytes) -> None:
    try:
        out = parse_mpub_body(body, MAX_MSG, MAX_BODY)
    except MPUBError as exc:
        assert exc.code in ("E_BAD_BODY", "E_BAD_MESSAGE")
        assert str(exc).startswith("MPUB ")
    else:
        assert all(0 < len(m) <= MAX_MSG for m in out)
        assert commands.mpub_body(out) == body  # accepted only when it is exactly well formed
    try:
        http_out = _parse_binary_mpub(body, MAX_MSG, MAX_BODY)
    except HTTPError as exc:
        assert exc.status == 413  # NSQ answers every /mpub body error with 413
    else:
        assert all(0 < len(m) <= MAX_MSG for m in http_out)
        # over HTTP the bytes after the count's messages are ignored, as NSQ does
        assert body.startswith(commands.mpub_body(http_out))


@given(st.integers(-2**31, 2**31 - 1))
def test_mpub_count_bounded_by_body_limit(count: int) -> None:
    body = count.to_bytes(4, "big", signed=True) + b"\x00\x00\x00\x01x" * 4
    try:
        out = parse_mpub_body(body, MAX_MSG, MAX_BODY)
    except MPUBError:
        return
    assert len(out) == count == 4


_FIELDS = ["client_id", "hostname", "user_agent", "heartbeat_interval", "output_buffer_size",
           "output_buffer_timeout", "deflate_level", "sample_rate", "msg_timeout",
           "feature_negotiation", "tls_v1", "snappy", "deflate", "short_id", "long_id", "other"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def parse_identify(body: bytes) -> IdentifyData:
    """What nsqd does with an IDENTIFY body: the errors it answers E_BAD_BODY are
    ValueError (bad JSON, not an object) and TypeError (a field of the wrong type)."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return IdentifyData(data)


@given(st.dictionaries(st.sampled_from(_FIELDS), json_values, max_size=8))
def test_identify_typed_fields(data: dict[str, Any]) -> None:
    body = json.dumps(data).encode()  # Infinity/NaN too: Python's json reads them back
    try:
        ident = parse_identify(body)
    except (ValueError, TypeError):
        return
    for key in IdentifyData._INT:
        value = getattr(ident, key)
        assert type(value) is int
    for key in IdentifyData._STR:
        assert isinstance(getattr(ident, key), str)
    for key in IdentifyData._BOOL:
        assert isinstance(getattr(ident, key), bool)


@given(st.dictionaries(st.sampled_from(_FIELDS), json_values, max_size=6)
       .flatmap(lambda d: mutated(json.dumps(d).encode())) | st.binary(max_size=60))
def test_identify_garbage(body: bytes) -> None:
    try:
        parse_identify(body)
    except (ValueError, TypeError):
        pass


@pytest.mark.parametrize("literal", [b"Infinity", b"-Infinity", b"NaN", b"1e400", b"-1e999"])
def test_identify_non_finite_numbers_refused(literal: bytes) -> None:
    """Go's JSON has no Infinity/NaN and no int field takes 1e400: E_BAD_BODY, not a crash."""
    with pytest.raises((ValueError, TypeError)):
        parse_identify(b'{"heartbeat_interval": %s}' % literal)
    assert not math.isfinite(float(literal.decode()))
