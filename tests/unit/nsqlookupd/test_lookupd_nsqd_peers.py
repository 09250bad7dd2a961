"""nsqd's LookupPeers against the real V1 session over memory streams, in virtual time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable

import pytest
import trio
import trio.testing

from client.protocol import LocalProtocolError
from nsqd.lookup import LookupPeers
from nsqlookupd.lookup_protocol_v1 import ServerInfo, handle_connection
from nsqlookupd.registration_db import RegistrationDB

INFO = ServerInfo(tcp_port=4160, http_port=4161, broadcast_address="lookupd.local",
                  hostname="lookupd-host", version="1.3.0")
IDENTITY = {"broadcast_address": "nsqd.local", "hostname": "nsqd-host", "tcp_port": 4150,
            "http_port": 4151, "version": "1.3.0"}


class FakeLookupds:
    """Any address connects to an in-memory lookupd running the real V1 session."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.dbs: dict[str, RegistrationDB] = {}
        self.down: set[str] = set()
        self.attempts: list[tuple[str, float]] = []
        self.scopes: dict[str, list[trio.CancelScope]] = {}

    def db(self, address: str) -> RegistrationDB:
        return self.dbs.setdefault(address, RegistrationDB())

    async def connect(self, address: str) -> trio.abc.Stream:
        self.attempts.append((address, trio.current_time()))
        if address in self.down:
            raise OSError(f"connection refused ({address})")
        client, server = trio.testing.memory_stream_pair()
        scope = trio.CancelScope()
        n = len(self.attempts)

        async def serve() -> None:
            with scope:
                await handle_connection(server, self.db(address), INFO, remote_address=f"nsqd:{n}")

        self.scopes.setdefault(address, []).append(scope)
        self.nursery.start_soon(serve)
        return client

    def kill(self, address: str) -> None:
        """Drop every connection to ``address`` (lookupd crashed)."""
        for scope in self.scopes.pop(address, []):
            scope.cancel()

    def topics(self, address: str) -> list[str]:
        db = self.db(address)
        return [r.key for r in db.find_registrations("topic", "*", "") if db.find_producers(*r)]

    def channels(self, address: str, topic: str) -> list[str]:
        db = self.db(address)
        return [r.subkey for r in db.find_registrations("channel", topic, "*") if db.find_producers(*r)]

    def producers(self, address: str) -> int:
        return len(self.db(address).find_producers("client", "", ""))


@pytest.fixture
async def fake(nursery: trio.Nursery) -> AsyncIterator[FakeLookupds]:
    yield FakeLookupds(nursery)


class State:
    """Stand-in for nsqd's topic map."""

    def __init__(self, items: Iterable[tuple[str, str | None]] = ()) -> None:
        self.items = list(items)

    def __call__(self) -> list[tuple[str, str | None]]:
        return list(self.items)


async def start(nursery: trio.Nursery, fake: FakeLookupds, addresses: list[str],
                state: State, **kw: object) -> LookupPeers:
    peers = LookupPeers(addresses, identity=lambda: IDENTITY, registrations=state,
                        connect=fake.connect, **kw)  # type: ignore[arg-type]
    await nursery.start(peers.run)
    await trio.testing.wait_all_tasks_blocked()
    return peers


async def test_registers_everything_including_ephemeral(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock) -> None:
    state = State([("t1", None), ("t2", "c"), ("t2", "e#ephemeral"), ("t3#ephemeral", None)])
    peers = await start(nursery, fake, ["a:4160"], state)
    assert fake.topics("a:4160") == ["t1", "t2", "t3#ephemeral"]
    assert fake.channels("a:4160", "t2") == ["c", "e#ephemeral"]
    (client,) = fake.db("a:4160").find_producers("client", "", "")
    assert client.peer_info.broadcast_address == "nsqd.local"
    assert client.peer_info.http_port == 4151
    (stats,) = peers.statistics()
    assert stats.connected and stats.connects == 1 and stats.queued == 0
    assert peers.lookupd_http_addresses() == ["lookupd.local:4161"]


async def test_notify_forwards_changes_to_every_peer(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock) -> None:
    peers = await start(nursery, fake, ["a:1", "b:1"], State())
    peers.notify("register", "t")
    peers.notify("register", "t", "c")
    await trio.testing.wait_all_tasks_blocked()
    for addr in ("a:1", "b:1"):
        assert fake.topics(addr) == ["t"]
        assert fake.channels(addr, "t") == ["c"]
    peers.notify("unregister", "t", "c")
    await trio.testing.wait_all_tasks_blocked()
    assert fake.channels("a:1", "t") == []
    peers.notify("unregister", "t")
    await trio.testing.wait_all_tasks_blocked()
    assert fake.topics("a:1") == fake.topics("b:1") == []
    assert fake.producers("a:1") == 1  # still connected


