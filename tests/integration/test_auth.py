"""AUTH against an auth server (NSQ's --auth-http-address), over TCP and HTTP /pub."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket

import httpx
import pytest
import trio
from helpers import RawConn
from transport_helpers import grant, make_tls_files, open_upgrading, start_auth_server

from client.protocol import commands
from nsqd.auth import AuthCache, AuthError, parse_auth_response

SECRET = "s3cret"


def _reply(*grants, ttl=3600, identity="alice", identity_url="https://id.example/alice"):
    return {"ttl": ttl, "identity": identity, "identity_url": identity_url,
            "authorizations": list(grants)}


async def _authed(server, secret=SECRET, **identify):
    conn = await RawConn.open(server.tcp_address)
    resp = await conn.identify(**identify)
    assert resp["auth_required"] is True
    await conn.send(commands.auth(secret))
    return conn


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: connection refused
    return port


@pytest.fixture
async def authd(nursery):
    return await start_auth_server(nursery, replies={SECRET: _reply(grant())})


async def test_auth_accepted(start_nsqd, authd):
    server = await start_nsqd(auth_http_addresses=[authd.host_port])
    conn = await _authed(server)
    resp = json.loads(await conn.response())
    assert resp == {"identity": "alice", "identity_url": "https://id.example/alice",
                    "permission_count": 1}
    (query,) = authd.queries
    assert query == {"remote_ip": "127.0.0.1", "tls": "false", "secret": SECRET, "common_name": "",
                     "_method": "GET", "_accept": "application/vnd.nsq; version=1.0"}
    await conn.pub("granted", b"x")
    await conn.sub("granted", "ch", rdy=1)
    assert (await conn.message()).body == b"x"
    client = next(iter(server.nsqd.clients.values()))
    assert (client.authed, client.auth_identity) == (True, "alice")


async def test_auth_stats(start_nsqd, authd):
    server = await start_nsqd(auth_http_addresses=[authd.host_port])
    conn = await _authed(server)
    await conn.response()
    await conn.sub("stats_auth", "ch")
    async with httpx.AsyncClient() as http:
        stats = (await http.get(server.http_url + "/stats?format=json")).json()
    (entry,) = stats["topics"][0]["channels"][0]["clients"]
    assert (entry["authed"], entry["auth_identity"], entry["auth_identity_url"]) == \
        (True, "alice", "https://id.example/alice")


async def test_auth_post_method(start_nsqd, authd):
    server = await start_nsqd(auth_http_addresses=[authd.host_port], auth_http_request_method="post")
    conn = await _authed(server)
    await conn.response()
    assert authd.queries[0]["_method"] == "POST"
    assert authd.queries[0]["secret"] == SECRET


async def test_auth_full_url_address(start_nsqd, authd):
    server = await start_nsqd(auth_http_addresses=[f"http://{authd.host_port}/auth"])
    conn = await _authed(server)
    assert json.loads(await conn.response())["identity"] == "alice"


@pytest.mark.parametrize("line,name", [(commands.pub("t", b"x"), "PUB"),
                                       (commands.mpub("t", [b"x"]), "MPUB"),
                                       (commands.dpub("t", 10, b"x"), "DPUB"),
                                       (commands.sub("t", "c"), "SUB")])
async def test_command_before_auth(start_nsqd, authd, line, name):
    server = await start_nsqd(auth_http_addresses=[authd.host_port])
    conn = await RawConn.open(server.tcp_address)
    await conn.identify()
    await conn.send(line)
    assert await conn.error() == f"E_AUTH_FIRST AUTH required before {name}".encode()
    assert await conn.closed()


async def test_auth_denied_by_server(start_nsqd, authd, caplog):
    caplog.set_level(logging.WARNING)
    server = await start_nsqd(auth_http_addresses=[authd.host_port])
    conn = await _authed(server, secret="wrong")
    assert await conn.error() == b"E_AUTH_FAILED AUTH failed"
    assert await conn.closed()
    assert any("AUTH failed" in r.getMessage() and "403" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("method", ["get", "post"])
async def test_auth_huge_secret_fails_cleanly(start_nsqd, authd, method):
    # 4 MiB is within --max-body-size (as in NSQ); as a GET query it is no valid URL
    server = await start_nsqd(auth_http_addresses=[authd.host_port],
                              auth_http_request_method=method)
    conn = await _authed(server, secret="s" * (4 * 1024 * 1024))
    assert await conn.error() == b"E_AUTH_FAILED AUTH failed"
    assert await conn.closed()
    other = await _authed(server)
    assert json.loads(await other.response())["identity"] == "alice"


async def test_auth_without_authorizations(start_nsqd, authd):
    authd.replies["empty"] = _reply()
    server = await start_nsqd(auth_http_addresses=[authd.host_port])
    conn = await _authed(server, secret="empty")
    assert await conn.error() == b"E_UNAUTHORIZED AUTH no authorizations found"
    assert await conn.closed()


@pytest.mark.parametrize("reply", [
    {"ttl": 0, "authorizations": [grant()]},
    {"ttl": 60, "authorizations": [grant(permissions=("admin",))]},
    {"ttl": 60, "authorizations": [grant(topic="(")]},
    {"ttl": 60, "authorizations": [grant(channels=("[",))]},
])
async def test_auth_invalid_reply(start_nsqd, authd, reply):
    authd.replies["odd"] = reply
    server = await start_nsqd(auth_http_addresses=[authd.host_port])
    conn = await _authed(server, secret="odd")
    assert await conn.error() == b"E_AUTH_FAILED AUTH failed"


async def test_auth_twice(start_nsqd, authd):
    server = await start_nsqd(auth_http_addresses=[authd.host_port])
    conn = await _authed(server)
    await conn.response()
    await conn.send(commands.auth(SECRET))
    assert await conn.error() == b"E_INVALID AUTH already set"


async def test_auth_disabled(nsqd_server):
    conn = await RawConn.open(nsqd_server.tcp_address)
    resp = await conn.identify()
    assert resp["auth_required"] is False
    await conn.send(commands.auth(SECRET))
    assert await conn.error() == b"E_AUTH_DISABLED AUTH disabled"


async def test_permissions_enforced(start_nsqd, authd):
    authd.replies["limited"] = _reply(
        grant(topic="^pub_", permissions=("publish",)),
        grant(topic="^sub_", channels=("^allowed$",), permissions=("subscribe",)))
    server = await start_nsqd(auth_http_addresses=[authd.host_port])

    async def attempt(line):
        conn = await _authed(server, secret="limited")
        await conn.response()
        await conn.send(line)
        return conn

    conn = await attempt(commands.pub("pub_ok", b"x"))
    assert await conn.response() == b"OK"
    conn = await attempt(commands.sub("sub_x", "allowed"))
    assert await conn.response() == b"OK"
    for line, err in [
        (commands.pub("sub_x", b"x"), b'E_UNAUTHORIZED AUTH failed for PUB on "sub_x" ""'),
        (commands.dpub("other", 5, b"x"), b'E_UNAUTHORIZED AUTH failed for DPUB on "other" ""'),
        (commands.sub("pub_ok", "allowed"), b'E_UNAUTHORIZED AUTH failed for SUB on "pub_ok" "allowed"'),
        (commands.sub("sub_x", "other"), b'E_UNAUTHORIZED AUTH failed for SUB on "sub_x" "other"'),
    ]:
        conn = await attempt(line)
        assert await conn.error() == err
        assert await conn.closed()


async def test_mpub_refused_before_its_body(start_nsqd, authd):
    authd.replies["ro"] = _reply(grant(permissions=("subscribe",)))
    server = await start_nsqd(auth_http_addresses=[authd.host_port])
    conn = await _authed(server, secret="ro")
    await conn.response()
    await conn.send(b"MPUB t\n\x00\x10\x00\x00")  # 1 MiB announced, never sent
    assert await conn.error() == b'E_UNAUTHORIZED AUTH failed for MPUB on "t" ""'
    assert await conn.closed()


async def _expire(server):
    (client,) = server.nsqd.clients.values()
    client.auth_state = dataclasses.replace(client.auth_state, expires=0.0)


async def test_expired_authorization_is_fetched_again(start_nsqd, authd):
    server = await start_nsqd(auth_http_addresses=[authd.host_port])
    conn = await _authed(server)
    await conn.response()
    await _expire(server)
    authd.replies[SECRET] = _reply(grant(), identity="alice2")
    await conn.pub("t", b"x")
    assert len(authd.queries) == 2
    (client,) = server.nsqd.clients.values()
    assert client.auth_identity == "alice2"
    await conn.pub("t", b"y")  # fresh again: no third query
    assert len(authd.queries) == 2


async def test_expired_authorization_revoked(start_nsqd, authd):
    server = await start_nsqd(auth_http_addresses=[authd.host_port])
    conn = await _authed(server)
    await conn.response()
    await _expire(server)
    authd.replies[SECRET] = _reply(grant(topic="^elsewhere$"))
    await conn.send(commands.pub("t", b"x"))
    assert await conn.error() == b'E_UNAUTHORIZED AUTH failed for PUB on "t" ""'


async def test_expired_authorization_server_gone(start_nsqd, authd):
    server = await start_nsqd(auth_http_addresses=[authd.host_port])
    conn = await _authed(server)
    await conn.response()
    await _expire(server)
    del authd.replies[SECRET]
    await conn.send(commands.pub("t", b"x"))
    assert await conn.error() == b"E_AUTH_FAILED AUTH failed"


async def test_auth_server_down(start_nsqd):
    server = await start_nsqd(auth_http_addresses=[f"127.0.0.1:{_free_port()}"])
    with trio.fail_after(5):
        conn = await _authed(server)
        assert await conn.error() == b"E_AUTH_FAILED AUTH failed"
    async with httpx.AsyncClient() as http:
        assert (await http.get(server.http_url + "/ping")).text == "OK"


async def test_auth_server_slow_times_out_daemon_healthy(start_nsqd, nursery):
    slow = await start_auth_server(nursery, replies={SECRET: _reply(grant())}, delay=30)
    server = await start_nsqd(auth_http_addresses=[slow.host_port], http_client_connect_timeout=0.2,
                              http_client_request_timeout=0.3)
    start = trio.current_time()
    conn = await _authed(server)
    # meanwhile the daemon serves everyone else
    other = await RawConn.open(server.tcp_address)
    await other.identify()
    async with httpx.AsyncClient() as http:
        assert (await http.get(server.http_url + "/ping")).text == "OK"
    assert await conn.error() == b"E_AUTH_FAILED AUTH failed"
    assert trio.current_time() - start < 3


async def test_second_auth_server_used_when_first_is_down(start_nsqd, authd):
    server = await start_nsqd(auth_http_addresses=[f"127.0.0.1:{_free_port()}", authd.host_port])
    for _ in range(4):  # whichever the rotation starts with
        conn = await _authed(server)
        assert json.loads(await conn.response())["identity"] == "alice"


async def test_auth_over_tls_sends_common_name(start_nsqd, authd, tmp_path):
    tls = make_tls_files(tmp_path)
    # a client certificate is only asked for with a --tls-client-auth-policy
    server = await start_nsqd(**tls.nsqd_options(tls_root_ca_file=tls.ca_path,
                                                 tls_client_auth_policy="require-verify"),
                              auth_http_addresses=[authd.host_port])
    leaf = tls.ca.issue_cert("worker.example", common_name="worker.example")
    conn = await open_upgrading(server.tcp_address)
    resp = await conn.negotiate(tls.client_context(client_cert=leaf), tls_v1=True, snappy=True)
    assert resp["auth_required"] is True
    await conn.send(commands.auth(SECRET))
    assert json.loads(await conn.response())["permission_count"] == 1
    assert (authd.queries[0]["tls"], authd.queries[0]["common_name"]) == ("true", "worker.example")


# ------------------------------------------------------------------ HTTP publishing
async def test_http_pub_requires_secret(start_nsqd, authd):
    authd.replies["ro"] = _reply(grant(permissions=("subscribe",)))
    server = await start_nsqd(auth_http_addresses=[authd.host_port])
    url = server.http_url
    async with httpx.AsyncClient() as http:
        resp = await http.post(url + "/pub?topic=h", content=b"x")
        assert (resp.status_code, resp.json()) == (401, {"message": "AUTH_REQUIRED"})
        resp = await http.post(url + "/pub?topic=h", content=b"x",
                               headers={"Authorization": "Bearer wrong"})
        assert (resp.status_code, resp.json()) == (401, {"message": "AUTH_FAILED"})
        resp = await http.post(url + "/mpub?topic=h", content=b"x\ny",
                               headers={"Authorization": "Bearer ro"})
        assert (resp.status_code, resp.json()) == (403, {"message": "UNAUTHORIZED"})
        for _ in range(3):
            resp = await http.post(url + "/pub?topic=h", content=b"x",
                                   headers={"Authorization": f"Bearer {SECRET}"})
            assert (resp.status_code, resp.text) == (200, "OK")
        resp = await http.post(url + "/mpub?topic=h", content=b"a\nb",
                               headers={"Authorization": f"Bearer {SECRET}"})
        assert resp.status_code == 200
        # bad arguments are still reported as without auth
        resp = await http.post(url + "/pub", content=b"x")
        assert resp.json() == {"message": "MISSING_ARG_TOPIC"}
    assert server.nsqd.topics["h"].depth() == 5
    # the granted secret was asked once, then served from the cache
    assert [q["secret"] for q in authd.queries].count(SECRET) == 1


async def test_http_pub_unchecked_without_auth(start_nsqd):
    server = await start_nsqd()
    async with httpx.AsyncClient() as http:
        resp = await http.post(server.http_url + "/pub?topic=open", content=b"x")
    assert resp.status_code == 200


# ------------------------------------------------------------------ pure parts
def test_parse_auth_response_regexes_match_anywhere():
    state = parse_auth_response(json.dumps(_reply(grant(topic="orders", channels=("arch",)))).encode(),
                                now=1000.0)
    assert state.expires == 1000.0 + 3600
    assert state.is_expired(now=1000.0 + 3601) and not state.is_expired(now=1000.0 + 3599)
    assert state.is_allowed("new_orders_v2", "archive") is True
    # as in NSQ, publishing checks the channel regexes against "" too
    assert state.is_allowed("new_orders_v2", "") is False
    state = parse_auth_response(json.dumps(_reply(grant(topic="orders"))).encode())
    assert state.is_allowed("new_orders_v2", "") is True
    assert state.is_allowed("payments", "") is False


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"ttl": "1"}', b'{"ttl": 5, "identity": 3}',
                                  b'{"ttl": -1}'])
def test_parse_auth_response_rejects(body):
    with pytest.raises(AuthError):
        parse_auth_response(body)


def test_auth_cache_bounded_and_expiring():
    cache = AuthCache(max_entries=2)
    fresh = parse_auth_response(json.dumps(_reply(grant())).encode())
    stale = dataclasses.replace(fresh, expires=0.0)
    cache.put(("a",), stale)
    assert cache.get(("a",)) is None and len(cache) == 0
    cache.put(("a",), fresh)
    cache.put(("b",), fresh)
    cache.put(("c",), fresh)
    assert len(cache) == 2 and cache.get(("a",)) is None and cache.get(("c",)) is fresh
