"""README.md's examples, run as they are written against a real nsqd, so the README cannot rot.

The quick start (its curl publish and its ``python -c`` consumer) runs first, then every
```` ```python ```` block, in README order, each in a fresh interpreter, with NSQ's default
addresses (127.0.0.1:4150 / :4151) replaced by the test nsqd's. Blocks run in order on the
same nsqd, as a reader would run them: the Consumer example reads what the Producer
examples published. The worker example (``ServiceGroup`` with ``DEFAULT_STOP_SIGNALS``)
runs until it is sent SIGTERM, after it processed orders published to it.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from client import Consumer

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
TIMEOUT = 60.0
TCP, HTTP = "127.0.0.1:4150", "127.0.0.1:4151"
PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```$", README, re.S | re.M)
SERVICE_MARK = "DEFAULT_STOP_SIGNALS"


def _localise(code: str, tcp: str, http: str) -> str:
    assert TCP in code or HTTP in code, "an example that does not talk to nsqd?"
    return code.replace(TCP, tcp).replace(HTTP, http)


async def _run(code: str) -> str:
    """Run ``code`` in a fresh interpreter from the repository root; its stdout."""
    with trio.fail_after(TIMEOUT):
        done = await trio.run_process([sys.executable, "-c", code], cwd=ROOT, check=False,
                                      capture_stdout=True, capture_stderr=True)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def test_readme_layout() -> None:
    head = README.splitlines()[:40]
    assert any(line.startswith("./scripts/run") for line in head)
    assert any(line.startswith("./scripts/test") for line in head)
    assert len(PYTHON_BLOCKS) >= 5
    text = "\n".join(PYTHON_BLOCKS)
    for needed in ("batch=True", "multi_publish", "deferred_publish", "HTTPProducer",
                   ".run(handle)", "NSQQueue", "NSQPusher", "ServiceGroup", SERVICE_MARK):
        assert needed in text, needed


async def test_quick_start(start_nsqd: Callable[..., Any]) -> None:
    nsqd = await start_nsqd()
    tcp, http = "%s:%d" % nsqd.tcp_address, "%s:%d" % nsqd.http_address
    quick = re.search(r"^```sh\n(curl .*?)^```$", README, re.S | re.M)
    assert quick is not None
    curl_line, _, rest = quick.group(1).partition("\n")
    argv = shlex.split(curl_line.replace(HTTP, http))
    assert argv[:2] == ["curl", "-d"]
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        r = await client.post(argv[3], content=argv[2].encode())
    assert r.status_code == 200 and r.text == "OK"
    code = re.search(r'python -c "\n(.*?)"\n', rest, re.S)
    assert code is not None
    assert await _run(_localise(code.group(1), tcp, http)) == "b'hello world'\n"


async def test_python_examples(start_nsqd: Callable[..., Any], nursery: trio.Nursery) -> None:
    nsqd = await start_nsqd()
    tcp, http = "%s:%d" % nsqd.tcp_address, "%s:%d" % nsqd.http_address
    services = [b for b in PYTHON_BLOCKS if SERVICE_MARK in b]
    assert len(services) == 1
    for block in PYTHON_BLOCKS:
        code = _localise(block, tcp, http)
        if block is services[0]:
            await _run_worker(code, tcp, http, nursery)
            continue
        out = await _run(code)
        if ".run(handle)" in block:  # the Consumer example prints three messages
            assert len(out.splitlines()) == 3, out
            assert all(" attempt " in line for line in out.splitlines()), out


async def _run_worker(code: str, tcp: str, http: str, nursery: trio.Nursery) -> None:
    """Start the worker, feed it orders, check its results, SIGTERM it: a clean exit."""
    orders = [b"order %d" % i for i in range(5)]
    async with Consumer("results", "check", nsqd_tcp_addresses=[tcp]) as results, \
            httpx.AsyncClient(base_url=f"http://{http}", timeout=TIMEOUT) as client:
        proc: trio.Process = await nursery.start(partial(
            trio.run_process, [sys.executable, "-c", code], cwd=ROOT, check=False,
            stdout=subprocess.DEVNULL))
        for body in orders:
            assert (await client.post("/pub", params={"topic": "orders"}, content=body)).status_code == 200
        got: list[bytes] = []
        with trio.fail_after(TIMEOUT):
            async for message in results:
                got.append(message.body)
                await message.finish()
                if len(got) == len(orders):
                    break
        assert sorted(got) == sorted(body.upper() for body in orders)

        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(TIMEOUT):
            await proc.wait()
        assert proc.returncode == 0
        stats = (await client.get("/stats", params={"format": "json", "topic": "orders"})).json()
        channel = stats["topics"][0]["channels"][0]
        assert (channel["channel_name"], channel["depth"], channel["in_flight_count"],
                channel["client_count"]) == ("workers", 0, 0, 0)
