"""internal._httpmsg.render: a shared response's cached bytes are the plain rendering."""

from __future__ import annotations

import dataclasses

import pytest

from internal._httpconn import CLOSE, KEEP_ALIVE
from internal._httpmsg import render, text

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
