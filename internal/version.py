"""Version strings, after NSQ's ``internal/version`` package."""

from __future__ import annotations

import importlib.metadata
import platform

__all__ = ["NSQ_VERSION", "PROJECT_VERSION", "version_string"]

#: NSQ release whose protocol and HTTP API this implementation follows.
NSQ_VERSION = "1.3.0"


def _project_version() -> str:
    try:
        return importlib.metadata.version("trio-nsq")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


#: Version of the trio-nsq distribution itself.
PROJECT_VERSION = _project_version()


def version_string(app: str) -> str:
    """Return the ``--version`` line, e.g. ``nsqd v1.3.0 (built w/python3.11.7)``.

    Args:
        app: Program name (``nsqd``, ``nsqlookupd``, ``nsqadmin``).

    Returns:
        The line in NSQ's ``"%s v%s (built w/%s)"`` shape.
    """
    return f"{app} v{NSQ_VERSION} (built w/python{platform.python_version()})"
