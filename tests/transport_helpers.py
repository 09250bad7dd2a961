"""Test helpers for TLS, compression and auth: certificates, an upgrading raw connection
and a tiny auth server (trio + the shared HTTP layer)."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

trustme = pytest.importorskip("trustme")  # test extra; skip rather than break collection

from helpers import TIMEOUT, RawConn  # noqa: E402 - after the skip above

from client.compression import CompressedStream, DeflateCodec, SnappyCodec, start_tls  # noqa: E402
from client.protocol import FrameType, commands  # noqa: E402
from internal.http import Request, Response, Router, json_response, serve_http, text  # noqa: E402


@dataclass
class TLSFiles:
    """A CA plus a server certificate for 127.0.0.1/localhost, as files and contexts."""

    ca: trustme.CA
    ca_path: str
    cert_path: str
    key_path: str

    def client_context(self, *, trusted: bool = True, client_cert: trustme.LeafCert | None = None
                       ) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if trusted:
            self.ca.configure_trust(ctx)
        if client_cert is not None:
            client_cert.configure_cert(ctx)
        return ctx

    def nsqd_options(self, **extra: Any) -> dict[str, Any]:
        opts: dict[str, Any] = dict(tls_cert=self.cert_path, tls_key=self.key_path,
                                    https_address="127.0.0.1:0")
        opts.update(extra)
        return opts


def make_tls_files(tmp_path: Path) -> TLSFiles:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca_path = tmp_path / "ca.pem"
    cert_path = tmp_path / "server.pem"
    key_path = tmp_path / "server.key"
    ca.cert_pem.write_to_path(str(ca_path))
    server.private_key_pem.write_to_path(str(key_path))
    with open(cert_path, "wb") as f:
        for blob in server.cert_chain_pems:
            f.write(blob.bytes())
    return TLSFiles(ca, str(ca_path), str(cert_path), str(key_path))


class UpgradingConn(RawConn):
    """A raw V2 connection that performs the IDENTIFY upgrades itself."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        super().__init__(stream)  # type: ignore[arg-type]
        self._raw = b""

    async def _one_frame(self, timeout: float = TIMEOUT) -> tuple[int, bytes]:
        with trio.fail_after(timeout):
            while True:
                if len(self._raw) >= 8:
                    size = int.from_bytes(self._raw[:4], "big")
                    if len(self._raw) >= 4 + size:
                        frame = self._raw[4 : 4 + size]
                        self._raw = self._raw[4 + size :]
                        return int.from_bytes(frame[:4], "big"), frame[4:]
                chunk = await self.stream.receive_some(65536)
                if not chunk:
                    raise EOFError("server closed the connection")
                self._raw += chunk

    async def negotiate(self, ssl_context: ssl.SSLContext | None = None,
                        server_hostname: str = "127.0.0.1", **data: Any) -> dict[str, Any]:
        """IDENTIFY with feature negotiation and perform what the server agreed to."""
        data.setdefault("feature_negotiation", True)
        await self.send(commands.identify(data))
        ftype, body = await self._one_frame()
        if ftype != FrameType.RESPONSE:
            raise AssertionError((ftype, body))
        resp = json.loads(body)
        if resp.get("tls_v1"):
            assert ssl_context is not None
            assert self._raw == b"", "nothing may follow the response before the handshake"
            self.stream = await start_tls(self.stream, ssl_context, server_hostname=server_hostname)
            assert await self._one_frame() == (FrameType.RESPONSE, b"OK")
        codec: Any = None
        if resp.get("snappy"):
            codec = SnappyCodec()
        elif resp.get("deflate"):
            codec = DeflateCodec(resp["deflate_level"])
        if codec is not None:
            leftover, self._raw = self._raw, b""
            self.stream = CompressedStream(self.stream, codec, initial=leftover)
            assert await self._one_frame() == (FrameType.RESPONSE, b"OK")
        self.reader.feed(self._raw)
        self._raw = b""
        return resp


async def open_upgrading(address: tuple[str, int]) -> UpgradingConn:
    stream = await trio.open_tcp_stream(*address)
    await stream.send_all(b"  V2")
    return UpgradingConn(stream)


# ------------------------------------------------------------------ auth server
@dataclass
class AuthServer:
    """A tiny NSQ auth server: secrets map to replies; every query is recorded.

    ``replies[secret]`` is the JSON document (or ``(status, body)``) to answer with.
    ``delay`` makes each answer wait (a slow server).
    """

    replies: dict[str, Any] = field(default_factory=dict)
    queries: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0
    address: tuple[str, int] | None = None

    @property
    def host_port(self) -> str:
        assert self.address is not None
        return f"{self.address[0]}:{self.address[1]}"

    async def handle(self, req: Request) -> Response:
        if req.method == "POST":
            doc = json.loads(req.body)
            args = {k: v[0] for k, v in doc.items()}
            args["_method"] = "POST"
        else:
            args = {k: v[0] for k, v in req.query.items()}
            args["_method"] = "GET"
        args["_accept"] = req.headers.get("accept", "")
        self.queries.append(args)
        if self.delay:
            await trio.sleep(self.delay)
        reply = self.replies.get(args.get("secret", ""))
        if reply is None:
            return text("forbidden", 403)
        if isinstance(reply, tuple):
            status, body = reply
            return Response(status, body.encode(), "application/json")
        return json_response(reply)

    async def run(self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        router = Router()
        router.add(("GET", "POST"), "/auth", self.handle)
        await serve_http(router, "127.0.0.1", 0, name="AUTH", idle_timeout=None,
                         task_status=task_status)


async def start_auth_server(nursery: trio.Nursery, **kwargs: Any) -> AuthServer:
    server = AuthServer(**kwargs)
    server.address = await nursery.start(server.run)
    return server


def grant(topic: str = ".*", channels: tuple[str, ...] = (".*",),
          permissions: tuple[str, ...] = ("subscribe", "publish")) -> dict[str, Any]:
    return {"topic": topic, "channels": list(channels), "permissions": list(permissions)}
