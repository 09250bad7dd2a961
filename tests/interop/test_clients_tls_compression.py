"""pynsq and gnsq (from PyPI) through our nsqd with TLS, snappy, deflate and AUTH."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
import trio
from transport_helpers import grant, make_tls_files, start_auth_server

from nsqd.tls import TLS_REQUIRED

pytestmark = pytest.mark.interop
pytest.importorskip("snappy")

SCRIPT = os.path.join(os.path.dirname(__file__), "clients", "transport_roundtrip.py")
COUNT = 20


async def run_client(lib: str, server, topic: str, *args: str, timeout: float = 60) -> dict:
    address = "%s:%d" % server.tcp_address
    cmd = [sys.executable, SCRIPT, lib, address, topic, str(COUNT), *args]
    with trio.fail_after(timeout):
        proc = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith("{")]
    assert lines, f"{lib} printed nothing (rc={proc.returncode}):\n{proc.stderr.decode()[-3000:]}"
    return json.loads(lines[-1])


@pytest.fixture
def tls_files(tmp_path):
    return make_tls_files(tmp_path)


@pytest.mark.parametrize("lib", ["pynsq", "gnsq"])
@pytest.mark.parametrize("features", ["tls", "snappy", "deflate", "tls+snappy", "tls+deflate"])
async def test_client_round_trip(start_nsqd, tls_files, caplog, lib, features):
    caplog.set_level(logging.INFO, logger="nsqd.transport")
    server = await start_nsqd(**tls_files.nsqd_options(), http_address="")
    args: list[str] = []
    if "tls" in features:
        args += ["--tls-ca", tls_files.ca_path]
    if "snappy" in features:
        args.append("--snappy")
    if "deflate" in features:
        args += ["--deflate", "--deflate-level", "3"]
    result = await run_client(lib, server, f"{lib}_{features.replace('+', '_')}", *args)
    assert "error" not in result, result
    assert result["published"] == COUNT
    assert sorted(result["received"]) == sorted(f"{lib}-{i}" for i in range(COUNT))
    # every connection (publisher and consumer) upgraded as asked, TLS first
    upgrades: dict[str, list[str]] = {}
    for record in caplog.records:
        head, sep, layer = record.getMessage().partition(" upgrading connection to ")
        if sep:
            upgrades.setdefault(head, []).append(layer)
    expected = [name for name in ("TLS", "snappy", "deflate (level 3)")
                if name.split(" ")[0].lower() in features]
    assert list(upgrades.values()) == [expected, expected], upgrades


@pytest.mark.parametrize("lib", ["pynsq", "gnsq"])
async def test_client_with_tls_required(start_nsqd, tls_files, lib):
    server = await start_nsqd(**tls_files.nsqd_options(tls_required=TLS_REQUIRED), http_address="")
    result = await run_client(lib, server, f"{lib}_required", "--tls-ca", tls_files.ca_path)
    assert "error" not in result, result
    assert len(result["received"]) == COUNT


@pytest.mark.parametrize("lib", ["pynsq", "gnsq"])
async def test_plain_client_against_tls_required(start_nsqd, tls_files, lib):
    server = await start_nsqd(**tls_files.nsqd_options(tls_required=TLS_REQUIRED), http_address="")
    result = await run_client(lib, server, f"{lib}_refused", "--timeout", "2")
    assert result["received"] == []
    assert server.nsqd.topics.get(f"{lib}_refused") is None


@pytest.mark.parametrize("lib", ["pynsq", "gnsq"])
async def test_client_with_wrong_ca(start_nsqd, tls_files, tmp_path, lib):
    server = await start_nsqd(**tls_files.nsqd_options(), http_address="")
    (tmp_path / "other").mkdir()
    other = make_tls_files(tmp_path / "other")
    result = await run_client(lib, server, f"{lib}_wrong_ca", "--tls-ca", other.ca_path,
                              "--timeout", "2")
    assert result["received"] == []
    assert server.nsqd.topics.get(f"{lib}_wrong_ca") is None


@pytest.mark.parametrize("lib", ["pynsq", "gnsq"])
async def test_client_auth(start_nsqd, nursery, tls_files, lib):
    authd = await start_auth_server(nursery, replies={"good": {
        "ttl": 60, "identity": lib, "authorizations": [grant()]}})
    server = await start_nsqd(**tls_files.nsqd_options(), auth_http_addresses=[authd.host_port],
                              http_address="")
    result = await run_client(lib, server, f"{lib}_auth", "--tls-ca", tls_files.ca_path,
                              "--snappy", "--auth-secret", "good")
    assert "error" not in result, result
    assert len(result["received"]) == COUNT
    assert {q["tls"] for q in authd.queries} == {"true"}


@pytest.mark.parametrize("lib", ["pynsq", "gnsq"])
async def test_client_auth_denied(start_nsqd, nursery, lib):
    authd = await start_auth_server(nursery)
    server = await start_nsqd(auth_http_addresses=[authd.host_port], http_address="")
    result = await run_client(lib, server, f"{lib}_denied", "--auth-secret", "bad", "--timeout", "2")
    assert result["received"] == []
    assert server.nsqd.topics.get(f"{lib}_denied") is None
    assert authd.queries


def test_script_is_importable_without_running():
    # a syntax error in the client script would otherwise show up as "printed nothing"
    subprocess.run([sys.executable, "-m", "py_compile", SCRIPT], check=True)
