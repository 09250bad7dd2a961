"""nsqd options (NSQ flag names, defaults, precedence) and message IDs."""

from __future__ import annotations

import pytest

from internal.options import OptionsError, resolve
from nsqd.guid import IDGenerator
from nsqd.options import Options


def test_defaults_match_nsq():
    o = Options()
    assert o.tcp_address == "0.0.0.0:4150"
    assert o.http_address == "0.0.0.0:4151"
    assert o.mem_queue_size == 10000
    assert o.max_msg_size == 1024 * 1024
    assert o.max_body_size == 5 * 1024 * 1024
    assert o.msg_timeout == 60.0
    assert o.max_msg_timeout == 900.0
    assert o.max_req_timeout == 3600.0
    assert o.max_rdy_count == 2500
    assert o.max_heartbeat_interval == 60.0
    assert o.sync_every == 2500
    assert 0 <= o.node_id < 1024


@pytest.mark.parametrize("argv", [
    ["-mem-queue-size=5"], ["--mem-queue-size=5"], ["--mem-queue-size", "5"], ["-mem-queue-size", "5"],
])
def test_go_flag_spellings(argv):
    opts, _ = resolve(Options, argv, prog="nsqd")
    assert opts.mem_queue_size == 5


def test_durations_and_repeatable_flags():
    opts, _ = resolve(Options, ["--msg-timeout", "1m30s", "--lookupd-tcp-address", "a:1",
                                "--lookupd-tcp-address=b:2"], prog="nsqd")
    assert opts.msg_timeout == 90.0
    assert opts.lookupd_tcp_addresses == ["a:1", "b:2"]


def test_config_file_precedence(tmp_path):
    cfg = tmp_path / "nsqd.toml"
    cfg.write_text('mem_queue_size = 7\nmax_rdy_count = 10\nnsqlookupd_tcp_addresses = ["x:1"]\n')
    opts, _ = resolve(Options, ["--config", str(cfg), "--max-rdy-count", "20"], prog="nsqd")
    assert opts.mem_queue_size == 7          # from the file
    assert opts.max_rdy_count == 20          # the flag wins
    assert opts.lookupd_tcp_addresses == ["x:1"]


@pytest.mark.parametrize("argv", [["--node-id", "1024"], ["--max-deflate-level", "10"],
                                  ["--mem-queue-size", "-1"]])
def test_invalid_values_are_clear_errors(argv):
    with pytest.raises(OptionsError):
        resolve(Options, argv, prog="nsqd", exit_on_error=False)


def test_ids_unique_ordered_hex():
    gen = IDGenerator(5, now_ms=1_000)
    ids = gen.new_ids(3) + gen.new_ids(1) + gen.new_ids(1000)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize("start,counts", [
    (0, [1, 4095, 1, 1, 4096, 5000]),  # across and onto 4096 boundaries
    (4090, [7, 3, 10_000]),
    ((1 << 64) - 9000, [8999]),
])
def test_ids_are_the_counter_in_16_hex_digits(start, counts):
    gen = IDGenerator(0, now_ms=0)
    gen._next = start
    ids = [i for count in counts for i in gen.new_ids(count)]
    assert ids == [b"%016x" % n for n in range(start, start + sum(counts))]


def test_ids_after_restart_do_not_collide():
    before = IDGenerator(5, now_ms=1_000).new_ids(100_000)
    after = IDGenerator(5, now_ms=1_001).new_ids(10)
    assert max(before) < min(after)


def test_node_id_range():
    with pytest.raises(ValueError):
        IDGenerator(1024)


@pytest.mark.parametrize("argv,value", [
    (["--tls-required"], 2), (["-tls-required"], 2), (["--tls-required=true"], 2),
    (["--tls-required=tcp-https"], 1), (["--tls-required=false"], 0), ([], 0),
])
def test_tls_required_is_a_go_bool_flag(argv, value):
    """A bare --tls-required means true, as Go's IsBoolFlag option does."""
    opts, _ = resolve(Options, [*argv, "--tls-cert", "/c", "--tls-key", "/k"], prog="nsqd",
                      exit_on_error=False)
    assert opts.tls_required == value
