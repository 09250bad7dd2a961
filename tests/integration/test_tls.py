"""TLS: the IDENTIFY upgrade (tls_v1), --tls-required, client certificates, HTTPS."""

from __future__ import annotations

import logging
import ssl

import httpx
import pytest
import trio
from helpers import RawConn
from transport_helpers import make_tls_files, open_upgrading, trustme

from client.protocol import FrameType, commands
from nsqd import NSQD, Options, transport
from nsqd.tls import TLS_REQUIRED, TLS_REQUIRED_EXCEPT_HTTP, parse_tls_min_version, parse_tls_required


@pytest.fixture
def tls_files(tmp_path):
    return make_tls_files(tmp_path)


async def test_tls_upgrade_publish_and_consume(start_nsqd, tls_files):
    server = await start_nsqd(**tls_files.nsqd_options())
    conn = await open_upgrading(server.tcp_address)
    resp = await conn.negotiate(tls_files.client_context(), tls_v1=True)
    assert resp["tls_v1"] is True
    assert isinstance(conn.stream, trio.SSLStream)
    await conn.pub("tls_topic", b"secret body")
    await conn.sub("tls_topic", "ch", rdy=1)
    msg = await conn.message()
    assert msg.body == b"secret body"
    await conn.send(commands.fin(msg.id))
    client = next(iter(server.nsqd.clients.values()))
    assert client.tls is True
    assert client.tls_version.startswith("TLS1.")
    assert client.tls_cipher_suite


async def test_tls_stats_fields(start_nsqd, tls_files):
    server = await start_nsqd(**tls_files.nsqd_options())
    conn = await open_upgrading(server.tcp_address)
    await conn.negotiate(tls_files.client_context(), tls_v1=True)
    await conn.sub("stats_topic", "ch")
    async with httpx.AsyncClient() as http:
        stats = (await http.get(server.http_url + "/stats?format=json")).json()
    (client,) = stats["topics"][0]["channels"][0]["clients"]
    assert client["tls"] is True
    assert client["tls_version"] in ("TLS1.2", "TLS1.3")
    assert client["tls_cipher_suite"].startswith("TLS_")


async def test_tls_not_offered_without_certificate(nsqd_server):
    conn = await open_upgrading(nsqd_server.tcp_address)
    resp = await conn.negotiate(None, tls_v1=True)
    assert resp["tls_v1"] is False
    await conn.pub("plain", b"x")  # still plain and working


async def test_tls_without_feature_negotiation_stays_plain(start_nsqd, tls_files):
    server = await start_nsqd(**tls_files.nsqd_options())
    conn = await RawConn.open(server.tcp_address)
    assert await conn.identify(feature_negotiation=False, tls_v1=True) == b"OK"
    await conn.pub("plain", b"x")


async def test_tls_wrong_ca_fails_and_daemon_stays_healthy(start_nsqd, tls_files, caplog):
    caplog.set_level(logging.INFO)
    server = await start_nsqd(**tls_files.nsqd_options())
    conn = await open_upgrading(server.tcp_address)
    untrusted = tls_files.client_context(trusted=False)
    with pytest.raises(trio.BrokenResourceError) as info:
        await conn.negotiate(untrusted, tls_v1=True)
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    await conn.aclose()
    # the server drops the half-upgraded connection, and serves others
    with trio.fail_after(10):
        while server.nsqd.clients:
            await trio.sleep(0.01)
    other = await open_upgrading(server.tcp_address)
    await other.negotiate(tls_files.client_context(), tls_v1=True)
    await other.pub("after", b"ok")


async def test_tls_handshake_timeout_closes(start_nsqd, tls_files, monkeypatch):
    monkeypatch.setattr(transport, "HANDSHAKE_TIMEOUT", 0.3)
    server = await start_nsqd(**tls_files.nsqd_options())
    conn = await RawConn.open(server.tcp_address)
    await conn.send(commands.identify({"feature_negotiation": True, "tls_v1": True}))
    assert b'"tls_v1":true' in await conn.response()
    # never start the handshake: nsqd gives up and closes
    assert await conn.closed(timeout=10)


async def test_data_after_identify_before_upgrade_closes(start_nsqd, tls_files):
    server = await start_nsqd(**tls_files.nsqd_options())
    conn = await RawConn.open(server.tcp_address)
    await conn.send(commands.identify({"feature_negotiation": True, "tls_v1": True}) + commands.nop())
    assert b'"tls_v1":true' in await conn.response()
    assert await conn.closed()


