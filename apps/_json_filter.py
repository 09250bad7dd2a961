"""nsq_to_nsq's JSON filters: ``--require-json-field``/``--require-json-value`` and
``--whitelist-json-field``, with Go's comparison rules and ``encoding/json`` output."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

__all__ = ["JSONFilter", "go_json"]

logger = logging.getLogger("apps.nsq_to_nsq")

_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
               ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def _go_numbers(value: Any) -> Any:
    # Go decodes every number to float64 and prints integral ones without ".0"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    return value


def go_json(value: Any) -> bytes:
    """``value`` encoded as Go's ``json.Marshal`` does (sorted keys, compact, HTML-safe)."""
    text = json.dumps(_go_numbers(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in _GO_ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    return text.encode()


def _parse_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class JSONFilter:
    """Decides per message body: pass (possibly rewritten), drop, or back off.

    Args:
        require_field: only pass objects that have this field.
        require_value: ...and whose field has this value (a string, or a number).
        whitelist: keep only these fields.
    """

    def __init__(self, require_field: str = "", require_value: str = "",
                 whitelist: Sequence[str] = ()) -> None:
        self.require_field = require_field
        self.require_value = require_value
        self.whitelist = list(whitelist)
        self.number = _parse_number(require_value) if require_value else None

    @property
    def active(self) -> bool:
        return bool(self.require_field or self.whitelist)

    def apply(self, body: bytes) -> tuple[str, bytes]:
        """``("pass", new_body)``, ``("drop", body)`` or ``("backoff", body)``."""
        try:
            js = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            js = None
        if not isinstance(js, dict):
            logger.error("Unable to decode json: %r", body[:200])
            return "drop", body
        verdict = self._check(js)
        if verdict != "pass":
            return verdict, body
        if not self.whitelist:
            return "pass", body
        return "pass", go_json({key: js[key] for key in self.whitelist if key in js})

    def _check(self, js: dict[str, Any]) -> str:
        field = self.require_field
        if not field:
            return "pass"
        if field not in js:
            if self.require_value:
                logger.error("missing field to check required value")
                return "backoff"
            return "drop"
        if not self.require_value:
            return "pass"
        value = js[field]
        if isinstance(value, str):
            return "pass" if value == self.require_value else "drop"
        if self.number is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            return "pass" if float(value) == self.number else "drop"
        return "drop"
