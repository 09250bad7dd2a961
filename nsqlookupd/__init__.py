"""nsqlookupd: the NSQ directory service (who has which topic), on Trio."""

from .nsqlookupd import NSQLookupd as NSQLookupd
from .options import Options as Options

__all__ = ["NSQLookupd", "Options"]
