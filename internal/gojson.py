"""JSON bytes exactly as Go's ``encoding/json`` ``Marshal`` writes them.

Every JSON answer of nsqd, nsqlookupd and nsqadmin goes through :func:`go_json`, so
clients that compare bytes (or cache by them) see what Go NSQ would send:

* compact: no space after ``:`` or ``,``;
* UTF-8 text left as is, but ``<``, ``>``, ``&``, U+2028 and U+2029 written as
  ``\\u003c``, ``\\u003e``, ``\\u0026``, ``\\u2028``, ``\\u2029`` (Go's HTML-safe default);
* ``"`` and ``\\`` backslash-escaped, ``\\b \\f \\n \\r \\t`` by name, the other control
  characters below U+0020 as ``\\u00XX`` (lower-case hex), as Go 1.22+ does;
* a string that is not valid Unicode (a lone surrogate, e.g. a byte kept by
  ``surrogateescape``) gets ``\\ufffd`` in its place, as Go does for invalid UTF-8;
* floats in Go's shortest form: ``1`` not ``1.0``, plain decimals from 1e-6 up to
  1e21, exponent form outside that with no zero padding (``1e-7``, ``1e+21``);
  NaN and infinities are refused (Go's ``UnsupportedValueError``).

Key order is the caller's: build dicts in Go struct field order, or sorted for Go maps.
Integer keys are written as strings, as Go does for integer-keyed maps.

JSON read from the network goes through :func:`loads`, for which nesting too deep for
Python's parser is malformed JSON like any other (a ``ValueError``), not a crash.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any, TypeAlias

__all__ = ["JSON", "go_float", "go_json", "loads"]

#: a JSON value (object, array, string, number, bool, null) of no shape known to the
#: type checker: what :func:`loads` returns and :func:`go_json` takes
JSON: TypeAlias = Any

_quote = json.encoder.encode_basestring  # C: escapes '"', '\\' and control characters only
_SURROGATE = re.compile("[\ud800-\udfff]")
_HTML_SAFE = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
              ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def go_float(value: float) -> str:
    """A float64 as ``encoding/json`` writes it (``strconv`` shortest digits).

    Raises:
        ValueError: for NaN and infinities, which JSON cannot hold.
    """
    if not math.isfinite(value):
        raise ValueError(f"json: unsupported value: {value!r}")
    text = float.__repr__(value)  # the shortest round-tripping digits, as strconv's -1
    size = abs(value)
    if size != 0 and (size < 1e-6 or size >= 1e21):
        # repr already uses exponent form here; Go strips one zero: e-07 -> e-7
        if text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    if "e" in text:  # repr switched to exponent form earlier than Go does
        return format(Decimal(text).normalize(), "f")
    return text[:-2] if text.endswith(".0") else text


def go_json(obj: JSON) -> bytes:
    """Serialise ``obj`` (dict, list, tuple, str, int, float, bool, None) like ``json.Marshal``.

    Raises:
        TypeError: for any other type.
        ValueError: for NaN or an infinity.
    """
    parts: list[str] = []
    add = parts.append

    def encode(o: Any) -> None:
        kind = type(o)
        if kind is str:
            add(_quote(o))
        elif o is None:
            add("null")
        elif o is True:
            add("true")
        elif o is False:
            add("false")
        elif kind is dict:
            opener = "{"
            for key, value in o.items():
                if type(key) is not str:
                    key = _key(key)
                kind = type(value)  # the common scalars inline: no call per value
                if kind is str:
                    add(f"{opener}{_quote(key)}:{_quote(value)}")
                elif kind is int:
                    add(f"{opener}{_quote(key)}:{int.__repr__(value)}")
                else:
                    add(f"{opener}{_quote(key)}:")
                    encode(value)
                opener = ","
            add("{}" if opener == "{" else "}")
        elif kind is list or kind is tuple:
            try:  # a list of names (topics, channels): one join
                add(f"[{','.join(map(_quote, o))}]")
                return
            except TypeError:
                pass
            opener = "["
            for value in o:
                add(opener)
                opener = ","
                encode(value)
            add("[]" if opener == "[" else "]")
        elif isinstance(o, bool):
            add("true" if o else "false")
        elif isinstance(o, int):
            add(int.__repr__(o))
        elif isinstance(o, float):
            add(go_float(o))
        elif isinstance(o, str):
            add(_quote(str(o)))
        elif isinstance(o, dict):
            encode(dict(o))
        elif isinstance(o, (list, tuple)):
            encode(list(o))
        else:
            raise TypeError(f"json: unsupported type: {kind.__name__}")

    encode(obj)
    text = "".join(parts)
    for raw, escaped in _HTML_SAFE:  # these occur only inside strings
        if raw in text:
            text = text.replace(raw, escaped)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub(r"\\ufffd", text).encode()


def _key(key: Any) -> str:
    if isinstance(key, str):
        return str(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return int.__repr__(key)
    raise TypeError(f"json: unsupported map key type: {type(key).__name__}")


def loads(data: bytes | str) -> JSON:
    """``json.loads`` for untrusted input.

    Raises:
        ValueError: malformed JSON, including nesting deeper than the parser's recursion
            limit (``json`` raises ``RecursionError`` for that).
    """
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
