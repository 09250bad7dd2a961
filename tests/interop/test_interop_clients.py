"""Third-party NSQ clients from PyPI (pynsq, gnsq) publish and consume through our nsqd."""

from __future__ import annotations

import json
import os
import sys

import pytest
import trio

pytestmark = pytest.mark.interop

CLIENTS = os.path.join(os.path.dirname(__file__), "clients")


async def run_client(script: str, *args: str, timeout: float = 60) -> dict:
    cmd = [sys.executable, os.path.join(CLIENTS, script), *args]
    with trio.fail_after(timeout):
        proc = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith("{")]
    assert lines, f"{script} printed nothing (rc={proc.returncode}):\n{proc.stderr.decode()[-3000:]}"
    return json.loads(lines[-1])


def addr(server) -> str:
    return "%s:%d" % server.tcp_address


@pytest.mark.parametrize("script,prefix", [("pynsq_roundtrip.py", "pynsq"),
                                           ("gnsq_roundtrip.py", "gnsq")])
async def test_third_party_client_round_trip(start_nsqd, script, prefix):
    server = await start_nsqd()
    result = await run_client(script, addr(server), f"interop_{prefix}", "40")
    assert "error" not in result
    assert result["published"] == 40
    assert sorted(result["received"]) == sorted(f"{prefix}-{i}" for i in range(40))
    channel = server.nsqd.topics[f"interop_{prefix}"].channels[prefix]
    # every message FIN'd by the client library
    with trio.fail_after(10):
        while channel.in_flight:
            await trio.sleep(0.05)
    assert channel.depth() == 0


async def test_pynsq_consumes_what_gnsq_publishes(start_nsqd):
    server = await start_nsqd()
    async with trio.open_nursery() as nursery:
        results = {}

        async def pynsq_reader():
            results["pynsq"] = await run_client("pynsq_roundtrip.py", addr(server), "mixed", "20",
                                                "--no-publish")
        nursery.start_soon(pynsq_reader)
        # wait for pynsq's channel to exist so no message is published before it subscribes
        with trio.fail_after(30):
            while "mixed" not in server.nsqd.topics or "pynsq" not in server.nsqd.topics["mixed"].channels:
                await trio.sleep(0.05)
        # gnsq's own consumer subscribes after publishing: its channel is new, so (NSQ
        # semantics) only the existing pynsq channel gets these messages
        gnsq_result = await run_client("gnsq_roundtrip.py", addr(server), "mixed", "20",
                                       "--timeout", "1")
    assert gnsq_result["published"] == 20
    assert sorted(results["pynsq"]["received"]) == sorted(f"gnsq-{i}" for i in range(20))
