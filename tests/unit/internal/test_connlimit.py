"""ConnectionLimit: connections beyond the cap are refused, and logged at most once per interval."""

from __future__ import annotations

import logging

import trio
import trio.testing

from internal.connlimit import LOG_INTERVAL, ConnectionLimit

logger = logging.getLogger("test.connlimit")


async def test_admits_up_to_the_cap_and_logs_refusals_once_per_interval(caplog, autojump_clock):
    caplog.set_level(logging.WARNING, logger="test.connlimit")
    limit = ConnectionLimit("TCP", 3, logger)
    assert [limit.admit() for _ in range(3)] == [True, True, True]
    for _ in range(5):
        assert not limit.admit()
    await trio.sleep(LOG_INTERVAL - 0.1)
    assert not limit.admit()
    await trio.sleep(0.2)
    assert not limit.admit()
    assert [r.getMessage() for r in caplog.records] == [
        "TCP: 1 connection(s) refused: max-connections (3) reached",
        "TCP: 6 connection(s) refused: max-connections (3) reached",
    ]
    limit.release()
    assert limit.open == 2
    assert limit.admit()


async def test_zero_means_no_limit():
    limit = ConnectionLimit("HTTP", 0, logger)
    assert all(limit.admit() for _ in range(100))
