"""Pure logic of the tools: destination choice, JSON filters, file names, go-nsq options."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace

import pytest

from apps._cli import UsageError
from apps._file_logger import filename_format, strftime
from apps._json_filter import JSONFilter, go_json
from apps._nsq import client_config
from apps._select import HostPool, RoundRobin, selector
from apps.nsq_to_file import Options as FileOptions


def test_round_robin_cycles() -> None:
    rr = RoundRobin(["a", "b", "c"])
    assert [rr.get() for _ in range(6)] == ["b", "c", "a", "b", "c", "a"]


def test_host_pool_skips_failed_hosts_until_retry() -> None:
    now = [0.0]
    pool = HostPool(["a", "b"], initial_delay=30, max_delay=100, clock=lambda: now[0])
    assert [pool.get() for _ in range(4)] == ["a", "b", "a", "b"]
    pool.mark("a", False)
    assert {pool.get() for _ in range(4)} == {"b"}
    now[0] = 31.0
    assert "a" in {pool.get() for _ in range(2)}  # retried after its delay
    pool.mark("a", False)  # delay doubles: 60 s
    now[0] = 80.0
    assert {pool.get() for _ in range(4)} == {"b"}
    pool.mark("b", False)  # every host down: all are tried again
    assert {pool.get() for _ in range(4)} == {"a", "b"}
    pool.mark("a", True)
    pool.mark("b", True)
    assert [pool.get() for _ in range(2)] in (["a", "b"], ["b", "a"])


def test_selector_modes() -> None:
    assert isinstance(selector("round-robin", ["a"]), RoundRobin)
    assert isinstance(selector("epsilon-greedy", ["a"]), HostPool)
    with pytest.raises(UsageError):
        selector("all", ["a"])


def test_json_filter_rules() -> None:
    plain = JSONFilter("k")
    assert plain.apply(b'{"k": 1}') == ("pass", b'{"k": 1}')
    assert plain.apply(b'{"j": 1}')[0] == "drop"
    assert plain.apply(b'[1]')[0] == "drop"
    valued = JSONFilter("k", "3")
    assert valued.apply(b'{"k": 3.0}')[0] == "pass"
    assert valued.apply(b'{"k": "3"}')[0] == "pass"
    assert valued.apply(b'{"k": true}')[0] == "drop"
    assert valued.apply(b'{"j": 3}')[0] == "backoff"
    assert JSONFilter("k", "x").apply(b'{"k": 1}')[0] == "drop"
    white = JSONFilter(whitelist=["b", "a", "missing"])
    assert white.apply(b'{"a": 1.0, "b": "\xc3\xa9&", "c": 2}') == ("pass", '{"a":1,"b":"é\\u0026"}'.encode())
    assert go_json({"big": 1e21, "f": 0.5}) == b'{"big":1e+21,"f":0.5}'


def test_go_strftime_subset() -> None:
    when = 1700000000.0
    assert strftime("%Y-%m-%d_%H", when) == time.strftime("%Y-%m-%d_%H", time.localtime(when))
    assert strftime("%j %Q %", when) == "%j %Q %"  # unknown directives stay literal


def test_filename_format_tokens() -> None:
    host = socket.gethostname()
    opts = FileOptions(output_dir="/o", work_dir="/o")
    assert filename_format(opts, "t") == f"t.{host.split('.')[0]}.<DATETIME>.log"
    gz = replace(opts, gzip=True, host_identifier="<HOSTNAME>-x", filename_format="<TOPIC>-<PID><REV>")
    assert filename_format(gz, "t") == f"t-{os.getpid()}<REV>.gz"
    with pytest.raises(ValueError, match="missing <REV>"):
        filename_format(replace(opts, work_dir="/w", filename_format="<TOPIC>"), "t")
    assert filename_format(replace(gz, host_identifier="<SHORT_HOST>", filename_format="<HOST><REV>.gz"),
                           "t") == f"{host.split('.')[0]}<REV>.gz"


def test_client_config_from_go_options() -> None:
    config = client_config(["max_in_flight,7", "snappy", "heartbeat_interval,-1s", "dial_timeout,250ms",
                            "backoff_strategy,full_jitter"], "consumer-opt", user_agent="x")
    assert (config.max_in_flight, config.snappy, config.heartbeat_interval, config.dial_timeout,
            config.backoff_strategy, config.user_agent) == (7, True, None, 0.25, "full_jitter", "x")
    for bad in (["nope,1"], ["max_in_flight,x"], ["dial_timeout,5"], ["snappy", "deflate"]):
        with pytest.raises(UsageError):
            client_config(bad, "consumer-opt")
