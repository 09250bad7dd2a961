"""RegistrationDB: pure state, time passed in (after nsqlookupd/registration_db_test.go)."""

from __future__ import annotations

from nsqlookupd.registration_db import (
    PeerInfo,
    Producer,
    Registration,
    RegistrationDB,
    filter_by_active,
)

T0 = 1000.0


def peer(pid: str, last_update: float = T0) -> PeerInfo:
    return PeerInfo(id=pid, remote_address=f"remote_addr:{pid}", hostname="host",
                    broadcast_address="b_addr", tcp_port=int(pid), http_port=int(pid) + 1,
                    version="v1", last_update=last_update)


def test_registration_db() -> None:
    pi1, pi2, pi3 = peer("1"), peer("2"), peer("3")
    p1, p2, p3, p4 = Producer(pi1), Producer(pi2), Producer(pi3), Producer(pi1)
    db = RegistrationDB()
    assert db.add_producer(Registration("c", "a", ""), p1)
    assert db.add_producer(Registration("c", "a", ""), p2)
    assert db.add_producer(Registration("c", "a", "b"), p2)
    assert db.add_producer(Registration("d", "a", ""), p3)
    assert db.add_producer(Registration("t", "a", ""), p4)
    assert not db.add_producer(Registration("c", "a", ""), Producer(pi1))  # same id

    assert [r.key for r in db.find_registrations("c", "*", "")] == ["a"]
    assert len(db.find_producers("t", "*", "")) == 1
    assert len(db.find_producers("c", "*", "")) == 2
    assert len(db.find_producers("c", "a", "")) == 2
    p = db.find_producers("c", "*", "b")
    assert [x.peer_info.id for x in p] == ["2"]

    # filter by active: nobody pinged within 30 s of T0 + 100
    now = T0 + 100
    assert filter_by_active(p, now, 30, 30) == []
    pi2.last_update = now
    assert len(filter_by_active(p, now, 30, 30)) == 1
    p = db.find_producers("c", "*", "")
    assert len(filter_by_active(p, now, 30, 30)) == 1

    # tombstoning hides a producer for the lifetime, from its own registration only
    pi1.last_update = pi2.last_update = now - 5
    assert len(filter_by_active(p, now, 30, 30)) == 2
    p1.tombstone(now)
    assert len(filter_by_active(p, now, 30, 30)) == 1
    assert len(filter_by_active(p, now + 0.010, 30, 0.005)) == 2
    assert len(filter_by_active(db.find_producers("t", "*", ""), now, 30, 30)) == 1  # see NSQ #148

    assert db.find_registrations("c", "b", "") == []
    assert [r.key for r in db.find_registrations("c", "a", "")] == ["a"]
    assert [r.subkey for r in db.find_registrations("c", "*", "b")] == ["b"]

    db.remove_producer(Registration("c", "a", ""), "1")
    assert len(db.find_producers("c", "*", "*")) == 1
    db.remove_producer(Registration("c", "a", ""), "2")
    db.remove_producer(Registration("c", "a", "b"), "2")
    assert db.find_producers("c", "*", "*") == []

    # emptied registrations stay until removed
    assert len(db.find_registrations("c", "*", "*")) == 2
    db.remove_registration(Registration("c", "a", ""))
    db.remove_registration(Registration("c", "a", "b"))
    assert db.find_registrations("c", "*", "*") == []


def test_inactive_boundary_is_inclusive() -> None:
    p = Producer(peer("1", last_update=T0))
    assert filter_by_active([p], T0 + 30, 30, 0) == [p]
    assert filter_by_active([p], T0 + 30.001, 30, 0) == []


def test_tombstone_expires_after_lifetime() -> None:
    p = Producer(peer("1"))
    p.tombstone(T0)
    assert p.is_tombstoned(45, T0 + 44.9)
    assert not p.is_tombstoned(45, T0 + 45)
    assert not p.is_tombstoned(0, T0)  # /nodes passes 0: never filtered


