"""Method + path routing with httprouter's behaviour (as NSQ configures it).

* ``:name`` matches one non-empty path segment, ``*name`` (last segment only)
  matches the rest of the path including its leading ``/``.
* A known path with another method → 405 ``METHOD_NOT_ALLOWED`` with an
  ``Allow`` header; ``OPTIONS`` on a known path → 200 with ``Allow``.
* A path that only matches with/without a trailing slash → redirect (301 for
  GET, 307 otherwise), like httprouter's ``RedirectTrailingSlash``.
* Anything else → 404 ``NOT_FOUND``.
"""

from __future__ import annotations

from collections.abc import Awaitable

from internal._httpmsg import Handler, HTTPError, Request, Response

__all__ = ["Router"]

_Methods = dict[str, Handler]
_NO_PARAMS: dict[str, str] = {}


def _join(base: str, pattern: str) -> str:
    """Join like Go's ``path.Join`` (empty segments collapsed)."""
    parts = [p for p in f"{base}/{pattern}".split("/") if p]
    return "/" + "/".join(parts)


class _Route:
    __slots__ = ("catch_all", "methods", "segments")

    def __init__(self, segments: list[str]) -> None:
        self.segments = segments
        self.catch_all = segments[-1].startswith("*")
        self.methods: _Methods = {}

    def match(self, parts: list[str]) -> dict[str, str] | None:
        segs = self.segments
        if self.catch_all:
            if len(parts) < len(segs):
                return None
        elif len(parts) != len(segs):
            return None
        params: dict[str, str] = {}
        for i, seg in enumerate(segs):
            first = seg[:1]
            if first == ":":
                if not parts[i]:
                    return None
                params[seg[1:]] = parts[i]
            elif first == "*":
                params[seg[1:]] = "/" + "/".join(parts[i:])
                return params
            elif seg != parts[i]:
                return None
        return params


class Router:
    """Dispatch requests to handlers (``def`` or ``async def handler(request) -> Response``).

    Args:
        base_path: Prefix joined (Go ``path.Join`` style) onto every pattern,
            as nsqadmin's ``--base-path`` does.
    """

    def __init__(self, base_path: str = "/") -> None:
        self.base_path = _join(base_path, "")
        self._static: dict[str, _Methods] = {}
        self._dynamic: list[_Route] = []

    def add(self, method: str | tuple[str, ...], pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` (or several) on ``pattern``.

        Raises:
            ValueError: If the pattern is malformed or already registered for
                that method.
        """
        if not pattern.startswith("/"):
            raise ValueError(f"pattern must begin with '/': {pattern!r}")
        path = pattern if self.base_path == "/" else _join(self.base_path, pattern)
        methods = (method,) if isinstance(method, str) else method
        segments = path.split("/")[1:]
        if any(s[:1] == "*" for s in segments[:-1]):
            raise ValueError(f"catch-all must be the last segment: {pattern!r}")
        if any(s in (":", "*") for s in segments):
            raise ValueError(f"parameter without a name in {pattern!r}")
        if any(s[:1] in (":", "*") for s in segments):
            route = next((r for r in self._dynamic if r.segments == segments), None)
            if route is None:
                route = _Route(segments)
                self._dynamic.append(route)
            table = route.methods
        else:
            table = self._static.setdefault(path, {})
        for m in methods:
            m = m.upper()
            if m in table:
                raise ValueError(f"{m} {path} is already registered")
            table[m] = handler

    def _find(self, path: str) -> tuple[_Methods | None, dict[str, str]]:
        methods = self._static.get(path)
        if methods is not None:
            return methods, _NO_PARAMS
        parts = path.split("/")[1:]
        for route in self._dynamic:
            params = route.match(parts)
            if params is not None:
                return route.methods, params
        return None, _NO_PARAMS

    def lookup(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """Find the handler and path parameters for a request.

        Returns:
            ``(handler, params)``; the handler may be a generated redirect or
            ``OPTIONS`` responder.

        Raises:
            HTTPError: 405 ``METHOD_NOT_ALLOWED`` or 404 ``NOT_FOUND``.
        """
        methods = self._static.get(path)  # the usual case, looked up without a call
        params = _NO_PARAMS
        if methods is None:
            methods, params = self._find(path)
        if methods is not None:
            handler = methods.get(method)
            if handler is not None:
                return handler, params
        if method != "CONNECT" and path != "/":
            alt = path[:-1] if path.endswith("/") else path + "/"
            alt_methods, _ = self._find(alt)
            if alt_methods is not None and method in alt_methods:
                return _redirect(alt, 301 if method == "GET" else 307), _NO_PARAMS
        if methods is not None:
            allow = ", ".join(sorted(m for m in methods if m != "OPTIONS")) + ", OPTIONS"
            if method == "OPTIONS":
                return _options(allow), _NO_PARAMS
            raise HTTPError(405, "METHOD_NOT_ALLOWED", [("Allow", allow)])
        raise HTTPError(404, "NOT_FOUND")

    def __call__(self, request: Request) -> Response | Awaitable[Response]:
        """Route and run ``request`` (so a Router is itself a handler)."""
        handler, params = self.lookup(request.method, request.path)
        if params:
            request.params = params
        return handler(request)


def _redirect(location: str, status: int) -> Handler:
    def redirect(request: Request) -> Response:
        target = f"{location}?{request.query_string}" if request.query_string else location
        return Response(status, b"", "", [("Location", target)])

    return redirect


def _options(allow: str) -> Handler:
    def options(request: Request) -> Response:
        return Response(200, b"", "", [("Allow", allow)])

    return options
