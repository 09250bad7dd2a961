"""RefusalLog: refused connections are reported at most once per interval."""

from __future__ import annotations

import logging

from internal import refusals
from internal.refusals import RefusalLog


def test_one_line_per_interval_with_the_count(monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    now = [1000.0]
    monkeypatch.setattr(refusals.time, "monotonic", lambda: now[0])
    log = RefusalLog("TCP", "--max-connections", interval=10)
    for _ in range(5):
        log.refused(3)
    now[0] += 9.9
    log.refused(3)
    now[0] += 0.2
    log.refused(3)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "TCP: --max-connections 3 reached, refused 1 new connection(s) (reported at most every 10s)",
        "TCP: --max-connections 3 reached, refused 6 new connection(s) (reported at most every 10s)",
    ]
    assert log.total == 7
