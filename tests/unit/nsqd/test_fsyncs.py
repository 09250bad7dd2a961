"""Fsyncer: a cycle's fsyncs (native AIO or a worker thread), ack logs after data, errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio

from nsqd import fsyncs


@pytest.fixture(params=["aio", "thread"])
def fsyncer(request: Any, monkeypatch: Any) -> Any:
    if request.param == "thread":
        def no_aio() -> None:
            raise OSError("off")
        monkeypatch.setattr(fsyncs, "_Aio", no_aio)
    f = fsyncs.Fsyncer()
    yield f
    f.close()


async def test_fsyncs_then_jobs(tmp_path: Path, fsyncer: Any) -> None:
    fds = [os.open(tmp_path / f"f{i}", os.O_WRONLY | os.O_CREAT) for i in range(3)]
    ran: list[str] = []
    try:
        for fd in fds:
            os.write(fd, b"data")
        for _ in range(3):  # the context is reused cycle after cycle
            flight = fsyncer.start(fds[:2], fds[2:], [lambda: ran.append("job")])
            with trio.fail_after(10):
                await flight.wait()
        assert ran == ["job"] * 3
        many = fds * 100  # more than one AIO submission
        with trio.fail_after(10):
            await fsyncer.start(many, [], []).wait()
    finally:
        for fd in fds:
            os.close(fd)


async def test_failed_fsync_raises(fsyncer: Any) -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)  # a closed fd: EBADF from the submission or the fsync
    with pytest.raises(OSError), trio.fail_after(10):
        await fsyncer.start([w], [], []).wait()


async def test_failed_job_raises(tmp_path: Path, fsyncer: Any) -> None:
    def job() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"), trio.fail_after(10):
        await fsyncer.start([], [], [job]).wait()


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="native AIO is Linux's")
async def test_linux_uses_native_aio(tmp_path: Path) -> None:
    f = fsyncs.Fsyncer()
    try:
        await f.start([], [], []).wait()
        assert f._aio is not None  # no worker thread per cycle
    finally:
        f.close()