async def test_notify_validates_its_arguments(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock) -> None:
    peers = await start(nursery, fake, ["a:1"], State())
    with pytest.raises(ValueError):
        peers.notify("delete", "t")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        peers.notify("register", "bad topic")


async def test_pings_every_interval(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock) -> None:
    t0 = trio.current_time()
    await start(nursery, fake, ["a:1"], State([("t", None)]))
    (client,) = fake.db("a:1").find_producers("client", "", "")
    assert client.peer_info.last_update == t0
    await trio.sleep(46)
    assert client.peer_info.last_update == t0 + 45  # pings at 15, 30 and 45 s


async def test_pings_are_not_starved_by_a_stream_of_changes(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock) -> None:
    t0 = trio.current_time()
    peers = await start(nursery, fake, ["a:1"], State(), ping_interval=1.0)
    for i in range(50):
        peers.notify("register", f"t{i}")
        await trio.sleep(0.1)
    (client,) = fake.db("a:1").find_producers("client", "", "")
    assert client.peer_info.last_update >= t0 + 4
    assert len(fake.topics("a:1")) == 50


async def test_reconnect_backoff_doubles_up_to_the_cap(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock) -> None:
    fake.down.add("a:1")
    t0 = trio.current_time()
    await start(nursery, fake, ["a:1"], State([("t", None)]))
    await trio.sleep(80)
    times = [round(t - t0, 6) for _, t in fake.attempts]
    assert times == [0, 1, 3, 7, 15, 30, 45, 60, 75]
    fake.down.clear()
    await trio.sleep(15)
    assert fake.topics("a:1") == ["t"]


async def test_reregisters_after_lookupd_restart_and_resets_backoff(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock) -> None:
    state = State([("t", "c")])
    peers = await start(nursery, fake, ["a:1"], state)
    # the lookupd restarts with an empty database while nsqd gained a topic
    fake.kill("a:1")
    fake.dbs.pop("a:1")
    state.items.append(("u", None))
    t_kill = trio.current_time()
    await trio.testing.wait_all_tasks_blocked()
    assert not peers.statistics()[0].connected
    await trio.sleep(1.5)
    assert fake.topics("a:1") == ["t", "u"]
    assert fake.channels("a:1", "t") == ["c"]
    assert fake.attempts[-1][1] - t_kill == pytest.approx(1.0)
    assert peers.statistics()[0].connects == 2


async def test_queue_overflow_resyncs_instead_of_growing(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock,
        caplog: pytest.LogCaptureFixture) -> None:
    state = State([("old", None)])
    peers = await start(nursery, fake, ["a:1"], state, queue_size=3)
    # changes arrive faster than the peer task runs: no checkpoint between them
    state.items = [(f"t{i}", None) for i in range(10)]
    peers.notify("unregister", "old")
    for i in range(10):
        peers.notify("register", f"t{i}")
    assert peers.statistics()[0].queued <= 3
    await trio.testing.wait_all_tasks_blocked()
    assert "queue full" in caplog.text
    stats = peers.statistics()[0]
    assert (stats.resyncs, stats.connects, stats.connected) == (1, 2, True)
    assert fake.topics("a:1") == [f"t{i}" for i in range(10)]  # "old" left with the old connection
    assert fake.producers("a:1") == 1


async def test_changes_during_the_initial_sync_are_not_lost(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock) -> None:
    state = State([("t", None)])
    peers = LookupPeers(["a:1"], identity=lambda: IDENTITY, registrations=state, connect=fake.connect)
    await nursery.start(peers.run)
    # the peer task has not connected yet: this change is covered by the snapshot
    state.items.append(("u", None))
    peers.notify("register", "u")
    await trio.testing.wait_all_tasks_blocked()
    assert fake.topics("a:1") == ["t", "u"]


