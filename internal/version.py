"""Version strings, after NSQ's ``internal/version`` package.

:data:`PROJECT_VERSION` is the one place the trio-nsq version is written: pyproject.toml
reads it (``[tool.setuptools.dynamic]``), the daemons print it with ``--version`` and the
client sends it in its IDENTIFY ``user_agent``.
"""

from __future__ import annotations

import platform

__all__ = ["NSQ_VERSION", "PROJECT_VERSION", "version_string"]

#: NSQ release whose protocol and HTTP API this implementation follows.
NSQ_VERSION = "1.3.0"

#: Version of the trio-nsq distribution itself (a plain literal: setuptools reads it
#: without importing this module).
PROJECT_VERSION = "0.1.0"


def version_string(app: str) -> str:
    """Return the ``--version`` line, e.g. ``nsqd v1.3.0 (built w/python3.11.7 trio-nsq/0.1.0)``.

    Args:
        app: Program name (``nsqd``, ``nsqlookupd``, ``nsqadmin``).

    Returns:
        The line in NSQ's ``"%s v%s (built w/%s)"`` shape.
    """
    return f"{app} v{NSQ_VERSION} (built w/python{platform.python_version()} trio-nsq/{PROJECT_VERSION})"
