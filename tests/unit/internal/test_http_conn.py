"""internal._httpconn.Conn without sockets: size limits and the phases the sweep times."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from internal._httpconn import Conn, Limits

TIMEOUTS = {"header_timeout": 10.0, "body_timeout": 60.0, "idle_timeout": 120.0}


def make(**kwargs) -> Conn:
    return Conn("1.2.3.4:5", Limits(**{**TIMEOUTS, **kwargs}))


def answered(conn: Conn) -> None:
    """What the server does once the ready requests are answered."""
    conn.ready.clear()


# ---------------------------------------------------------------------------- sizes
def test_content_length_over_limit_is_refused_on_the_headers() -> None:
    conn = make(max_body=100)
    conn.feed(b"POST /x HTTP/1.1\r\nContent-Length: 101\r\n\r\n" + b"a" * 50)
    assert conn.error == (413, "BODY_TOO_BIG")
    assert conn.body == [] and conn.body_size == 0  # nothing of it buffered
    assert not conn.ready


def test_content_length_at_limit_is_accepted() -> None:
    conn = make(max_body=100)
    conn.feed(b"POST /x HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b"a" * 100)
    assert conn.error is None
    (request, _), = conn.ready
    assert request.body == b"a" * 100


def test_chunked_body_refused_as_soon_as_it_crosses_the_limit() -> None:
    conn = make(max_body=100)
    conn.feed(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    conn.feed(b"3c\r\n" + b"a" * 60 + b"\r\n")
    assert conn.error is None and conn.body_size == 60
    conn.feed(b"3c\r\n" + b"b" * 41)  # the chunk is still incomplete
    assert conn.error == (413, "BODY_TOO_BIG")
    assert conn.body_size == 101 and sum(map(len, conn.body)) == 60


def test_path_limits_override_the_default_with_their_message() -> None:
    limits = {b"/pub": (10, "MSG_TOO_BIG"), b"/mpub": (1000, "BODY_TOO_BIG")}
    conn = make(max_body=100, path_body=limits)
    conn.feed(b"POST /pub?topic=t HTTP/1.1\r\nContent-Length: 11\r\n\r\n")
    assert conn.error == (413, "MSG_TOO_BIG")
    # a larger limit for /mpub; other paths keep the default
    conn = make(max_body=100, path_body=limits)
    conn.feed(b"POST /mpub HTTP/1.1\r\nContent-Length: 500\r\n\r\n" + b"m" * 500)
    assert conn.error is None and len(conn.ready) == 1
    conn.feed(b"POST /other HTTP/1.1\r\nContent-Length: 101\r\n\r\n")
    assert conn.error == (413, "BODY_TOO_BIG")
    # chunked: the path's message too
    conn = make(max_body=100, path_body=limits)
    conn.feed(b"POST /pub HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n" + b"x" * 11)
    assert conn.error == (413, "MSG_TOO_BIG")


def test_header_over_limit_is_431() -> None:
    conn = make(max_header=1000)
    conn.feed(b"GET / HTTP/1.1\r\nX-A: " + b"a" * 600)
    assert conn.error is None
    conn.feed(b"a" * 600)
    assert conn.error == (431, "HEADERS_TOO_BIG")


def test_malformed_request_is_400() -> None:
    conn = make()
    conn.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS ClientHello's start
    assert conn.error == (400, "BAD_REQUEST")


# ---------------------------------------------------------------------------- phases and timeouts
def test_new_connection_must_send_its_head_within_the_header_timeout() -> None:
    conn = make()
    assert conn.overdue(100.0) is None  # first sight starts the clock
    assert conn.overdue(109.9) is None
    assert conn.overdue(110.0) == "header"


def test_header_timeout_runs_from_accept_through_a_trickled_head() -> None:
    conn = make()
    conn.overdue(0.0)
    for i, byte in enumerate(b"GET /ping HTTP/1.1\r\n"):
        conn.feed(bytes([byte]))
        now = 0.2 * (i + 1)
        assert conn.overdue(now) == ("header" if now >= 10.0 else None)
    now = 0.2 * 20
    while conn.overdue(now) is None:  # bytes keep coming, the clock is not reset
        conn.feed(b"X")
        now += 0.2
    assert 10.0 <= now < 10.3


def test_keep_alive_request_head_is_timed_from_its_first_sweep() -> None:
    conn = make()
    conn.overdue(0.0)
    conn.feed(b"GET /a HTTP/1.1\r\n\r\n")
    answered(conn)
    assert conn.overdue(5.0) is None  # idle now: a new phase
    conn.feed(b"GET /b HTT")
    assert conn.overdue(100.0) is None  # the head of request 2 starts here
    assert conn.overdue(109.0) is None
    assert conn.overdue(110.0) == "header"


def test_body_must_arrive_within_the_body_timeout() -> None:
    conn = make()
    conn.feed(b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    assert conn.overdue(0.0) is None
    conn.feed(b"de")
    assert conn.overdue(59.0) is None
    assert conn.overdue(60.0) == "body"


def test_idle_keep_alive_connection_times_out() -> None:
    conn = make()
    conn.feed(b"GET / HTTP/1.1\r\n\r\n")
    answered(conn)
    assert conn.overdue(0.0) is None
    assert conn.overdue(119.0) is None
    assert conn.overdue(120.0) == "idle"


def test_running_handler_is_not_timed_and_restarts_the_clock() -> None:
    conn = make()
    conn.feed(b"GET / HTTP/1.1\r\n\r\n")
    conn.busy = True
    assert conn.overdue(0.0) is None
    assert conn.overdue(1000.0) is None
    conn.busy = False
    answered(conn)
    assert conn.overdue(1001.0) is None
    assert conn.overdue(1121.0) == "idle"


def test_unsent_output_is_timed_with_the_body_timeout() -> None:
    conn = make()
    conn.feed(b"GET / HTTP/1.1\r\n\r\n")
    answered(conn)
    conn.out = memoryview(b"pending response")  # the reactor waits for the client to read
    assert conn.overdue(0.0) is None
    assert conn.overdue(60.0) == "send"
    conn = make()
    conn.feed(b"GET / HTTP/1.1\r\n\r\n")
    conn.busy = conn.sending = True  # a task blocked in send()
    assert conn.overdue(0.0) is None
    assert conn.overdue(60.0) == "send"


@pytest.mark.parametrize(
    "data", [b"", b"GET / HT", b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"])
def test_no_timeout_when_disabled(data: bytes) -> None:
    conn = make(header_timeout=None, body_timeout=None, idle_timeout=None)
    conn.feed(data)
    conn.overdue(0.0)
    assert conn.overdue(1e9) is None


def test_pipelined_requests_count_as_requests() -> None:
    conn = make()
    conn.feed(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HT")
    assert conn.requests == 3 and len(conn.ready) == 2
    assert conn.in_headers and not conn.in_body


# ---------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("query", [
    "topic=t", "topic", "=v", "topic=", "a=b=c", "t=%20x", "a=1&b=2", "a+b=c", "a;b=c",
    "a=1&a=2", "&", "a=b&", "t=caf%C3%A9", "t=%zz",
])
def test_query_is_parse_qs_with_blank_values(query: str) -> None:
    conn = make()
    conn.feed(f"GET /x?{query} HTTP/1.1\r\n\r\n".encode())
    (request, _), = conn.ready
    assert request.query == parse_qs(query, keep_blank_values=True)
    assert request.query_string == query


def test_header_names_lowercased_and_repeats_joined() -> None:
    conn = make()
    conn.feed(b"GET /x HTTP/1.1\r\nContent-Type: a\r\nX-Thing: 1\r\ncontent-type: b\r\n"
              b"x-thing: 2\r\nACCEPT: c\r\n\r\n")
    (request, _), = conn.ready
    assert request.headers == {"content-type": "a, b", "x-thing": "1, 2", "accept": "c"}


def test_repeated_target_parses_as_a_fresh_one() -> None:
    # a keep-alive connection reuses the last target's parse: each request still gets
    # what parsing its own target gives
    targets = [b"/pub?topic=t", b"/pub?topic=t", b"/pub?topic=u", b"/p%20b?a=1&a=2",
               b"/p%20b?a=1&a=2", b"http://h:1/x/y?q=1", b"/pub?topic=t", b"/", b"/"]
    conn = make()
    for target in targets:
        conn.feed(b"GET " + target + b" HTTP/1.1\r\n\r\n")
        (request, _), = conn.ready
        answered(conn)
        fresh = make()
        fresh.feed(b"GET " + target + b" HTTP/1.1\r\n\r\n")
        (expected, _), = fresh.ready
        assert (request.path, request.query, request.query_string) == (
            expected.path, expected.query, expected.query_string)
    conn.feed(b"GET http://[::1 HTTP/1.1\r\n\r\n")
    assert conn.error == (400, "INVALID_REQUEST") and not conn.ready


@pytest.mark.parametrize(("length", "refused"), [
    (b"9", False), (b"10", False), (b"11", True), (b"0010", False), (b"0000000011", True),
    (b"99999999999", True),
])
def test_content_length_checked_against_the_smallest_limit(length: bytes, refused: bool) -> None:
    conn = make(max_body=100, path_body={b"/pub": (10, "MSG_TOO_BIG")})
    conn.feed(b"POST /pub HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\n")
    assert conn.error == ((413, "MSG_TOO_BIG") if refused else None)
