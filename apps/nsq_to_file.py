"""``nsq_to_file``: write topics' messages to files, one line per message.

One file per topic at a time (``--filename-format`` tokens ``<TOPIC> <HOST> <PID>
<DATETIME> <REV>``), rotated by ``--datetime-format`` change, ``--rotate-size`` and
``--rotate-interval``, optionally gzip'ed; written in ``--work-dir`` and moved to
``--output-dir`` once closed. A message is FIN'd only after it was written and
fsync'ed, so SIGTERM (or a crash) loses nothing. With ``--topic-pattern`` and no
``--topic``, new topics are discovered through nsqlookupd every ``--topic-refresh``.
SIGHUP closes (and moves) the current files.
"""

from __future__ import annotations

import logging
import re
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from client import Consumer
from internal.logs import parse_level

from ._cli import UsageError, parse, start, watch_signals
from ._file_logger import FileLogger, filename_format
from ._nsq import TopicsFlags, check_names, check_sources, consumer_config, flag
from ._progress import Progress

__all__ = ["Options", "main"]

PROG = "nsq_to_file"

logger = logging.getLogger("apps.nsq_to_file")


@dataclass
class Options(TopicsFlags):
    """nsq_to_file's flags (NSQ 1.3's names and defaults)."""

    log_level: str = flag("log-level", "info", "set log verbosity: debug, info, warn, error, or fatal")
    log_prefix: str = flag("log-prefix", "[nsq_to_file] ", "log message prefix")
    channel: str = flag("channel", "nsq_to_file", "nsq channel")
    max_in_flight: int = flag("max-in-flight", 200, "max number of messages to allow in flight")
    output_dir: str = flag("output-dir", "/tmp", "directory to write output files to")
    work_dir: str = flag("work-dir", "", "directory for in-progress files before moving to output-dir")
    datetime_format: str = flag("datetime-format", "%Y-%m-%d_%H",
                                "strftime compatible format for <DATETIME> in filename format")
    filename_format: str = flag(
        "filename-format", "<TOPIC>.<HOST><REV>.<DATETIME>.log",
        "output filename format (<TOPIC>, <HOST>, <PID>, <DATETIME>, <REV> are replaced. "
        "<REV> is increased when file already exists)")
    host_identifier: str = flag(
        "host-identifier", "", "value to output in log filename in place of hostname. "
        "<SHORT_HOST> and <HOSTNAME> are valid replacement tokens")
    gzip_level: int = flag("gzip-level", 6, "gzip compression level (1-9, 1=BestSpeed, 9=BestCompression)")
    gzip: bool = flag("gzip", False, "gzip output files.")
    skip_empty_files: bool = flag("skip-empty-files", False, "skip writing empty files")
    topic_refresh: float = flag("topic-refresh", 60.0, "how frequently the topic list should be refreshed",
                                duration=True)
    topic_pattern: str = flag("topic-pattern", "", "only log topics matching the following pattern")
    rotate_size: int = flag("rotate-size", 0, "rotate the file when it grows bigger than `rotate-size` bytes")
    rotate_interval: float = flag("rotate-interval", 0.0, "rotate the file every duration", duration=True)
    sync_interval: float = flag("sync-interval", 30.0, "sync file to disk every duration", duration=True)
    http_client_connect_timeout: float = flag("http-client-connect-timeout", 2.0,
                                              "timeout for HTTP connect", duration=True)
    http_client_request_timeout: float = flag("http-client-request-timeout", 5.0,
                                              "timeout for HTTP request", duration=True)
    progress: bool = flag("progress", False,
                          "show progress and rate on stderr (default: when stderr is a terminal)")


