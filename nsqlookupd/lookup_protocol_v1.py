"""nsqlookupd's TCP protocol (``  V1``): a sans-I/O session plus the trio connection task.

:class:`LookupProtocolV1` turns received bytes into registration changes and response
bytes, with the time passed in, so it is tested without sockets.
:func:`handle_connection` is the per-connection task that drives it over a stream.

Every V1 error is fatal, as in NSQ: the error text (``E_INVALID invalid command X``)
is sent as a ``[size][data]`` response and the connection is closed. When a
connection ends, its nsqd is removed from every registration.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from client.protocol import (
    MAGIC_V1,
    V1_BODY_COMMANDS,
    Command,
    CommandReader,
    RemoteProtocolError,
    encode_v1_response,
    is_ephemeral,
    is_valid_channel_name,
    is_valid_topic_name,
)
from internal.gojson import go_json, loads
from internal.netaddr import join_host_port

from .registration_db import PeerInfo, Producer, Registration, RegistrationDB

__all__ = [
    "FatalClientError",
    "LookupProtocolV1",
    "ServerInfo",
    "SessionState",
    "handle_connection",
]

logger = logging.getLogger(__name__)

#: IDENTIFY bodies are ~200 bytes; anything near this is hostile.
DEFAULT_MAX_BODY_SIZE = 64 * 1024
RECEIVE_SIZE = 64 * 1024
_OK = b"OK"


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What nsqlookupd tells an nsqd in its IDENTIFY response."""

    tcp_port: int
    http_port: int
    broadcast_address: str
    hostname: str
    version: str


class FatalClientError(Exception):
    """A client error; its text goes on the wire and the connection closes."""

    def __init__(self, code: str, desc: str) -> None:
        super().__init__(f"{code} {desc}")
        self.code = code
        self.desc = desc


class SessionState(enum.Enum):
    """Where a connection is: waiting for the magic, speaking V1, or done."""

    MAGIC = "magic"
    V1 = "v1"
    CLOSED = "closed"


_STR_FIELDS = ("hostname", "broadcast_address", "version")
_INT_FIELDS = ("tcp_port", "http_port")


def _field(body: dict[str, Any], name: str) -> Any:
    """Go's encoding/json: exact key first, then a case-insensitive match."""
    if name in body:
        return body[name]
    for key, value in body.items():
        if key.lower() == name:
            return value
    return None


def _decode_identify(body: bytes) -> dict[str, Any]:
    """The IDENTIFY fields, typed as Go would decode them; ValueError if they don't fit."""
    data = loads(body)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError("IDENTIFY body is not an object")
    out: dict[str, Any] = {}
    for name in _STR_FIELDS:
        value = _field(data, name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} is not a string")
        out[name] = value or ""
    for name in _INT_FIELDS:
        value = _field(data, name)
        if value is not None and (type(value) is not int or not -(2**63) <= value < 2**63):
            raise ValueError(f"{name} is not an integer")
        out[name] = value or 0
    return out


def _words(cmd: Command) -> tuple[bytes, list[str]]:
    """Name and params as NSQ sees them: the line space-trimmed, then split on ``" "``."""
    words = b" ".join([cmd.name, *cmd.params]).strip().split(b" ")
    return words[0], [w.decode("latin-1") for w in words[1:]]


