"""The Jinja2 environment that renders every nsqadmin page and chart.

Templates live in ``nsqadmin/templates`` (package data) and are compiled once, when
nsqadmin starts (:func:`load_templates`). Autoescaping is on for every template, so
data is never escaped by hand, and an undefined variable is an error rather than an
empty string.

Templates are written indented, one element per line; the loader joins each line to
the next with its leading whitespace removed, so the served HTML stays compact. A
space that matters at a line end is written as ``{{ " " }}``, and a tag that spans
lines breaks only where no space is needed (after a comma).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import quote

import jinja2

from internal.version import NSQ_VERSION

from .charts import format_number

__all__ = ["environment", "load_templates", "render", "render_macro", "url_segment"]

_LINE_BREAK = re.compile(r"\n\s*")


class _JoinedLinesLoader(jinja2.PackageLoader):
    """A package loader that removes line breaks and indentation from the sources."""

    def get_source(self, environment: jinja2.Environment,
                   template: str) -> tuple[str, str, Callable[[], bool] | None]:
        source, filename, uptodate = super().get_source(environment, template)
        return _LINE_BREAK.sub("", source), filename, uptodate


def _commafy(value: int | float) -> str:
    """NSQ's ``commafy``."""
    return f"{int(value):,}"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{format_number(value)}/s"


def _duration(ns: int) -> str:
    """NSQ's ``nanotohuman`` for connection ages: ``3h2m5s``."""
    seconds = max(0, ns // 1_000_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _latency(ns: float) -> str:
    if ns >= 1e9:
        return f"{ns / 1e9:.2f}s"
    if ns >= 1e6:
        return f"{ns / 1e6:.1f}ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f}µs"
    return f"{ns:.0f}ns"


def _general(value: float) -> str:
    """A number in Python's ``g`` format (``5``, ``0.5``)."""
    return f"{value:g}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def url_segment(value: str) -> str:
    """A URL path segment (``:``, ``[`` and ``]`` of node addresses kept)."""
    return quote(value, safe=":[]")


@cache
def environment() -> jinja2.Environment:
    """The shared environment (built on first use, then reused)."""
    env = jinja2.Environment(
        loader=_JoinedLinesLoader("nsqadmin", "templates"),
        autoescape=jinja2.select_autoescape(("html", "svg"), default_for_string=True,
                                            default=True),
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
    )
    env.filters.update(n=_commafy, rate=_rate, duration=_duration, latency=_latency,
                       plural=_plural, q=url_segment, g=_general, json=json.dumps)
    env.globals["NSQ_VERSION"] = NSQ_VERSION
    return env


def load_templates() -> None:
    """Compile every template now, so a missing or broken one fails at startup."""
    env = environment()
    for name in env.list_templates():
        env.get_template(name)


def render(template: str, /, **variables: Any) -> str:
    """Render ``template`` with ``variables``."""
    return environment().get_template(template).render(**variables)


@cache
def render_macro(template: str, macro: str) -> Callable[..., str]:
    """A macro of ``template`` as a plain function returning text."""
    module = environment().get_template(template).module
    fn = getattr(module, macro)

    def call(*args: Any, **kwargs: Any) -> str:
        return str(fn(*args, **kwargs))
    return call
