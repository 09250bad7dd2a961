"""InFlightTable: per-consumer records in deadline order (FIN, TOUCH, timeouts)."""

from __future__ import annotations

import pytest

from nsqd.errors import ChannelError
from nsqd.in_flight import InFlightTable, Record


def rec(i: int, deadline: float) -> Record:
    return (b"%016d" % i, b"body-%d" % i, 1000 + i, 1, deadline)


def table_with(*entries: tuple[int, int, float]) -> InFlightTable:
    """A table holding ``(consumer, message number, deadline)`` entries, in that order."""
    table = InFlightTable()
    for consumer, i, deadline in entries:
        r = rec(i, deadline)
        table.add_consumer(consumer)[r[0]] = r
    return table


def test_counts_and_lookups_span_every_consumer() -> None:
    table = table_with((1, 1, 10.0), (2, 2, 10.0), (2, 3, 11.0))
    table.add_consumer(3)
    assert len(table) == 3 and table
    assert rec(3, 0)[0] in table and rec(4, 0)[0] not in table
    table.clear()
    assert len(table) == 0 and not table and set(table.groups) == {1, 2, 3}


def test_take_tells_a_foreign_id_from_one_not_in_flight() -> None:
    table = table_with((1, 1, 10.0), (2, 2, 10.0))
    assert table.take(1, rec(1, 0)[0]) == rec(1, 10.0)
    with pytest.raises(ChannelError, match="ID not in flight"):
        table.take(1, rec(1, 0)[0])  # twice
    with pytest.raises(ChannelError, match="client does not own message"):
        table.take(1, rec(2, 0)[0])
    with pytest.raises(ChannelError, match="ID not in flight"):
        table.take(9, rec(5, 0)[0])  # a consumer the table never saw
    assert len(table) == 1  # the foreign one is still held by its owner


def test_expired_takes_the_due_records_earliest_first() -> None:
    table = table_with((1, 1, 10.0), (2, 2, 10.5), (1, 3, 11.0), (2, 4, 12.0), (1, 5, 13.0))
    assert table.expired(9.9) == []
    assert table.next_deadline() == 10.0
    assert table.expired(11.0) == [(1, rec(1, 10.0)), (2, rec(2, 10.5)), (1, rec(3, 11.0))]
    assert len(table) == 2 and table.next_deadline() == 12.0
    assert table.expired(100.0) == [(2, rec(4, 12.0)), (1, rec(5, 13.0))]
    assert table.next_deadline() is None and not table


def test_touch_moves_a_record_to_its_new_deadline() -> None:
    table = table_with((1, 1, 10.0), (1, 2, 11.0))
    table.touch(1, rec(1, 0)[0], 20.0)
    assert table.next_deadline() == 11.0
    assert table.expired(15.0) == [(1, rec(2, 11.0))]
    assert table.expired(20.0) == [(1, rec(1, 20.0))]
    with pytest.raises(ChannelError, match="ID not in flight"):
        table.touch(1, rec(1, 0)[0], 30.0)


def test_remove_consumer_and_drain_hand_back_the_records() -> None:
    table = table_with((1, 1, 10.0), (2, 2, 10.5), (1, 3, 11.0))
    assert table.remove_consumer(1) == [rec(1, 10.0), rec(3, 11.0)]
    assert table.remove_consumer(1) == [] and set(table.groups) == {2}
    assert table.drain() == [(2, rec(2, 10.5))]
    assert not table and set(table.groups) == {2}