class LookupProtocolV1:
    """One nsqd's connection to nsqlookupd, as pure state.

    Args:
        db: the registration database to update.
        info: the answer to IDENTIFY.
        remote_address: the peer's ``host:port``; also its producer id.
        max_body_size: largest IDENTIFY body accepted.
    """

    def __init__(
        self,
        db: RegistrationDB,
        info: ServerInfo,
        remote_address: str,
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self.db = db
        self.info = info
        self.remote_address = remote_address
        self.state = SessionState.MAGIC
        self.peer_info: PeerInfo | None = None
        self._magic = b""
        self._reader = CommandReader(V1_BODY_COMMANDS, max_body_size=max_body_size)
        self._handlers: dict[bytes, Callable[[list[str], Command, float], bytes]] = {
            b"PING": self._ping,
            b"IDENTIFY": self._identify,
            b"REGISTER": self._register,
            b"UNREGISTER": self._unregister,
        }

    def __str__(self) -> str:
        return self.remote_address

    @property
    def closed(self) -> bool:
        """True once the connection must be closed (after sending what was returned)."""
        return self.state is SessionState.CLOSED

    def receive_data(self, data: bytes, now: float) -> bytes:
        """Handle received bytes; returns the bytes to send back (possibly empty).

        After a fatal error the returned bytes end with the error response and
        :attr:`closed` is True; later data is ignored.
        """
        if self.state is SessionState.CLOSED:
            return b""
        if self.state is SessionState.MAGIC:
            need = 4 - len(self._magic)
            self._magic += data[:need]
            data = data[need:]
            if len(self._magic) < 4:
                return b""
            logger.info("CLIENT(%s): desired protocol magic %r", self, self._magic.decode("latin-1"))
            if self._magic != MAGIC_V1:
                logger.error("client(%s) bad protocol magic %r", self, self._magic.decode("latin-1"))
                self.state = SessionState.CLOSED
                return encode_v1_response(b"E_BAD_PROTOCOL")
            self.state = SessionState.V1
        self._reader.feed(data)
        out: list[bytes] = []
        try:
            for cmd in self._reader.commands():
                out.append(encode_v1_response(self.exec(cmd, now)))
        except FatalClientError as err:
            logger.error("[%s] - %s", self, err)
            out.append(encode_v1_response(str(err).encode("latin-1", "replace")))
            self.state = SessionState.CLOSED
        except RemoteProtocolError as err:
            logger.error("[%s] - %s", self, err)
            self.state = SessionState.CLOSED
        return b"".join(out)

    def exec(self, cmd: Command, now: float) -> bytes:
        """Run one command; returns the response data.

        Raises:
            FatalClientError: with NSQ's code and text.
        """
        name, params = _words(cmd)
        handler = self._handlers.get(name)
        if handler is None:
            raise FatalClientError("E_INVALID", f"invalid command {name.decode('latin-1')}")
        return handler(params, cmd, now)

    def connection_lost(self) -> list[Registration]:
        """Remove this connection's nsqd from every registration; returns those removed."""
        self.state = SessionState.CLOSED
        logger.info("PROTOCOL(V1): [%s] exiting ioloop", self)
        if self.peer_info is None:
            return []
        pid = self.peer_info.id
        removed = []
        for r in self.db.lookup_registrations(pid):
            if self.db.remove_producer(r, pid)[0]:
                logger.info("DB: client(%s) UNREGISTER category:%s key:%s subkey:%s",
                            self, r.category, r.key, r.subkey)
                removed.append(r)
        return removed

    # -- commands ------------------------------------------------------------

    def _ping(self, params: list[str], cmd: Command, now: float) -> bytes:
        peer = self.peer_info
        if peer is not None:
            # NSQ logs every ping at INFO; one line per nsqd per 15 s is DEBUG material
            logger.debug("CLIENT(%s): pinged (last ping %.3fs)", peer.id, now - peer.last_update)
            peer.last_update = now
        return _OK

    def _identify(self, params: list[str], cmd: Command, now: float) -> bytes:
        if self.peer_info is not None:
            raise FatalClientError("E_INVALID", "cannot IDENTIFY again")
        if cmd.body is None:
            if cmd.bad_body_size == 0:
                raise FatalClientError("E_BAD_BODY", "IDENTIFY failed to decode JSON body")
            raise FatalClientError("E_BAD_BODY", "IDENTIFY failed to read body")
        try:
            fields = _decode_identify(cmd.body)
        except (ValueError, RecursionError) as err:  # JSON, UTF-8, nesting or type errors
            logger.debug("[%s] IDENTIFY body: %s", self, err)
            raise FatalClientError("E_BAD_BODY", "IDENTIFY failed to decode JSON body") from None
        peer = PeerInfo(id=self.remote_address, remote_address=self.remote_address,
                        last_update=now, **fields)
        if not (peer.broadcast_address and peer.tcp_port and peer.http_port and peer.version):
            raise FatalClientError("E_BAD_BODY", "IDENTIFY missing fields")
        logger.info("CLIENT(%s): IDENTIFY Address:%s TCP:%d HTTP:%d Version:%s",
                    self, peer.broadcast_address, peer.tcp_port, peer.http_port, peer.version)
        self.peer_info = peer
        if self.db.add_producer(Registration("client", "", ""), Producer(peer)):
            logger.info("DB: client(%s) REGISTER category:client key: subkey:", self)
        info = self.info
        return go_json({  # a Go map: keys sorted
            "broadcast_address": info.broadcast_address,
            "hostname": info.hostname,
            "http_port": info.http_port,
            "tcp_port": info.tcp_port,
            "version": info.version,
        })

    def _require_peer(self) -> PeerInfo:
        if self.peer_info is None:
            raise FatalClientError("E_INVALID", "client must IDENTIFY")
        return self.peer_info

    @staticmethod
    def _topic_channel(command: str, params: list[str]) -> tuple[str, str]:
        if not params:
            raise FatalClientError("E_INVALID", f"{command} insufficient number of params")
        topic = params[0]
        channel = params[1] if len(params) >= 2 else ""
        if not is_valid_topic_name(topic):
            raise FatalClientError("E_BAD_TOPIC", f"{command} topic name '{topic}' is not valid")
        if channel and not is_valid_channel_name(channel):
            raise FatalClientError("E_BAD_CHANNEL", f"{command} channel name '{channel}' is not valid")
        return topic, channel

    def _register(self, params: list[str], cmd: Command, now: float) -> bytes:
        peer = self._require_peer()
        topic, channel = self._topic_channel("REGISTER", params)
        keys = [Registration("channel", topic, channel)] if channel else []
        keys.append(Registration("topic", topic, ""))
        for key in keys:
            if self.db.add_producer(key, Producer(peer)):
                logger.info("DB: client(%s) REGISTER category:%s key:%s subkey:%s",
                            self, key.category, key.key, key.subkey)
        return _OK

    def _unregister(self, params: list[str], cmd: Command, now: float) -> bytes:
        pid = self._require_peer().id
        topic, channel = self._topic_channel("UNREGISTER", params)
        db = self.db
        if channel:
            key = Registration("channel", topic, channel)
            removed, left = db.remove_producer(key, pid)
            if removed:
                logger.info("DB: client(%s) UNREGISTER category:channel key:%s subkey:%s",
                            self, topic, channel)
            if left == 0 and is_ephemeral(channel):
                db.remove_registration(key)
            return _OK
        # a topic unregistration also drops this nsqd's channels of the topic;
        # nsqd unregisters those first, so anything removed here is unexpected
        for r in db.find_registrations("channel", topic, "*"):
            if db.remove_producer(r, pid)[0]:
                logger.warning("client(%s) unexpected UNREGISTER category:channel key:%s subkey:%s",
                               self, topic, r.subkey)
        key = Registration("topic", topic, "")
        removed, left = db.remove_producer(key, pid)
        if removed:
            logger.info("DB: client(%s) UNREGISTER category:topic key:%s subkey:", self, topic)
        if left == 0 and is_ephemeral(topic):
            db.remove_registration(key)
        return _OK


def peer_address(stream: trio.abc.Stream) -> str:
    """``host:port`` of a socket stream's peer (``"unknown"`` for other streams)."""
    sock = getattr(stream, "socket", None)
    try:
        host, port = sock.getpeername()[:2] if sock is not None else ("unknown", 0)
    except OSError:
        return "unknown"
    return join_host_port(str(host), port)


async def handle_connection(
    stream: trio.abc.Stream,
    db: RegistrationDB,
    info: ServerInfo,
    *,
    remote_address: str | None = None,
    clock: Callable[[], float] = trio.current_time,
) -> None:
    """Serve one nsqd connection until it closes, then drop its registrations.

    Never raises except :class:`trio.Cancelled`: bad input or a broken peer only ends
    this connection. The stream is always closed.
    """
    addr = remote_address or peer_address(stream)
    logger.info("TCP: new client(%s)", addr)
    session = LookupProtocolV1(db, info, addr)
    try:
        while not session.closed:
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                break
            out = session.receive_data(bytes(data) if isinstance(data, bytearray) else data, clock())
            if out:
                await stream.send_all(out)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as err:
        logger.error("client(%s) - %s", addr, err)
    except Exception:  # a bug must not take the daemon down with it
        logger.exception("client(%s) - unexpected error", addr)
    finally:
        session.connection_lost()
        await trio.aclose_forcefully(stream)
