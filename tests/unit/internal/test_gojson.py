"""internal.gojson against what Go's encoding/json.Marshal writes (expected bytes by hand)."""

from __future__ import annotations

import json
import math

import pytest

from internal.gojson import go_float, go_json


@pytest.mark.parametrize(("value", "expected"), [
    # compact, key order as given, Go's null/true/false
    ({"topics": [], "producers": None}, b'{"topics":[],"producers":null}'),
    ({}, b"{}"),
    ([], b"[]"),
    ([True, False, 0, -12], b"[true,false,0,-12]"),
    ((1, "a"), b'[1,"a"]'),
    (["a", 1, None, 2.0, ["<"]], b'["a",1,null,2,["\\u003c"]]'),
    ({"k": [], "n": None, "f": 0.5, "l": ["x", "y"]}, b'{"k":[],"n":null,"f":0.5,"l":["x","y"]}'),
    ({"a": {"b": [{"c": 1}]}}, b'{"a":{"b":[{"c":1}]}}'),
    ({2: "x"}, b'{"2":"x"}'),  # integer map keys become strings
    # HTML-safe escaping and the JavaScript line terminators
    ("<b>&</b>", b'"\\u003cb\\u003e\\u0026\\u003c/b\\u003e"'),
    ({"<k>": "v"}, b'{"\\u003ck\\u003e":"v"}'),
    ("a\u2028b\u2029c", b'"a\\u2028b\\u2029c"'),
    # named escapes (Go 1.22+ writes \b and \f by name), other controls as \u00xx
    ('"\\', b'"\\"\\\\"'),
    ("\b\f\n\r\t", b'"\\b\\f\\n\\r\\t"'),
    ("\x00\x1f\x7f", b'"\\u0000\\u001f\x7f"'),
    # non-ASCII stays raw UTF-8; invalid UTF-8 (kept as surrogates) becomes \ufffd
    ("h\u00e9 \U0001f600", '"h\u00e9 \U0001f600"'.encode()),
    (b"a\xffb\xfe".decode("utf-8", "surrogateescape"), b'"a\\ufffdb\\ufffd"'),
    ("\ud800", b'"\\ufffd"'),
    ("\ufffd", '"\ufffd"'.encode()),  # a real U+FFFD is valid text: written raw
])
def test_go_json_matches_go(value: object, expected: bytes) -> None:
    assert go_json(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (0.0, "0"),
    (-0.0, "-0"),
    (1.0, "1"),
    (0.5, "0.5"),
    (-2.25, "-2.25"),
    (0.1 + 0.2, "0.30000000000000004"),
    (123456789.0, "123456789"),
    (1e16, "10000000000000000"),
    (1.5e17, "150000000000000000"),
    (1e20, "100000000000000000000"),
    (1.2345e-5, "0.000012345"),
    (1e-6, "0.000001"),
    (1e-7, "1e-7"),
    (1.5e-7, "1.5e-7"),
    (-1e-7, "-1e-7"),
    (1e-10, "1e-10"),
    (5e-324, "5e-324"),
    (1e21, "1e+21"),
    (1.2345e22, "1.2345e+22"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
])
def test_go_float(value: float, expected: str) -> None:
    assert go_float(value) == expected
    assert go_json([value]) == f"[{expected}]".encode()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="unsupported value"):
        go_json({"x": value})


def test_unsupported_types_are_refused() -> None:
    with pytest.raises(TypeError):
        go_json({"x": b"bytes"})
    with pytest.raises(TypeError):
        go_json({(1, 2): "tuple key"})


def test_subclasses_encode_as_their_base() -> None:
    import enum

    class State(enum.IntEnum):
        SUBSCRIBED = 3

    class Name(str):
        pass

    assert go_json({"state": State.SUBSCRIBED, "n": Name("x"), "f": 2.0}) == \
        b'{"state":3,"n":"x","f":2}'


def test_agrees_with_stdlib_where_go_and_python_agree() -> None:
    doc = {"topics": [{"topic_name": f"t{i}", "depth": i, "paused": i % 2 == 0,
                       "clients": [{"hostname": "h\u00e9.example", "remote_address": "127.0.0.1:5"}],
                       "e2e": {"count": 0, "percentiles": None}} for i in range(20)],
           "producers": None}
    assert go_json(doc) == json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def test_loads_reads_json_and_refuses_deep_nesting_as_malformed() -> None:
    from internal.gojson import loads

    assert loads(b'{"a":[1,"x"]}') == {"a": [1, "x"]}
    for bad in (b"[" * 100_000, b'{"a":' * 100_000, b"not json"):
        with pytest.raises(ValueError):
            loads(bad)
