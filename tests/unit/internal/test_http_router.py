"""Router and response helpers without sockets."""

from __future__ import annotations

import json

import pytest

from internal._httpmsg import render
from internal.http import (
    HTTPError,
    Request,
    Response,
    Router,
    error_response,
    json_response,
    text,
)


async def a(req: Request) -> Response:
    return text("a")


async def b(req: Request) -> Response:
    return text("b")


def request(method: str, path: str, query_string: str = "") -> Request:
    return Request(method, path, {}, {}, query_string=query_string)


def test_static_beats_param_route():
    router = Router()
    router.add("GET", "/topics/:topic", a)
    router.add("GET", "/topics/list", b)
    assert router.lookup("GET", "/topics/list") == (b, {})
    assert router.lookup("GET", "/topics/x") == (a, {"topic": "x"})


def test_param_segment_must_be_non_empty():
    router = Router()
    router.add("GET", "/config/:opt", a)
    with pytest.raises(HTTPError) as info:
        router.lookup("GET", "/config/")
    assert info.value.status == 404 and info.value.message == "NOT_FOUND"


def test_catch_all_only_last_and_names_required():
    router = Router()
    with pytest.raises(ValueError):
        router.add("GET", "/a/*rest/b", a)
    with pytest.raises(ValueError):
        router.add("GET", "/a/:", a)
    with pytest.raises(ValueError):
        router.add("GET", "relative", a)


def test_duplicate_registration_rejected():
    router = Router()
    router.add(("GET", "POST"), "/x/:id", a)
    with pytest.raises(ValueError):
        router.add("post", "/x/:id", b)
    router.add("DELETE", "/x/:id", b)
    assert router.lookup("DELETE", "/x/1") == (b, {"id": "1"})


def test_method_not_allowed_lists_methods():
    router = Router()
    router.add(("PUT", "GET"), "/config/:opt", a)
    with pytest.raises(HTTPError) as info:
        router.lookup("POST", "/config/x")
    assert info.value.status == 405
    assert info.value.headers == [("Allow", "GET, PUT, OPTIONS")]


async def test_router_is_a_handler_and_redirects():
    router = Router(base_path="/base")
    router.add("GET", "/p/:name", a)
    assert (await router(request("GET", "/base/p/z"))).body == b"a"
    moved = router(request("GET", "/base/p/z/", "q=1"))  # generated handlers answer inline
    assert isinstance(moved, Response) and moved.status == 301 and moved.headers == [("Location", "/base/p/z?q=1")]
    with pytest.raises(HTTPError):
        router(request("GET", "/p/z"))


def test_helpers_shapes():
    err = error_response(404, "TOPIC_NOT_FOUND")
    assert json.loads(err.body) == {"message": "TOPIC_NOT_FOUND"}
    assert err.content_type == "application/json; charset=utf-8"
    assert ("X-NSQ-Content-Type", "nsq; version=1.0") in err.headers
    assert json_response({"a": [1, "é"]}).body == '{"a":[1,"é"]}'.encode()
    assert text("OK", v1=False).headers == []
    assert str(HTTPError(400, "INVALID_TOPIC")) == "400 INVALID_TOPIC"


def test_render_rules():
    data = render(Response(204, b"ignored"), "DATE", "", False)
    assert b"Content-Length" not in data and data.endswith(b"\r\n\r\n")
    data = render(Response(200, b"abc", "", [("X-A", "1")]), "DATE", "Connection: close\r\n", True)
    assert data == (b"HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Length: 3\r\nX-A: 1\r\n"
                    b"Connection: close\r\n\r\n")
    with pytest.raises(ValueError):
        render(Response(200, b"", headers=[("X-A", "1\r\nInjected: yes")]), "D", "", False)
    with pytest.raises(ValueError):
        render(Response(42), "D", "", False)