# ------------------------------------------------------------------ --tls-required
async def test_tls_required_refuses_plain_commands(start_nsqd, tls_files):
    server = await start_nsqd(**tls_files.nsqd_options(tls_required=TLS_REQUIRED))
    conn = await RawConn.open(server.tcp_address)
    resp = await conn.identify()
    assert resp["tls_v1"] is False  # not asked for
    await conn.send(commands.sub("t", "c"))
    assert await conn.error() == b"E_INVALID cannot SUB in current state (TLS required)"
    assert await conn.closed()


@pytest.mark.parametrize("line,name", [(b"PUB t\n", "PUB"), (b"MPUB t\n", "MPUB"),
                                       (b"AUTH\n", "AUTH"), (b"FOO\n", "FOO")])
async def test_tls_required_refuses_before_identify_and_before_body(start_nsqd, tls_files, line, name):
    server = await start_nsqd(**tls_files.nsqd_options(tls_required=TLS_REQUIRED))
    conn = await RawConn.open(server.tcp_address)
    # the body is never sent: nsqd must answer from the command line alone
    await conn.send(line + b"\x00\x00\x10\x00")
    assert await conn.error() == f"E_INVALID cannot {name} in current state (TLS required)".encode()
    assert await conn.closed()


async def test_tls_required_accepts_tls_client(start_nsqd, tls_files):
    server = await start_nsqd(**tls_files.nsqd_options(tls_required=TLS_REQUIRED))
    conn = await open_upgrading(server.tcp_address)
    await conn.negotiate(tls_files.client_context(), tls_v1=True)
    await conn.pub("required", b"ok")


async def test_tls_required_needs_certificate():
    with pytest.raises(ValueError, match="cannot require TLS client connections without TLS key and cert"):
        Options(tls_required=TLS_REQUIRED)


def test_client_auth_policy_turns_tls_required_on(tls_files):
    opts = Options(tls_cert=tls_files.cert_path, tls_key=tls_files.key_path,
                   tls_client_auth_policy="require-verify")
    assert opts.tls_required == TLS_REQUIRED
    with pytest.raises(ValueError, match="tls-client-auth-policy"):
        Options(tls_cert=tls_files.cert_path, tls_key=tls_files.key_path,
                tls_client_auth_policy="sometimes")


def test_bad_certificate_file_fails_startup(tmp_path):
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(RuntimeError, match="failed to build TLS config"):
        NSQD(Options(tls_cert=missing, tls_key=missing, data_path=str(tmp_path)))


@pytest.mark.parametrize("text,value", [("tcp-https", TLS_REQUIRED_EXCEPT_HTTP), ("TCP-HTTPS", 1),
                                        ("true", TLS_REQUIRED), ("1", TLS_REQUIRED),
                                        ("false", 0), ("0", 0)])
def test_parse_tls_required(text, value):
    assert parse_tls_required(text) == value


def test_parse_tls_min_version():
    assert parse_tls_min_version("tls1.2") == 0x0303
    assert parse_tls_min_version("TLS1.3") == 0x0304
    assert parse_tls_min_version("ssl3.0") == 0x0300
    with pytest.raises(ValueError):
        parse_tls_min_version("tls9")
    with pytest.raises(ValueError):
        parse_tls_required("maybe")


def test_tls_flags_resolve_like_nsq():
    from internal.options import resolve

    opts, _ = resolve(Options, ["--tls-required=tcp-https", "--tls-min-version=tls1.2",
                                "--tls-cert=c", "--tls-key=k"], prog="nsqd")
    assert (opts.tls_required, opts.tls_min_version) == (TLS_REQUIRED_EXCEPT_HTTP, 0x0303)


# ------------------------------------------------------------------ client certificates
async def test_client_certificate_required(start_nsqd, tls_files):
    server = await start_nsqd(**tls_files.nsqd_options(tls_client_auth_policy="require-verify",
                                                       tls_root_ca_file=tls_files.ca_path))
    conn = await open_upgrading(server.tcp_address)
    with pytest.raises((trio.BrokenResourceError, EOFError)):
        await conn.negotiate(tls_files.client_context(), tls_v1=True)
        await conn.pub("t", b"x")  # TLS 1.3: the refusal may only show on first use

    leaf = tls_files.ca.issue_cert("client.example", common_name="client.example")
    conn = await open_upgrading(server.tcp_address)
    await conn.negotiate(tls_files.client_context(client_cert=leaf), tls_v1=True)
    await conn.pub("t", b"x")
    (client,) = server.nsqd.clients.values()
    assert client.tls_info.common_name == "client.example"