def test_remove_producer_reports_removed_and_left() -> None:
    db = RegistrationDB()
    k = Registration("topic", "t", "")
    assert db.remove_producer(k, "x") == (False, 0)
    db.add_producer(k, Producer(peer("1")))
    db.add_producer(k, Producer(peer("2")))
    assert db.remove_producer(k, "3") == (False, 2)
    assert db.remove_producer(k, "1") == (True, 1)
    assert db.remove_producer(k, "2") == (True, 0)
    assert db.find_registrations("topic", "t", "") == [k]


def test_lookup_registrations_tracks_adds_and_removals() -> None:
    db = RegistrationDB()
    pi = peer("1")
    keys = [Registration("client", "", ""), Registration("topic", "t", ""),
            Registration("channel", "t", "c")]
    for k in keys:
        db.add_producer(k, Producer(pi))
    db.add_producer(Registration("topic", "other", ""), Producer(peer("2")))
    assert db.lookup_registrations("1") == keys
    db.remove_producer(keys[1], "1")
    assert db.lookup_registrations("1") == [keys[0], keys[2]]
    db.remove_registration(keys[2])  # removing a registration drops it from the index
    assert db.lookup_registrations("1") == [keys[0]]
    db.remove_producer(keys[0], "1")
    assert db.lookup_registrations("1") == []
    assert db.lookup_registrations("2") == [Registration("topic", "other", "")]


def test_add_registration_is_idempotent_and_keeps_producers() -> None:
    db = RegistrationDB()
    k = Registration("topic", "t", "")
    db.add_registration(k)
    assert db.find_producers("topic", "t", "") == []
    db.add_producer(k, Producer(peer("1")))
    db.add_registration(k)
    assert len(db.find_producers("topic", "t", "")) == 1
    assert len(db) == 1


def test_wildcards_dedupe_producers_across_registrations() -> None:
    db = RegistrationDB()
    pi = peer("1")
    for topic in ("a", "b", "c"):
        db.add_producer(Registration("topic", topic, ""), Producer(pi))
    db.add_producer(Registration("topic", "c", ""), Producer(peer("2")))
    assert [p.peer_info.id for p in db.find_producers("topic", "*", "")] == ["1", "2"]
    assert [p.peer_info.id for p in db.find_producers("topic", "c", "")] == ["1", "2"]
    assert db.find_producers("topic", "zzz", "") == []
    assert db.find_producers("nothing", "*", "*") == []
    assert [r.key for r in db.find_registrations("topic", "*", "")] == ["a", "b", "c"]


def test_channel_subkeys_are_scoped_to_their_topic() -> None:
    db = RegistrationDB()
    for topic, channel in (("t1", "c1"), ("t1", "c2"), ("t2", "c1")):
        db.add_registration(Registration("channel", topic, channel))
    assert [r.subkey for r in db.find_registrations("channel", "t1", "*")] == ["c1", "c2"]
    assert [r.key for r in db.find_registrations("channel", "*", "c1")] == ["t1", "t2"]
    assert db.find_registrations("channel", "t1", "c3") == []
    db.remove_registration(Registration("channel", "t1", "c1"))
    db.remove_registration(Registration("channel", "t1", "c1"))  # absent: no error
    assert [r.subkey for r in db.find_registrations("channel", "t1", "*")] == ["c2"]


def test_find_producer_and_items() -> None:
    db = RegistrationDB()
    pi = peer("1")
    k = Registration("topic", "t", "")
    prod = Producer(pi)
    db.add_producer(k, prod)
    db.add_registration(Registration("channel", "t", "c"))
    assert db.find_producer(k, "1") is prod
    assert db.find_producer(k, "2") is None
    assert db.find_producer(Registration("topic", "u", ""), "1") is None
    assert db.items() == [(k, [prod]), (Registration("channel", "t", "c"), [])]


def test_peer_info_json_shape_and_producer_str() -> None:
    pi = peer("5")
    assert pi.to_json() == {
        "remote_address": "remote_addr:5", "hostname": "host", "broadcast_address": "b_addr",
        "tcp_port": 5, "http_port": 6, "version": "v1",
    }
    assert list(pi.to_json()) == ["remote_address", "hostname", "broadcast_address",
                                  "tcp_port", "http_port", "version"]
    assert str(Producer(pi)) == "b_addr [5, 6]"
