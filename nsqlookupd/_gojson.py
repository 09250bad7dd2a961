"""JSON bytes as Go's ``encoding/json`` writes them (compact, UTF-8, HTML-escaped).

Key order is the caller's: build dicts in Go struct field order, or sorted for Go maps.
"""

from __future__ import annotations

import json

__all__ = ["go_json"]

_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
            ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def go_json(obj: object) -> bytes:
    """Serialise ``obj`` like ``json.Marshal`` (dict order kept as given)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in _ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    return text.encode()
