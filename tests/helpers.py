"""Test helpers: a raw protocol-V2 connection built on the codec, for poking nsqd;
addresses as ``host:port`` strings, and one where nothing listens."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from client.protocol import HEARTBEAT, MAGIC_V2, FrameReader, FrameType, RawMessage, commands, decode_message

TIMEOUT = 10.0


def addr(hostport: tuple[str, int]) -> str:
    """``host:port`` of a bound address."""
    return f"{hostport[0]}:{hostport[1]}"


async def wait_for(check: Callable[[], Awaitable[bool]], what: str = "", timeout: float = 20.0) -> None:
    """Poll ``check`` until true, for state another daemon owns (there is no event to
    await); ``what`` names it for the reader."""
    with trio.fail_after(timeout):
        while not await check():
            await trio.sleep(0.02)


def dead_address() -> str:
    """A loopback address where nothing listens (bound then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return addr(s.getsockname())


class RawConn:
    """A bare V2 connection: send command bytes, read frames (heartbeats answered)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = FrameReader()
        self._frames: list[tuple[int, bytes]] = []

    @classmethod
    async def open(cls, address: tuple[str, int], *, magic: bytes = MAGIC_V2) -> RawConn:
        stream = await trio.open_tcp_stream(*address)
        conn = cls(stream)
        if magic:
            await stream.send_all(magic)
        return conn

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def frame(self, timeout: float = TIMEOUT, *, skip_heartbeats: bool = True) -> tuple[int, bytes]:
        """The next frame; raises trio.TooSlowError, or EOFError when the server closed."""
        with trio.fail_after(timeout):
            while True:
                while self._frames:
                    ftype, data = self._frames.pop(0)
                    if skip_heartbeats and ftype == FrameType.RESPONSE and data == HEARTBEAT:
                        await self.send(commands.nop())
                        continue
                    return ftype, data
                chunk = await self.stream.receive_some(65536)
                if not chunk:
                    raise EOFError("server closed the connection")
                self.reader.feed(chunk)
                self._frames.extend((f.type, f.data) for f in self.reader.frames())

    async def response(self, timeout: float = TIMEOUT) -> bytes:
        ftype, data = await self.frame(timeout)
        assert ftype == FrameType.RESPONSE, (ftype, data)
        return data

    async def error(self, timeout: float = TIMEOUT) -> bytes:
        ftype, data = await self.frame(timeout)
        assert ftype == FrameType.ERROR, (ftype, data)
        return data

    async def message(self, timeout: float = TIMEOUT) -> RawMessage:
        ftype, data = await self.frame(timeout)
        assert ftype == FrameType.MESSAGE, (ftype, data)
        return decode_message(data)

    async def closed(self, timeout: float = TIMEOUT) -> bool:
        """True once the server closes the connection (frames before that are dropped)."""
        try:
            while True:
                await self.frame(timeout)
        except (EOFError, trio.BrokenResourceError):
            return True

    async def identify(self, **data: Any) -> Any:
        data.setdefault("feature_negotiation", True)
        await self.send(commands.identify(data))
        resp = await self.response()
        return json.loads(resp) if data["feature_negotiation"] else resp

    async def sub(self, topic: str, channel: str, rdy: int | None = None) -> None:
        await self.send(commands.sub(topic, channel))
        assert await self.response() == b"OK"
        if rdy is not None:
            await self.send(commands.rdy(rdy))

    async def pub(self, topic: str, body: bytes) -> None:
        await self.send(commands.pub(topic, body))
        assert await self.response() == b"OK"

    async def aclose(self) -> None:
        await self.stream.aclose()


def tls_client_hello() -> bytes:
    """The first bytes a TLS client sends (its ClientHello), e.g. to a plain HTTP port."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        return outgoing.read()
    raise AssertionError("handshake completed without a server")
