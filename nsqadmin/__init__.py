"""nsqadmin: a web UI and JSON API over an NSQ cluster, with built-in graphs, on Trio."""

from .nsqadmin import NSQAdmin as NSQAdmin
from .options import Options as Options

__all__ = ["NSQAdmin", "Options"]
