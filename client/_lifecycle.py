"""The open/close lifecycle that :class:`~client.Consumer` and :class:`~client.Producer` share."""

from __future__ import annotations

import enum

__all__ = ["State"]


class State(enum.Enum):
    """Where a consumer or producer is in its one-shot open/close lifecycle."""

    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSING = "closing"
    CLOSED = "closed"
