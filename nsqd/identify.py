"""IDENTIFY's JSON: parsed and type-checked as nsqd 1.3 does, answered as Go writes JSON."""

from __future__ import annotations

from internal.gojson import JSON

__all__ = ["IdentifyData"]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class IdentifyData:
    """IDENTIFY's JSON body, type-checked as Go's json.Unmarshal would."""

    __slots__ = ("client_id", "deflate", "deflate_level", "feature_negotiation", "heartbeat_interval",
                 "hostname", "msg_timeout", "output_buffer_size", "output_buffer_timeout",
                 "sample_rate", "snappy", "tls_v1", "user_agent")

    client_id: str
    hostname: str
    user_agent: str
    heartbeat_interval: int
    output_buffer_size: int
    output_buffer_timeout: int
    deflate_level: int
    sample_rate: int
    msg_timeout: int
    feature_negotiation: bool
    tls_v1: bool
    snappy: bool
    deflate: bool

    _STR = ("client_id", "hostname", "user_agent")
    _INT = ("heartbeat_interval", "output_buffer_size", "output_buffer_timeout", "deflate_level",
            "sample_rate", "msg_timeout")
    _BOOL = ("feature_negotiation", "tls_v1", "snappy", "deflate")

    def __init__(self, data: dict[str, JSON]) -> None:
        for key in self._STR:
            value = data.get(key, "")
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise TypeError(f"{key} must be a string")
            setattr(self, key, value)
        for key in self._INT:
            value = data.get(key, 0)
            if value is None:
                value = 0
            # Go's int64 fields: no fraction, no Infinity/NaN (Python's json reads them), no overflow
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not _INT64_MIN <= value <= _INT64_MAX or value != int(value):
                raise TypeError(f"{key} must be an integer")
            setattr(self, key, int(value))
        for key in self._BOOL:
            value = data.get(key, False)
            if value is None:
                value = False
            if not isinstance(value, bool):
                raise TypeError(f"{key} must be a boolean")
            setattr(self, key, value)
        # deprecated fields of old clients still accepted
        if not self.client_id and isinstance(data.get("short_id"), str):
            self.client_id = data["short_id"]
        if not self.hostname and isinstance(data.get("long_id"), str):
            self.hostname = data["long_id"]
