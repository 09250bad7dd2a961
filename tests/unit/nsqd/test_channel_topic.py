"""Channel and Topic without sockets: fake consumers with RDY counts, a list-backed
"disk", trio's mock clock. What their ``statistics()`` records show is checked along."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing

from client.protocol import MESSAGE_FRAME_HEAD
from nsqd.backend import Entry, Msg
from nsqd.channel import Channel
from nsqd.client_v2 import ClientV2
from nsqd.deferred_store import DeferredStore
from nsqd.errors import ChannelError, TopicError
from nsqd.statistics import NO_LATENCY, ClientStatistics
from nsqd.topic import Topic

TIMEOUT = 60.0


class ListBackend:
    """An overflow store kept in a list (stands in for the disk queue)."""

    write_through = False
    ack_mode = False

    def __init__(self) -> None:
        self.items: list[Entry] = []
        self.deleted = False

    def put(self, msgs: Iterable[Entry]) -> None:
        self.items.extend(msgs)

    def read(self, n: int) -> list[Entry]:
        out, self.items = self.items[:n], self.items[n:]
        return out

    def depth(self) -> int:
        return len(self.items)

    def ack(self, msg_id: bytes) -> None:
        pass

    def empty(self) -> None:
        self.items.clear()

    def close(self) -> None:
        pass

    def delete(self) -> None:
        self.deleted = True
        self.items.clear()


class FakeNSQD:
    """What a Topic asks of its daemon."""

    def __init__(self, mem_queue_size: int = 100, percentiles: list[float] | None = None) -> None:
        self.options = SimpleNamespace(mem_queue_size=mem_queue_size,
                                       e2e_processing_latency_percentiles=percentiles or [],
                                       e2e_processing_latency_window_time=600.0)
        self.created: list[str] = []
        self.deleted_channels: list[str] = []
        self.deleted_topics: list[str] = []

    def deferred_store(self, name: str, ephemeral: bool) -> DeferredStore:
        return DeferredStore(None)

    def watch_deferred(self, channel: Channel) -> None:
        pass

    def channel_created(self, topic: Topic, channel: Channel) -> None:
        self.created.append(f"{topic.name}:{channel.name}")

    def channel_deleted(self, topic: Topic, channel: Channel) -> None:
        self.deleted_channels.append(f"{topic.name}:{channel.name}")

    def delete_topic(self, name: str, *, reason: str = "deleted") -> None:
        self.deleted_topics.append(name)


class FakeClient:
    """A consumer: records the messages a channel sends it (id, attempts)."""

    def __init__(self, client_id: int, ready: int, msg_timeout: float = TIMEOUT) -> None:
        self.id = client_id
        self.ready_count = ready
        self.in_flight = 0
        self.msg_timeout = msg_timeout
        self.message_count = 0
        self.in_ready_list = False
        self.sample_rate = 0
        self.out_bytes = 0
        self.output_limit = 1 << 20
        self.output_blocked = False
        self.got: list[tuple[bytes, int]] = []
        self.timeouts = 0
        self.closed = False

    def send_messages(self, parts: list[bytes], nbytes: int) -> None:
        for head in parts[::2]:
            _, _, _, attempts, msg_id = MESSAGE_FRAME_HEAD.unpack(head)
            self.got.append((msg_id, attempts))

    def message_timed_out(self) -> None:
        self.timeouts += 1

    def close(self) -> None:
        self.closed = True

    def statistics(self) -> ClientStatistics:
        return ClientStatistics(self.id, "c", "h", "h:1", "", 3, self.ready_count,
                                self.in_flight, self.message_count, 0, 0, 0, 0, False, False,
                                False, "", "", (), False, "", "", "")

    def ids(self) -> list[bytes]:
        return [msg_id for msg_id, _ in self.got]


def msg(i: int) -> Msg:
    return (b"%016d" % i, b"body-%d" % i, 1_700_000_000_000_000_000 + i, 0)


def ids(*numbers: int) -> list[bytes]:
    return [msg(i)[0] for i in numbers]


def make_topic(name: str = "t", mem_queue_size: int = 100,
               percentiles: list[float] | None = None) -> tuple[FakeNSQD, Topic]:
    nsqd = FakeNSQD(mem_queue_size, percentiles)
    topic = Topic(nsqd, name, ListBackend(), lambda _name, _eph: ListBackend())  # type: ignore[arg-type]
    return nsqd, topic


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def subscribe(channel: Channel, *clients: FakeClient) -> None:
    now = trio.current_time()
    for client in clients:
        channel.add_client(client, 0)
        channel.fill(client, now)


def one_consumer(ready: int, msg_timeout: float = TIMEOUT) -> tuple[Topic, Channel, FakeClient]:
    """A topic with channel ``c`` and one consumer (id 1) subscribed to it."""
    _, topic = make_topic()
    channel = topic.get_channel("c")
    client = FakeClient(1, ready, msg_timeout)
    subscribe(channel, client)
    return topic, channel, client


# ------------------------------------------------------------------ put / fan-out
async def test_put_fans_out_a_copy_to_every_channel() -> None:
    _, topic = make_topic()
    a, b = topic.get_channel("a"), topic.get_channel("b")
    topic.put([msg(1), msg(2)], trio.current_time())
    assert list(a.memory) == list(b.memory) == [msg(1), msg(2)]
    stats = topic.statistics()
    assert (stats.name, stats.message_count, stats.message_bytes, stats.depth) == ("t", 2, 12, 0)
    assert [(c.name, c.depth, c.message_count, c.clients) for c in stats.channels] == [
        ("a", 2, 2, None), ("b", 2, 2, None)]
    assert stats.e2e_processing_latency == NO_LATENCY
    assert [c.name for c in topic.statistics(channel="b").channels] == ["b"]
    assert topic.statistics(channel="x").channels == ()


async def test_messages_wait_in_the_topic_until_a_channel_exists(
        autojump_clock: trio.testing.MockClock) -> None:
    _, topic = make_topic()
    topic.put([msg(1), msg(2)], trio.current_time())
    assert topic.statistics().depth == 2
    async with trio.open_nursery() as nursery:
        nursery.start_soon(topic.pump)
        channel = topic.get_channel("late")
        with trio.fail_after(5):
            while channel.depth() < 2:
                await trio.sleep(0.01)
        assert topic.depth() == 0 and list(channel.memory) == [msg(1), msg(2)]
        topic.close(delete=True)  # ends the pump


# ------------------------------------------------------------------ delivery
async def test_rdy_shares_messages_between_two_consumers() -> None:
    _, topic = make_topic()
    channel = topic.get_channel("c")
    one, two = FakeClient(1, ready=2), FakeClient(2, ready=3)
    subscribe(channel, one, two)
    topic.put([msg(i) for i in range(10)], trio.current_time())
    assert (len(one.got), len(two.got)) == (2, 3)
    assert sorted(one.ids() + two.ids()) == ids(0, 1, 2, 3, 4)  # FIFO, nothing twice
    stats = channel.statistics(clients=True)
    assert (stats.depth, stats.in_flight_count, stats.client_count) == (5, 5, 2)
    assert stats.clients is not None
    assert [(c.id, c.in_flight_count) for c in stats.clients] == [(1, 2), (2, 3)]
    # a FIN frees one slot: the next waiting message goes to that consumer
    channel.finish(one, one.got[0][0])
    channel.fill(one, trio.current_time())
    assert one.ids()[-1] == msg(5)[0] and channel.depth() == 4


async def test_in_flight_timeout_requeues_to_the_next_consumer(
        autojump_clock: trio.testing.MockClock) -> None:
    topic, channel, slow = one_consumer(ready=1, msg_timeout=10.0)
    topic.put([msg(1)], trio.current_time())
    assert slow.got == [(msg(1)[0], 1)]
    await trio.sleep(9.0)
    assert channel.process_in_flight(trio.current_time()) == 0
    await trio.sleep(1.0)
    assert channel.next_deadline() == pytest.approx(trio.current_time())
    assert channel.process_in_flight(trio.current_time()) == 1
    assert slow.timeouts == 1 and channel.statistics().timeout_count == 1
    # requeued and handed out again (its capacity came back), a second attempt
    assert slow.got[-1] == (msg(1)[0], 2)


async def test_req_with_delay_defers_then_redelivers(
        autojump_clock: trio.testing.MockClock) -> None:
    topic, channel, client = one_consumer(ready=1)
    topic.put([msg(1)], trio.current_time())
    t0 = trio.current_time()
    channel.requeue(client, msg(1)[0], 5.0, t0)
    channel.fill(client, t0)
    stats = channel.statistics()
    assert (stats.deferred_count, stats.in_flight_count, stats.depth, stats.requeue_count) == (
        1, 0, 0, 1)
    assert channel.next_deadline() == t0 + 5.0
    await trio.sleep(4.9)
    assert channel.process_deferred(trio.current_time()) == 0
    await trio.sleep(0.1)
    assert channel.process_deferred(trio.current_time()) == 1
    assert client.got == [(msg(1)[0], 1), (msg(1)[0], 2)]
    assert channel.statistics().deferred_count == 0


async def test_req_without_delay_requeues_at_once() -> None:
    topic, channel, client = one_consumer(ready=1)
    topic.put([msg(1), msg(2)], trio.current_time())
    channel.requeue(client, msg(1)[0], 0.0, trio.current_time())
    assert channel.statistics().deferred_count == 0 and channel.depth() == 2
    channel.fill(client, trio.current_time())  # back of the queue, as NSQ's requeue
    assert client.got[-1] == (msg(2)[0], 1)
    channel.finish(client, msg(2)[0])
    channel.fill(client, trio.current_time())
    assert client.got[-1] == (msg(1)[0], 2)


async def test_touch_restarts_the_timeout(autojump_clock: trio.testing.MockClock) -> None:
    topic, channel, client = one_consumer(ready=1, msg_timeout=10.0)
    topic.put([msg(1)], trio.current_time())
    await trio.sleep(8.0)
    channel.touch(client, msg(1)[0], trio.current_time())
    await trio.sleep(3.0)  # 11 s after delivery, 3 after TOUCH
    assert channel.process_in_flight(trio.current_time()) == 0
    await trio.sleep(7.0)
    assert channel.process_in_flight(trio.current_time()) == 1
    assert client.timeouts == 1


async def test_fin_of_unknown_or_foreign_id_is_an_error() -> None:
    _, topic = make_topic()
    channel = topic.get_channel("c")
    one, two = FakeClient(1, ready=1), FakeClient(2, ready=1)
    subscribe(channel, one, two)
    topic.put([msg(1)], trio.current_time())
    [(owned, _)] = one.got + two.got
    other = two if one.got else one
    with pytest.raises(ChannelError, match="ID not in flight"):
        channel.finish(other, b"0" * 16)
    with pytest.raises(ChannelError, match="client does not own message"):
        channel.finish(other, owned)
    assert channel.statistics().in_flight_count == 1


async def test_finish_many_fins_each_and_names_each_failure() -> None:
    _, topic = make_topic(percentiles=[0.5])
    channel = topic.get_channel("c")
    one, two = FakeClient(1, ready=3), FakeClient(2, ready=1)
    subscribe(channel, one)
    topic.put([msg(1), msg(2), msg(3)], trio.current_time())
    subscribe(channel, two)
    topic.put([msg(4)], trio.current_time())
    assert channel.finish_many(one, ids(1, 2)) is None
    assert one.in_flight == 1 and channel.latency().total_count == 2
    failed = channel.finish_many(one, ids(3, 3, 4, 9))
    assert failed is not None and failed[0] is None
    assert [str(exc) for exc in failed[1:]] == [
        "ID not in flight", "client does not own message", "ID not in flight"]
    assert one.in_flight == 0 and two.in_flight == 1 and len(channel.in_flight) == 1
    assert channel.latency().total_count == 3  # only the FINs that were done
    channel.remove_client(one, trio.current_time())
    assert [str(exc) for exc in channel.finish_many(one, ids(4)) or []] == [
        "client does not own message"]


# ------------------------------------------------------------------ admin
async def test_pause_holds_messages_until_unpause() -> None:
    topic, channel, client = one_consumer(ready=5)
    channel.pause()
    topic.put([msg(1), msg(2)], trio.current_time())
    assert client.got == [] and channel.statistics().paused
    assert channel.statistics().depth == 2
    channel.unpause(trio.current_time())
    assert client.ids() == ids(1, 2) and not channel.statistics().paused


async def test_topic_pause_queues_in_the_topic(autojump_clock: trio.testing.MockClock) -> None:
    _, topic = make_topic()
    channel = topic.get_channel("c")
    topic.pause()
    topic.put([msg(1)], trio.current_time())
    assert topic.statistics().paused and topic.depth() == 1 and channel.depth() == 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(topic.pump)
        topic.unpause()
        with trio.fail_after(5):
            while channel.depth() < 1:
                await trio.sleep(0.01)
        topic.close(delete=True)
    assert not topic.paused


async def test_empty_drops_queued_in_flight_and_deferred() -> None:
    topic, channel, client = one_consumer(ready=1)
    topic.put([msg(1), msg(2), msg(3)], trio.current_time())
    channel.defer(msg(4), trio.current_time() + 60)
    stats = channel.statistics()
    assert (stats.depth, stats.in_flight_count, stats.deferred_count) == (2, 1, 1)
    channel.empty()
    stats = channel.statistics()
    assert (stats.depth, stats.in_flight_count, stats.deferred_count) == (0, 0, 0)
    assert client.in_flight == 0


async def test_delete_channel_closes_its_consumers() -> None:
    nsqd, topic = make_topic()
    channel = topic.get_channel("c")
    client = FakeClient(1, ready=1)
    subscribe(channel, client)
    topic.put([msg(1)], trio.current_time())
    backend = channel.backend
    topic.delete_channel("c")
    assert client.closed and channel.deleted and "c" not in topic.channels
    assert isinstance(backend, ListBackend) and backend.deleted
    assert nsqd.deleted_channels == ["t:c"]
    assert topic.statistics().channels == ()
    with pytest.raises(TopicError, match="channel does not exist"):
        topic.delete_channel("c")
    with pytest.raises(ChannelError, match="exiting"):
        channel.add_client(FakeClient(2, ready=1), 0)


async def test_ephemeral_channel_goes_with_its_last_client() -> None:
    nsqd, topic = make_topic("t#ephemeral")
    channel = topic.get_channel("c#ephemeral")
    one, two = FakeClient(1, ready=1), FakeClient(2, ready=1)
    subscribe(channel, one, two)
    topic.put([msg(1)], trio.current_time())
    channel.remove_client(one, trio.current_time())
    assert "c#ephemeral" in topic.channels
    # one's in-flight message went back, to the consumer still there
    assert two.ids() == ids(1) and channel.statistics().requeue_count == (1 if one.got else 0)
    channel.remove_client(two, trio.current_time())
    assert topic.channels == {} and nsqd.deleted_channels == ["t#ephemeral:c#ephemeral"]
    assert nsqd.deleted_topics == ["t#ephemeral"]  # an ephemeral topic follows its last channel


async def test_overflow_goes_to_the_backend_in_order() -> None:
    _, topic = make_topic(mem_queue_size=2)
    channel = topic.get_channel("c")
    topic.put([msg(i) for i in range(5)], trio.current_time())
    stats = channel.statistics()
    assert (stats.depth, stats.backend_depth) == (5, 3)
    assert len(channel.memory) == 2
    client = FakeClient(1, ready=10)
    subscribe(channel, client)
    assert client.ids() == ids(0, 1, 2, 3, 4)
    assert channel.statistics().depth == 0


async def test_topic_overflow_without_channels() -> None:
    _, topic = make_topic(mem_queue_size=2)
    topic.put([msg(i) for i in range(5)], trio.current_time())
    stats = topic.statistics()
    assert (stats.depth, stats.backend_depth, stats.message_count) == (5, 3, 5)


# ------------------------------------------------------------------ records
async def test_records_are_frozen_and_slotted() -> None:
    _, topic = make_topic()
    topic.get_channel("c")
    client = ClientV2(7, "10.0.0.1:4000", msg_timeout=60, heartbeat_interval=30,
                      output_buffer_timeout=0.25)
    client.published("b", 2)
    client.published("a", 1)
    records: list[Any] = [topic.statistics(), topic.statistics().channels[0]]
    for rec in records:
        assert not hasattr(rec, "__dict__")
        # FrozenInstanceError; TypeError on Pythons whose slotted frozen __setattr__
        # trips over the rebuilt class
        with pytest.raises((dataclasses.FrozenInstanceError, TypeError)):
            rec.depth = -1
        with pytest.raises((dataclasses.FrozenInstanceError, TypeError, AttributeError)):
            rec.extra = 1
    stats: Any = client.statistics()
    assert not hasattr(stats, "__dict__")
    with pytest.raises((dataclasses.FrozenInstanceError, TypeError)):
        stats.ready_count = 1
    assert (stats.id, stats.client_id, stats.pub_counts, stats.tls, stats.tls_version) == (
        7, "10.0.0.1", (("a", 1), ("b", 2)), False, "")


async def test_latency_records_follow_fins() -> None:
    _, topic = make_topic(percentiles=[0.5])
    channel = topic.get_channel("c")
    topic.get_channel("idle")
    client = FakeClient(1, ready=2)
    subscribe(channel, client)
    topic.put([msg(1), msg(2)], trio.current_time())
    channel.finish(client, msg(1)[0])
    first = channel.latency()
    assert (first.count, first.total_count, first.windows) == (1, 1, 1)
    assert first.percentiles is not None and first.percentiles[0][0] == 0.5
    merged = topic.latency()
    assert (merged.count, merged.total_count, merged.windows) == (1, 1, 2)
    # nothing changed: the same records (stats cost nothing per message)
    assert channel.latency() is first and topic.latency() is merged
    channel.finish(client, msg(2)[0])
    assert channel.latency().total_count == 2 and topic.latency().total_count == 2
    assert topic.statistics().e2e_processing_latency.count == 2
