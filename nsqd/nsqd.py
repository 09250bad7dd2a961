"""The nsqd daemon: topics, connections, timers, metadata; one nursery owns it all.

``NSQD(options).run()`` binds the TCP and HTTP listeners, restores the metadata of the
data path, and serves until cancelled; ``nursery.start(nsqd.run)`` returns the real
bound addresses (port 0 picks free ports).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import Literal

import httpx
import trio

from client.errors import LookupdError
from client.lookup import channels as lookupd_channels
from client.protocol import (
    is_ephemeral,
    is_valid_channel_name,
    is_valid_topic_name,
)
from internal.connlimit import ConnectionLimit
from internal.gojson import JSON
from internal.netaddr import join_host_port, split_host_port
from internal.startup import listen_failed
from internal.version import NSQ_VERSION, version_string

from .backend import Backend, DummyBackend, Entry
from .channel import Channel
from .client_v2 import ClientV2
from .deferred_loop import DeferredLoop
from .deferred_store import DeferredStore
from .diskqueue import DiskQueue
from .errors import TopicError
from .guid import IDGenerator
from .lookup import LookupPeers
from .metadata import METADATA_FILE, MetadataFile, discover_queues
from .options import Options
from .protocol_v2 import ProtocolV2
from .queue_scan import queue_scan_loop
from .statsd import StatsdPusher
from .syncer import Syncer
from .tcp import TCPServer
from .tls import build_client_context, build_server_context
from .topic import Topic

__all__ = ["NSQD", "BoundAddresses"]

logger = logging.getLogger(__name__)

#: records read into a diskqueue's cache for the next read (write-through mode)
DISK_CACHE = 4096


@dataclass(frozen=True)
class BoundAddresses:
    """Where a running nsqd actually listens (port 0 resolved)."""

    tcp_address: tuple[str, int]
    http_address: tuple[str, int] | None
    https_address: tuple[str, int] | None = None


class NSQD:
    """One nsqd node."""

    def __init__(self, options: Options) -> None:
        self.options = options
        try:
            #: TLS for the TCP upgrade and HTTPS; None without --tls-cert/--tls-key
            self.tls_context = build_server_context(options)
            self._client_tls_context = (build_client_context(options)
                                        if options.auth_http_addresses else None)
        except ValueError as exc:
            raise RuntimeError(str(exc)) from exc
        self.topics: dict[str, Topic] = {}
        self.clients: dict[int, ClientV2] = {}
        self.start_time = time.time()
        self.ids = IDGenerator(options.node_id)
        self.protocol = ProtocolV2(self)
        self.tcp = TCPServer(self)
        self.bound: BoundAddresses | None = None
        self.lookup: LookupPeers | None = None  # once running
        self.health = "OK"
        #: TCP connections open now, bounded by --max-connections
        self.tcp_limit = ConnectionLimit("TCP", options.max_connections, logger)
        self._nursery: trio.Nursery | None = None
        #: nsqd.dat: written after each change; creators wait for it (see nsqd.metadata)
        self.meta = MetadataFile(os.path.join(self.data_path, METADATA_FILE), self.metadata)
        self._data_lock: int | None = None
        self._loading = False
        self._loaded = False  # metadata restored: the shutdown may write it back
        #: group commit and periodic syncs of every disk queue and deferred store
        self.syncer = Syncer(sync_timeout=options.sync_timeout)
        #: releases (and loads ahead) every channel's deferred messages
        self.deferred_loop = DeferredLoop()

    # ------------------------------------------------------------------ options
    @property
    def data_path(self) -> str:
        return self.options.data_path or os.getcwd()

    @property
    def client_tls_context(self) -> ssl.SSLContext:
        """TLS settings of nsqd as an HTTPS client (auth server queries)."""
        if self._client_tls_context is None:
            self._client_tls_context = build_client_context(self.options)
        return self._client_tls_context

    def swap_options(self, options: Options) -> None:
        """Replace the options at runtime (PUT /config), NSQ's ``swapOpts``: callers pass
        a ``dataclasses.replace`` of :attr:`options`."""
        self.options = options

    # ------------------------------------------------------------------ topics
    def _backend(self, name: str, ephemeral: bool) -> Backend[Entry]:
        if ephemeral:
            return DummyBackend()
        opts = self.options
        return DiskQueue(name, self.data_path, max_bytes_per_file=opts.max_bytes_per_file,
                         sync_every=opts.sync_every, max_msg_size=opts.max_msg_size,
                         syncer=self.syncer, sync_timeout=opts.sync_timeout,
                         write_through=opts.mem_queue_size == 0 or opts.sync_every == 1,
                         cache_size=DISK_CACHE if opts.mem_queue_size == 0 else 0)

    def deferred_store(self, name: str, ephemeral: bool) -> DeferredStore:
        """Where a channel's deferred messages wait (on disk unless ephemeral)."""
        opts = self.options
        directory = None if ephemeral else os.path.join(self.data_path, f"{name}.deferred")
        return DeferredStore(directory, write_through=opts.sync_every == 1, syncer=self.syncer,
                             max_msg_size=opts.max_msg_size, sync_timeout=opts.sync_timeout)

    def durable_token(self) -> int:
        """Take before publishing; then wait for ``syncer.covering_cycle(token)`` (None:
        nothing to wait for) before answering OK."""
        return self.syncer.token()

    def get_topic(self, name: str) -> Topic:
        """The topic, created (and announced to lookupd) if new.

        Raises:
            TopicError: the daemon is shutting down.
        """
        topic = self.topics.get(name)
        if topic is not None:
            return topic
        if self._nursery is None:
            raise TopicError("exiting")
        topic = Topic(self, name, self._backend(name, is_ephemeral(name)), self._backend)
        self.topics[name] = topic
        self._nursery.start_soon(topic.pump)
        logger.info("TOPIC(%s): created", name)
        self._notify("register", name, None, ephemeral=topic.ephemeral)
        if not self._loading and self.lookup is not None and self.lookup.addresses:
            # as NSQ: channels that consumers registered with lookupd for this topic
            # elsewhere are created before any message flows, so none misses a message
            topic.starting = True
            self._nursery.start_soon(self._precreate_channels, topic)
        return topic

    async def _precreate_channels(self, topic: Topic) -> None:
        """Ask every lookupd for the topic's channels, create them, then start the topic."""
        try:
            addresses = self.lookup.lookupd_http_addresses() if self.lookup is not None else []
            if not addresses:
                logger.error("no available nsqlookupd to query for channels to pre-create "
                             "for topic %s", topic.name)
                return
            opts = self.options
            names: set[str] = set()
            timeout = httpx.Timeout(opts.http_client_request_timeout,
                                    connect=opts.http_client_connect_timeout)
            async with httpx.AsyncClient() as http:
                for address in addresses:
                    try:
                        names.update(await lookupd_channels(http, address, topic.name,
                                                            timeout=timeout))
                    except LookupdError as exc:
                        logger.warning("failed to query nsqlookupd for channels to pre-create "
                                       "for topic %s - %s", topic.name, exc)
            for name in sorted(names):
                if is_valid_channel_name(name) and not is_ephemeral(name) and not topic.deleted:
                    topic.get_channel(name)
        finally:
            topic.start()

    def get_existing_topic(self, name: str) -> Topic:
        """Raises :class:`TopicError` (``topic does not exist``) when missing."""
        topic = self.topics.get(name)
        if topic is None:
            raise TopicError("topic does not exist")
        return topic

    def delete_topic(self, name: str, *, reason: str = "deleted") -> None:
        """Delete a topic with its channels and data; its consumers are disconnected."""
        topic = self.topics.pop(name, None)
        if topic is None:
            raise TopicError("topic does not exist")
        logger.info("TOPIC(%s): deleting (%s)", name, reason)
        for channel in list(topic.channels.values()):
            self._notify("unregister", name, channel.name, ephemeral=channel.ephemeral)
        topic.close(delete=True)
        self._notify("unregister", name, None, ephemeral=topic.ephemeral)

    def channel_created(self, topic: Topic, channel: Channel) -> None:
        self._notify("register", topic.name, channel.name, ephemeral=channel.ephemeral)

    def channel_deleted(self, topic: Topic, channel: Channel) -> None:
        self._notify("unregister", topic.name, channel.name, ephemeral=channel.ephemeral)

    def _notify(self, kind: Literal["register", "unregister"], topic: str, channel: str | None,
                *, ephemeral: bool) -> None:
        if self._loading:
            return
        if self.lookup is not None:
            self.lookup.notify(kind, topic, channel)
        if not ephemeral:
            self.persist_metadata_soon()

    def registrations(self) -> list[tuple[str, str | None]]:
        """Every topic and (topic, channel), for lookupd (re-)registration."""
        out: list[tuple[str, str | None]] = []
        for topic in self.topics.values():
            out.append((topic.name, None))
            out.extend((topic.name, name) for name in topic.channels)
        return out

    # ------------------------------------------------------------------ publishing
    def publish(self, topic_name: str, bodies: list[bytes]) -> None:
        """Put messages on a topic (PUB, MPUB, /pub, /mpub)."""
        topic = self.get_topic(topic_name)
        if len(bodies) == 1:  # PUB, /pub
            body = bodies[0]
            topic.put([(self.ids.new_id(), body, time.time_ns(), 0)], trio.current_time(),
                      len(body))
            return
        ids = self.ids.new_ids(len(bodies))
        msgs = list(zip(ids, bodies, repeat(time.time_ns()), repeat(0)))
        topic.put(msgs, trio.current_time(), sum(map(len, bodies)))

    def publish_to(self, topic: Topic, body: bytes) -> None:
        """Put one message on ``topic`` (/pub)."""
        topic.put([(self.ids.new_id(), body, time.time_ns(), 0)], trio.current_time(), len(body))

    def publish_deferred(self, topic_name: str, body: bytes, delay: float) -> None:
        """Put one message on a topic, delivered after ``delay`` seconds (DPUB)."""
        self.publish_deferred_many(topic_name, [body], [delay])

    def publish_deferred_many(self, topic_name: str, bodies: list[bytes],
                              delays: list[float]) -> None:
        """Put messages on a topic, each delivered after its delay in seconds (DPUBs)."""
        topic = self.get_topic(topic_name)
        ts = time.time_ns()
        now = trio.current_time()
        ids = self.ids.new_ids(len(bodies))
        topic.put_deferred([(i, b, ts, 0) for i, b in zip(ids, bodies, strict=True)],
                           [now + d for d in delays])

    # ------------------------------------------------------------------ clients
    def remove_client(self, client: ClientV2) -> None:
        self.clients.pop(client.id, None)

    # ------------------------------------------------------------------ deferred
    def watch_deferred(self, channel: Channel) -> None:
        """Have the deferred loop serve ``channel``'s deferred store from now on."""
        self.deferred_loop.watch(channel)

    def _channels(self) -> Iterator[Channel]:
        for topic in list(self.topics.values()):
            yield from list(topic.channels.values())

    # ------------------------------------------------------------------ metadata
    def metadata(self) -> dict[str, JSON]:
        """NSQ's metadata document: non-ephemeral topics/channels and paused flags."""
        topics = []
        for topic in self.topics.values():
            if topic.ephemeral:
                continue
            channels = [{"name": c.name, "paused": c.paused}
                        for c in topic.channels.values() if not c.ephemeral]
            topics.append({"channels": channels, "name": topic.name, "paused": topic.paused})
        return {"topics": topics, "version": NSQ_VERSION}

    def persist_metadata(self) -> None:
        """Write the metadata now, atomically (temp file, fsync, rename).

        Raises:
            OSError: the write failed.
        """
        self.meta.write_now()

    def persist_metadata_soon(self) -> None:
        """The metadata changed: the writer task rewrites the file."""
        self.meta.changed()

    def load_metadata(self) -> None:
        """Restore topics and channels (and their paused state) from the data path; with
        no metadata file, the topics and channels whose queue files are there.

        Raises:
            RuntimeError: the metadata file is unreadable, or cannot be written back.
        """
        try:
            topics = self.meta.load()
        except RuntimeError as exc:
            raise RuntimeError(f"failed to load metadata - {exc}") from exc
        if topics is None:
            found = discover_queues(self.data_path)
            if found:
                logger.warning("NSQ: no metadata in %s: restoring the %d topic(s) whose "
                               "queue files are there (paused flags are not known)",
                               self.data_path, len(found))
            topics = [{"name": t, "channels": [{"name": c} for c in cs]}
                      for t, cs in found.items()]
        self._loading = True
        try:
            for t in topics:
                name = t.get("name", "")
                if not isinstance(name, str) or not is_valid_topic_name(name):
                    logger.warning("skipping creation of invalid topic %s", name)
                    continue
                topic = self.get_topic(name)
                if t.get("paused"):
                    topic.pause()
                for c in t.get("channels") or []:
                    cname = c.get("name", "")
                    if not isinstance(cname, str) or not is_valid_channel_name(cname):
                        logger.warning("skipping creation of invalid channel %s", cname)
                        continue
                    channel = topic.get_channel(cname)
                    if c.get("paused"):
                        channel.pause()
        finally:
            self._loading = False
        try:
            self.persist_metadata()
        except OSError as exc:
            raise RuntimeError(f"failed to persist metadata - {exc.filename or self.meta.path}"
                               f": {exc.strerror or exc}") from exc
        self._loaded = True

    def _lock_data_path(self) -> None:
        path = self.data_path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            hint = " (--data-path must be an existing directory)" \
                if exc.errno in (errno.ENOENT, errno.ENOTDIR) else ""
            raise RuntimeError(f"failed to lock data-path: open {path}: "
                               f"{exc.strerror}{hint}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise RuntimeError(f"failed to lock data-path: cannot flock directory {path} - "
                               f"{exc.strerror} (possibly in use by another instance of "
                               f"nsqd)") from exc
        self._data_lock = fd

    # ------------------------------------------------------------------ run
    async def run(self, *, task_status: trio.TaskStatus[BoundAddresses] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; then close clients and persist metadata."""
        opts = self.options
        self._lock_data_path()
        logger.info("%s", version_string("nsqd"))
        logger.info("ID: %d", opts.node_id)
        try:
            try:
                tcp_host, tcp_port = split_host_port(opts.tcp_address)
                listeners = await trio.open_tcp_listeners(tcp_port, host=tcp_host or None)
            except (OSError, ValueError) as exc:
                raise listen_failed(opts.tcp_address, exc) from exc
            sockname = listeners[0].socket.getsockname()
            tcp_addr = (sockname[0], sockname[1])
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.load_metadata()
                logger.info("TCP: listening on %s", join_host_port(*tcp_addr))
                nursery.start_soon(self._serve_tcp, listeners)
                from .http import serve_nsqd_http

                https_addr = None
                if self.tls_context is not None and opts.https_address:
                    try:
                        https_addr = await nursery.start(partial(serve_nsqd_http, self,
                                                                 https=True))
                    except (OSError, ValueError) as exc:
                        raise listen_failed(opts.https_address, exc) from exc
                http_addr = None
                if opts.http_address:
                    try:
                        http_addr = await nursery.start(serve_nsqd_http, self)
                    except (OSError, ValueError) as exc:
                        raise listen_failed(opts.http_address, exc) from exc
                self.bound = BoundAddresses(tcp_addr, http_addr, https_addr)
                nursery.start_soon(queue_scan_loop, self._channels,
                                   lambda: self.options.queue_scan_interval)
                nursery.start_soon(self.syncer.run)
                nursery.start_soon(self.protocol.read_deadlines.run)
                nursery.start_soon(self.deferred_loop.run)
                nursery.start_soon(self.deferred_loop.run_loader)
                nursery.start_soon(self.meta.run)
                self.lookup = LookupPeers(opts.lookupd_tcp_addresses, identity=self.identity,
                                          registrations=self.registrations)
                await nursery.start(self.lookup.run)
                if opts.statsd_address:
                    nursery.start_soon(StatsdPusher(self).run)
                task_status.started(self.bound)
        finally:
            self._nursery = None
            self._shutdown()

    async def _serve_tcp(self, listeners: list[trio.SocketListener]) -> None:
        await trio.serve_listeners(self.tcp.handle, listeners)

    def identity(self) -> dict[str, str | int]:
        """What nsqd tells lookupd about itself in IDENTIFY."""
        opts = self.options
        assert self.bound is not None
        http_port = self.bound.http_address[1] if self.bound.http_address else 0
        return {
            "version": NSQ_VERSION,
            "tcp_port": opts.broadcast_tcp_port or self.bound.tcp_address[1],
            "http_port": opts.broadcast_http_port or http_port,
            "hostname": os.uname().nodename,
            "broadcast_address": opts.broadcast_address,
        }

    def _shutdown(self) -> None:
        for client in list(self.clients.values()):
            client.close()
        self.syncer.close()
        if self._loaded:  # a start that failed before must leave nsqd.dat as it was
            try:
                self.persist_metadata()
            except OSError as exc:
                logger.error("failed to persist metadata - %s", exc)
        for topic in list(self.topics.values()):
            topic.close(delete=False)
        if self._data_lock is not None:
            os.close(self._data_lock)
            self._data_lock = None