class TopicDiscoverer:
    """Runs a :class:`FileLogger` per topic; finds new topics through nsqlookupd."""

    def __init__(self, opts: Options, config: Any, nursery: trio.Nursery) -> None:
        self.opts = opts
        self.config = config
        self.nursery = nursery
        self.loggers: dict[str, FileLogger] = {}
        self.pattern = re.compile(opts.topic_pattern) if opts.topic_pattern else None
        self.written = 0
        self.terminating = False
        self._refresh_scope = trio.CancelScope()

    def _count(self, n: int) -> None:
        self.written += n

    def update(self, topics: Sequence[str]) -> None:
        """Start a logger for every new allowed topic."""
        for topic in topics:
            if topic in self.loggers or self.terminating:
                continue
            if self.pattern is not None and not self.pattern.search(topic):
                logger.warning("skipping topic %s (doesn't match pattern %s)", topic, self.opts.topic_pattern)
                continue
            consumer = Consumer(topic, self.opts.channel, nsqd_tcp_addresses=self.opts.nsqd_tcp_addresses,
                                lookupd_http_addresses=self.opts.lookupd_http_addresses, config=self.config)
            file_logger = FileLogger(self.opts, topic, consumer, self._count)
            self.loggers[topic] = file_logger
            self.nursery.start_soon(file_logger.run)

    async def refresh(self) -> None:
        """Poll nsqlookupd for topics every ``--topic-refresh`` (only without --topic)."""
        opts = self.opts
        timeout = httpx.Timeout(opts.http_client_request_timeout, connect=opts.http_client_connect_timeout)
        with self._refresh_scope:
            async with httpx.AsyncClient(timeout=timeout) as client:
                while True:
                    topics = await self._lookup_topics(client)
                    if topics is not None:
                        self.update(sorted(topics))
                    await trio.sleep(opts.topic_refresh)

    async def _lookup_topics(self, client: httpx.AsyncClient) -> set[str] | None:
        found: set[str] = set()
        ok = False
        for address in self.opts.lookupd_http_addresses:
            url = (address if "://" in address else f"http://{address}").rstrip("/") + "/topics"
            try:
                response = await client.get(url, headers={"Accept": "application/vnd.nsq; version=1.0"})
                response.raise_for_status()
                payload = response.json()
                if isinstance(payload, dict) and "topics" not in payload:
                    payload = payload.get("data") or {}
                found.update(str(t) for t in payload.get("topics") or ())
                ok = True
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                logger.error("could not retrieve topic list from %s: %s", address, exc)
        return found if ok else None

    def terminate(self, _signum: int = 0) -> None:
        self.terminating = True
        self._refresh_scope.cancel()
        for file_logger in self.loggers.values():
            file_logger.terminate()

    def on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            for file_logger in self.loggers.values():
                file_logger.hangup()
        else:
            self.terminate()


async def _main(opts: Options, show_progress: bool) -> int:
    config = await consumer_config(opts, PROG, opts.max_in_flight, opts.http_client_connect_timeout)
    async with trio.open_nursery() as nursery:
        async with trio.open_nursery() as loggers:
            discoverer = TopicDiscoverer(opts, config, loggers)
            await nursery.start(watch_signals, discoverer.on_signal,
                                (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
            progress = Progress(PROG, lambda: discoverer.written) if show_progress else None
            if progress is not None:
                nursery.start_soon(progress.run)
            discoverer.update(opts.topics)
            if not opts.topics:
                loggers.start_soon(discoverer.refresh)
        nursery.cancel_scope.cancel()
    if progress is not None:
        progress.done()
    return 0


def _check(opts: Options) -> None:
    if not opts.channel:
        raise UsageError("--channel is required")
    if opts.http_client_connect_timeout <= 0:
        raise UsageError("--http-client-connect-timeout should be positive")
    if opts.http_client_request_timeout <= 0:
        raise UsageError("--http-client-request-timeout should be positive")
    check_sources(opts.nsqd_tcp_addresses, opts.lookupd_http_addresses)
    if not 1 <= opts.gzip_level <= 9:
        raise UsageError(f"invalid --gzip-level value ({opts.gzip_level}), should be 1-9")
    if not opts.topics and not opts.topic_pattern:
        raise UsageError("--topic or --topic-pattern required")
    if not opts.topics and not opts.lookupd_http_addresses:
        raise UsageError("--lookupd-http-address must be specified when no --topic specified")
    check_names(opts.topics, opts.channel)
    if opts.topic_pattern:
        try:
            re.compile(opts.topic_pattern)
        except re.error as exc:
            raise UsageError(f"--topic-pattern {opts.topic_pattern!r}: {exc}") from None
    if opts.max_in_flight < 1:
        raise UsageError("--max-in-flight must be >= 1")
    if opts.sync_interval <= 0:
        raise UsageError("--sync-interval should be positive")
    if opts.topic_refresh <= 0:
        raise UsageError("--topic-refresh should be positive")
    try:
        filename_format(opts, "topic")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        parse_level(opts.log_level)
    except ValueError:
        raise UsageError("--log-level is invalid") from None


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``nsq_to_file`` console script."""
    opts, explicit = parse(Options, argv, PROG, "nsq_to_file: write NSQ topics to (rotating) files")
    if not opts.work_dir:
        opts.work_dir = opts.output_dir
    show = opts.progress if "progress" in explicit else sys.stderr.isatty()
    start(PROG, lambda: _check(opts), _main, opts, show, log_level=opts.log_level, log_prefix=opts.log_prefix)


if __name__ == "__main__":
    main()