async def test_client_certificate_ignored_without_policy(start_nsqd, tls_files):
    # NSQ's default (tls.NoClientCert): a certificate the client offers is not even
    # asked for, so a self-signed one cannot fail the upgrade
    server = await start_nsqd(**tls_files.nsqd_options())
    self_signed = trustme.CA().issue_cert("client.example", common_name="client.example")
    conn = await open_upgrading(server.tcp_address)
    resp = await conn.negotiate(tls_files.client_context(client_cert=self_signed), tls_v1=True)
    assert resp["tls_v1"] is True
    await conn.pub("t", b"x")
    (client,) = server.nsqd.clients.values()
    assert (client.tls, client.tls_info.common_name) == (True, "")


async def test_client_certificate_from_other_ca_refused(start_nsqd, tls_files):
    server = await start_nsqd(**tls_files.nsqd_options(tls_client_auth_policy="require",
                                                       tls_root_ca_file=tls_files.ca_path))
    stranger = trustme.CA().issue_cert("client.example")
    conn = await open_upgrading(server.tcp_address)
    with pytest.raises((trio.BrokenResourceError, EOFError)):
        await conn.negotiate(tls_files.client_context(client_cert=stranger), tls_v1=True)
        await conn.pub("t", b"x")


async def test_tls_min_version(start_nsqd, tls_files):
    server = await start_nsqd(**tls_files.nsqd_options(tls_min_version=0x0304))
    old = tls_files.client_context()
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    conn = await open_upgrading(server.tcp_address)
    with pytest.raises(trio.BrokenResourceError):
        await conn.negotiate(old, tls_v1=True)
    conn = await open_upgrading(server.tcp_address)
    await conn.negotiate(tls_files.client_context(), tls_v1=True)
    assert next(iter(server.nsqd.clients.values())).tls_version == "TLS1.3"


# ------------------------------------------------------------------ HTTPS
async def test_https_listener(start_nsqd, tls_files, caplog):
    caplog.set_level(logging.INFO)
    server = await start_nsqd(**tls_files.nsqd_options())
    assert any(r.getMessage().startswith("HTTPS: listening on ") for r in caplog.records)
    host, port = server.nsqd.bound.https_address
    async with httpx.AsyncClient(verify=tls_files.client_context()) as http:
        resp = await http.post(f"https://{host}:{port}/pub?topic=over_https", content=b"hello")
        assert (resp.status_code, resp.text) == (200, "OK")
        assert (await http.get(f"https://{host}:{port}/ping")).text == "OK"
    assert server.nsqd.topics["over_https"].depth() == 1


async def test_no_https_listener_without_certificate(nsqd_server, caplog):
    assert nsqd_server.nsqd.bound.https_address is None


async def test_plain_http_refused_when_tls_required(start_nsqd, tls_files):
    server = await start_nsqd(**tls_files.nsqd_options(tls_required=TLS_REQUIRED))
    https_port = server.nsqd.bound.https_address[1]
    async with httpx.AsyncClient() as http:
        resp = await http.get(server.http_url + "/ping")
    assert resp.status_code == 403
    assert resp.json() == {"message": "TLS_REQUIRED", "https_port": https_port}
    assert resp.headers["X-NSQ-Content-Type"] == "nsq; version=1.0"


async def test_plain_http_allowed_with_tcp_https(start_nsqd, tls_files):
    server = await start_nsqd(**tls_files.nsqd_options(tls_required=TLS_REQUIRED_EXCEPT_HTTP))
    async with httpx.AsyncClient() as http:
        assert (await http.get(server.http_url + "/ping")).text == "OK"
    conn = await RawConn.open(server.tcp_address)
    await conn.identify()
    await conn.send(commands.pub("t", b"x"))
    ftype, data = await conn.frame()
    assert (ftype, data) == (FrameType.ERROR, b"E_INVALID cannot PUB in current state (TLS required)")
