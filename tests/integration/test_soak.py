"""A short run of scripts/soak.py: real nsqlookupd + nsqd processes under kill -9, a stuck
client and garbage connections; no acknowledged message may be lost, no daemon may die."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
async def test_soak_20s_loses_nothing() -> None:
    cmd = [sys.executable, str(ROOT / "scripts" / "soak.py"), "--seconds", "20", "--kill-every", "6",
           "--publishers", "3", "--consumers", "2", "--rate", "100", "--garbage-rate", "8"]
    result = await trio.run_process(cmd, cwd=ROOT, capture_stdout=True, capture_stderr=True,
                                    check=False)
    out = result.stdout.decode("utf-8", "replace")
    report = out[out.find("\nsoak: "):] if "\nsoak: " in out else out[-6000:]
    assert result.returncode == 0, report + result.stderr.decode("utf-8", "replace")[-4000:]
    assert "\nlost 0\n" in out, report
    assert "kill -9 " in report and "(kill -9 0)" not in report, report  # the kills happened
