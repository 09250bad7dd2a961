"""Topic and channel name validation (NSQ's rules: 1..64 chars of ``[.a-zA-Z0-9_-]``,
optionally suffixed with ``#ephemeral``)."""

from __future__ import annotations

import re

__all__ = ["EPHEMERAL_SUFFIX", "is_ephemeral", "is_valid_channel_name", "is_valid_topic_name"]

EPHEMERAL_SUFFIX = "#ephemeral"
_VALID = re.compile(r"[.a-zA-Z0-9_-]+(#ephemeral)?")


def _is_valid_name(name: str) -> bool:
    return 1 <= len(name) <= 64 and _VALID.fullmatch(name) is not None


def is_valid_topic_name(name: str) -> bool:
    """True when ``name`` is a legal NSQ topic name."""
    return _is_valid_name(name)


def is_valid_channel_name(name: str) -> bool:
    """True when ``name`` is a legal NSQ channel name."""
    return _is_valid_name(name)


def is_ephemeral(name: str) -> bool:
    """True for ``#ephemeral`` topics/channels (never persisted, deleted when unused)."""
    return name.endswith(EPHEMERAL_SUFFIX)
