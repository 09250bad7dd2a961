"""internal.logs, internal.version and internal.netaddr."""

from __future__ import annotations

import io
import logging
import platform
import re

import pytest

from internal import logs
from internal.netaddr import join_host_port, split_host_port
from internal.version import NSQ_VERSION, PROJECT_VERSION, version_string

LINE = re.compile(r"^\[nsqd\] \d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}\.\d{6} (\w+): (.*)$")


@pytest.fixture
def stream():
    root = logging.getLogger()
    saved_level = root.level
    saved = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    out = io.StringIO()
    yield out
    for handler in list(root.handlers):
        if isinstance(handler, logs._NSQHandler):
            root.removeHandler(handler)
    root.setLevel(saved_level)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def lines(out: io.StringIO) -> list[tuple[str, str]]:
    result = []
    for line in out.getvalue().splitlines():
        m = LINE.match(line)
        assert m, line
        result.append((m.group(1), m.group(2)))
    return result


def test_nsq_line_format_and_level_names(stream):
    logs.setup_logging("[nsqd] ", "debug", stream=stream)
    log = logging.getLogger("nsqd.topic")
    log.debug("PROTOCOL(V2): [%s] %s", "c", "NOP")
    log.info("TOPIC(%s): created", "test")
    log.warning("w")
    log.error("e")
    log.critical("f")
    assert lines(stream) == [
        ("DEBUG", "PROTOCOL(V2): [c] NOP"), ("INFO", "TOPIC(test): created"),
        ("WARNING", "w"), ("ERROR", "e"), ("FATAL", "f"),
    ]


def test_level_filter_and_runtime_change(stream):
    logs.setup_logging("[nsqd] ", "WARN", stream=stream)
    log = logging.getLogger("nsqd.x")
    log.info("hidden")
    log.warning("shown")
    logs.set_level("debug")
    assert logs.level_name(logs.get_level()) == "debug"
    log.debug("now visible")
    assert [m for _, m in lines(stream)] == ["shown", "now visible"]


def test_setup_twice_does_not_duplicate_and_quiets_httpx(stream):
    logs.setup_logging("[nsqd] ", "info", stream=io.StringIO())
    logs.setup_logging("[nsqd] ", "info", stream=stream)
    logging.getLogger("nsqd").info("once")
    logging.getLogger("httpx").info("HTTP Request: GET /")
    assert [m for _, m in lines(stream)] == ["once"]


def test_exception_traceback_follows_line(stream):
    logs.setup_logging("[nsqd] ", "info", stream=stream)
    try:
        raise KeyError("k")
    except KeyError:
        logging.getLogger("nsqd").exception("failed")
    text = stream.getvalue()
    assert LINE.match(text.splitlines()[0]) and "KeyError: 'k'" in text


def test_parse_level():
    assert logs.parse_level("Info") == logging.INFO
    assert logs.parse_level("fatal") == logging.CRITICAL
    with pytest.raises(ValueError, match=r"invalid log level 'verbose' \(debug, info, warn"):
        logs.parse_level("verbose")
    assert logs.level_name(logging.WARNING) == "warn"


def test_version_string():
    assert NSQ_VERSION == "1.3.0" and PROJECT_VERSION
    assert version_string("nsqd") == (f"nsqd v1.3.0 (built w/python{platform.python_version()}"
                                      f" trio-nsq/{PROJECT_VERSION})")


@pytest.mark.parametrize(("addr", "expected"), [
    ("0.0.0.0:4150", ("0.0.0.0", 4150)), ("[::1]:4150", ("::1", 4150)),
    (":4150", ("", 4150)), ("localhost:0", ("localhost", 0)), ("[::]:80", ("::", 80)),
])
def test_split_host_port(addr, expected):
    assert split_host_port(addr) == expected
    assert split_host_port(join_host_port(*expected)) == expected


@pytest.mark.parametrize("bad", ["4150", "::1:4150", "[::1]4150", "[::1:4150", "h:port",
                                 "h:", "h:65536", "a]:1"])
def test_split_host_port_errors(bad):
    with pytest.raises(ValueError):
        split_host_port(bad)


def test_join_host_port():
    assert join_host_port("::1", 4150) == "[::1]:4150"
    assert join_host_port("127.0.0.1", "80") == "127.0.0.1:80"