async def test_set_addresses_adds_and_removes_peers(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    peers = await start(nursery, fake, ["a:1"], State([("t", None)]))
    peers.set_addresses(["b:1", "a:1", "b:1"])
    assert peers.addresses == ["b:1", "a:1"]
    await trio.testing.wait_all_tasks_blocked()
    assert fake.topics("b:1") == ["t"]
    peers.set_addresses(["b:1"])
    await trio.testing.wait_all_tasks_blocked()
    assert fake.producers("a:1") == 0  # connection closed: lookupd dropped the node
    assert fake.topics("a:1") == []
    assert [s.address for s in peers.statistics()] == ["b:1"]
    assert "LOOKUP(b:1): adding peer" in caplog.text
    assert "LOOKUP(a:1): removing peer" in caplog.text
    peers.notify("register", "u")
    await trio.testing.wait_all_tasks_blocked()
    assert fake.topics("b:1") == ["t", "u"]
    assert fake.topics("a:1") == []


async def test_set_addresses_before_run(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock) -> None:
    peers = LookupPeers([], identity=lambda: IDENTITY, registrations=State([("t", None)]),
                        connect=fake.connect)
    peers.notify("register", "t")  # no peers: nothing to do
    peers.set_addresses(["a:1"])
    await nursery.start(peers.run)
    await trio.testing.wait_all_tasks_blocked()
    assert fake.topics("a:1") == ["t"]


async def test_rejected_identify_is_retried_with_backoff(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock,
        caplog: pytest.LogCaptureFixture) -> None:
    identity = dict(IDENTITY, tcp_port=0)
    peers = LookupPeers(["a:1"], identity=lambda: identity, registrations=State(),
                        connect=fake.connect)
    await nursery.start(peers.run)
    await trio.sleep(2)
    assert len(fake.attempts) == 2
    assert "E_BAD_BODY IDENTIFY missing fields" in caplog.text
    identity["tcp_port"] = 4150
    await trio.sleep(2)
    assert peers.statistics()[0].connected


async def test_bad_address_is_logged_and_retried(
        nursery: trio.Nursery, autojump_clock: trio.testing.MockClock,
        caplog: pytest.LogCaptureFixture) -> None:
    peers = LookupPeers(["no-port"], identity=lambda: IDENTITY, registrations=State())
    await nursery.start(peers.run)
    await trio.sleep(4)
    assert caplog.text.count("connect failed") == 3  # at 0, 1 and 3 s
    assert not peers.statistics()[0].connected


async def test_cancelling_run_closes_connections(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock) -> None:
    peers = LookupPeers(["a:1"], identity=lambda: IDENTITY, registrations=State([("t", None)]),
                        connect=fake.connect)
    scope = trio.CancelScope()

    async def run() -> None:
        with scope:
            await peers.run()

    nursery.start_soon(run)
    await trio.testing.wait_all_tasks_blocked()
    assert fake.producers("a:1") == 1
    scope.cancel()
    await trio.testing.wait_all_tasks_blocked()
    assert fake.producers("a:1") == 0
    assert peers.statistics() == []


async def test_run_twice_at_once_is_refused(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock) -> None:
    peers = await start(nursery, fake, ["a:1"], State())
    with pytest.raises(RuntimeError, match="already running"):
        await peers.run()


async def test_failing_identity_is_logged_and_retried(
        nursery: trio.Nursery, fake: FakeLookupds, autojump_clock: trio.testing.MockClock,
        caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def identity() -> dict[str, object]:
        calls.append(trio.current_time())
        if len(calls) == 1:
            raise RuntimeError("not ready")
        return IDENTITY

    peers = LookupPeers(["a:1"], identity=identity, registrations=State([("t", None)]),
                        connect=fake.connect)
    await nursery.start(peers.run)
    await trio.sleep(1.5)
    assert "unexpected error" in caplog.text and "not ready" in caplog.text
    assert len(calls) == 2
    assert fake.topics("a:1") == ["t"]


async def test_lookupd_speaking_unprompted_ends_the_session(
        nursery: trio.Nursery, autojump_clock: trio.testing.MockClock,
        caplog: pytest.LogCaptureFixture) -> None:
    server_side: list[trio.abc.Stream] = []

    async def connect(address: str) -> trio.abc.Stream:
        client, server = trio.testing.memory_stream_pair()
        server_side.append(server)
        nursery.start_soon(handle_connection, server, RegistrationDB(), INFO)
        return client

    peers = LookupPeers(["a:1"], identity=lambda: IDENTITY, registrations=State(), connect=connect)
    await nursery.start(peers.run)
    await trio.testing.wait_all_tasks_blocked()
    assert peers.statistics()[0].connected
    await server_side[0].send_all(b"\x00\x00\x00\x02OK")
    await trio.testing.wait_all_tasks_blocked()
    assert "unexpected data from lookupd" in caplog.text
    assert not peers.statistics()[0].connected
    await trio.sleep(1.5)
    assert peers.statistics()[0].connected and len(server_side) == 2
