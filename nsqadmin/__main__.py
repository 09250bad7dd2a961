"""``nsqadmin`` command (NSQ's ``apps/nsqadmin``): flags/config → Options, logging, run
until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence

import trio

from internal.logs import setup_logging
from internal.options import OptionsError, resolve
from internal.startup import run_daemon

from .nsqadmin import NSQAdmin
from .options import Options

logger = logging.getLogger("nsqadmin")


async def _serve(admin: NSQAdmin) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(admin.run)
            async for signum in signals:
                logger.info("received signal %s, exiting", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nsqadmin`` console script; returns the exit status."""
    try:
        options, _ = resolve(Options, argv, prog="nsqadmin", exit_on_error=False,
                             description="nsqadmin: web UI and JSON API over an NSQ cluster")
    except OptionsError as exc:
        reason = str(exc).removeprefix("invalid options - ")
        print(f"[nsqadmin] FATAL: failed to instantiate nsqadmin - {reason}", file=sys.stderr)
        return 1
    setup_logging(options.log_prefix, options.log_level)
    if options.graphite_url or options.proxy_graphite:
        logger.warning("--graphite-url/--proxy-graphite are ignored: graphs are built in")
    try:
        admin = NSQAdmin(options)
    except ValueError as exc:
        logger.critical("failed to instantiate nsqadmin - %s", exc)
        return 1
    return run_daemon(logger, _serve, admin)


if __name__ == "__main__":
    sys.exit(main())
