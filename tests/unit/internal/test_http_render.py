"""internal._httpmsg.render: a shared response's cached bytes are the plain rendering."""

from __future__ import annotations

import dataclasses
import email.utils

import pytest

from internal._httpconn import CLOSE, KEEP_ALIVE
from internal import _httpmsg
from internal._httpmsg import http_date, render, text

DATES = ["Fri, 04 Dec 2026 12:00:0%d GMT" % i for i in range(10)]


@pytest.mark.parametrize("head_only", [False, True])
def test_shared_response_renders_as_a_fresh_one(head_only: bool) -> None:
    shared = dataclasses.replace(text("OK"), rendered={})
    for date in DATES + DATES[:3]:
        for connection in ("", KEEP_ALIVE, CLOSE):
            got = render(shared, date, connection, head_only)
            assert got == render(text("OK"), date, connection, head_only)
    assert shared.rendered is not None and len(shared.rendered) <= 8  # old dates dropped


def test_shared_response_bytes_are_reused() -> None:
    shared = dataclasses.replace(text("OK"), rendered={})
    first = render(shared, DATES[0], "", False)
    assert render(shared, DATES[0], "", False) is first
    assert render(shared, DATES[1], "", False) is not first


def test_date_follows_the_clock_second_by_second(monkeypatch: pytest.MonkeyPatch) -> None:
    # a cached value per second; a clock stepped back is followed too
    for now in (1_800_000_000.2, 1_800_000_000.9, 1_800_000_001.0, 1_800_000_003.5,
                1_799_999_999.99, 1_800_000_000.0):
        monkeypatch.setattr(_httpmsg, "_now", lambda now=now: now)
        assert http_date() == email.utils.formatdate(int(now), usegmt=True)
