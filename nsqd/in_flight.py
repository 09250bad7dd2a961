"""The messages a channel's consumers hold: delivered, awaiting FIN, REQ, TOUCH or timeout.

Each consumer has its own insertion-ordered dict of records. A consumer's timeout is
fixed while it is subscribed (IDENTIFY comes before SUB) and delivery times only grow,
so its dict is also ordered by deadline: TOUCH moves a record to the end, and the
expired ones are found from the front. A FIN is then one ``dict.pop`` in the FIN'ing
consumer's dict, which also proves that it owns the message; only a failed one looks
at the others (to tell "client does not own message" from "ID not in flight").
"""

from __future__ import annotations

from .errors import ChannelError

__all__ = ["InFlightTable", "Record"]

#: a message in flight: ``(msg_id, body, timestamp, attempts, deadline)``, ``attempts``
#: counting its delivery (so ``record[:4]`` is the message to requeue)
Record = tuple[bytes, bytes, int, int, float]


class InFlightTable:
    """In-flight records per consumer id, each consumer's ordered by deadline.

    ``len()`` counts every record; ``in`` looks a message ID up among all consumers.
    """

    __slots__ = ("groups",)

    def __init__(self) -> None:
        #: consumer id -> its records by message ID, in deadline order
        self.groups: dict[int, dict[bytes, Record]] = {}

    def __len__(self) -> int:
        return sum(map(len, self.groups.values()))

    def __bool__(self) -> bool:
        return any(self.groups.values())

    def __contains__(self, msg_id: object) -> bool:
        return any(msg_id in group for group in self.groups.values())

    def add_consumer(self, consumer_id: int) -> dict[bytes, Record]:
        """The records of ``consumer_id`` (created empty the first time)."""
        group = self.groups.get(consumer_id)
        if group is None:
            group = self.groups[consumer_id] = {}
        return group

    def remove_consumer(self, consumer_id: int) -> list[Record]:
        """Forget a consumer; return the records it held, in deadline order."""
        group = self.groups.pop(consumer_id, None)
        return list(group.values()) if group else []

    def take(self, consumer_id: int, msg_id: bytes) -> Record:
        """Remove and return the record of ``msg_id``, held by ``consumer_id``.

        Raises:
            ChannelError: NSQ's ``ID not in flight`` or ``client does not own message``.
        """
        group = self.groups.get(consumer_id)
        rec = group.pop(msg_id, None) if group is not None else None
        if rec is None:
            raise self.not_held(msg_id)
        return rec

    def not_held(self, msg_id: bytes) -> ChannelError:
        """Why a consumer's FIN, REQ or TOUCH of ``msg_id`` failed (it does not hold it)."""
        if msg_id in self:
            return ChannelError("client does not own message")
        return ChannelError("ID not in flight")

    def touch(self, consumer_id: int, msg_id: bytes, deadline: float) -> None:
        """Give a held message a new (later) deadline.

        Raises:
            ChannelError: as :meth:`take`.
        """
        rec = self.take(consumer_id, msg_id)
        self.groups[consumer_id][msg_id] = (rec[0], rec[1], rec[2], rec[3], deadline)

    def expired(self, now: float) -> list[tuple[int, Record]]:
        """Remove and return every record whose deadline is at or before ``now``, with
        the id of the consumer that held it, earliest deadline first."""
        out: list[tuple[int, Record]] = []
        for consumer_id, group in self.groups.items():
            due: list[Record] = []
            for rec in group.values():
                if rec[4] > now:
                    break
                due.append(rec)
            for rec in due:
                del group[rec[0]]
            out.extend([(consumer_id, rec) for rec in due])
        if len(out) > 1:
            out.sort(key=_deadline_of)
        return out

    def next_deadline(self) -> float | None:
        """The earliest deadline of any record (None: nothing in flight)."""
        best: float | None = None
        for group in self.groups.values():
            for rec in group.values():
                if best is None or rec[4] < best:
                    best = rec[4]
                break
        return best

    def clear(self) -> None:
        """Drop every record (the consumers stay)."""
        for group in self.groups.values():
            group.clear()

    def drain(self) -> list[tuple[int, Record]]:
        """Remove and return every record, with its consumer's id."""
        out: list[tuple[int, Record]] = []
        for consumer_id, group in self.groups.items():
            out.extend([(consumer_id, rec) for rec in group.values()])
            group.clear()
        return out


def _deadline_of(item: tuple[int, Record]) -> float:
    return item[1][4]
