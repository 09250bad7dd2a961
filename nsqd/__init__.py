"""nsqd: the NSQ broker daemon on Trio (TCP protocol V2 + HTTP API, NSQ 1.3 compatible)."""

import internal  # noqa: F401  (first: serves the compiled hot modules, see internal/_native.py)

from .nsqd import NSQD as NSQD
from .nsqd import BoundAddresses as BoundAddresses
from .options import Options as Options

__all__ = ["NSQD", "BoundAddresses", "Options"]
