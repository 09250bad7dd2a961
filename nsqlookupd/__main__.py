"""``nsqlookupd`` command line entry point (NSQ's ``apps/nsqlookupd``)."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence

import trio

from internal.logs import setup_logging
from internal.options import resolve
from internal.startup import run_daemon

from .nsqlookupd import NSQLookupd
from .options import Options

logger = logging.getLogger("nsqlookupd")


async def _serve(options: Options) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(NSQLookupd(options).run)
            async for signum in signals:
                logger.info("received signal %s, exiting", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags and config, then run nsqlookupd; returns the exit status."""
    options, _ = resolve(Options, argv, prog="nsqlookupd",
                         description="nsqlookupd: the NSQ directory service")
    setup_logging(options.log_prefix, options.log_level)
    return run_daemon(logger, _serve, options)


if __name__ == "__main__":
    sys.exit(main())
