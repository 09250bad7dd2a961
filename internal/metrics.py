"""Prometheus ``GET /metrics`` for the daemons: the text exposition format (0.0.4).

Each daemon renders its series at scrape time from its own counters into an
:class:`Exposition`: nothing is counted per message for Prometheus. The daemon's series
are formatted here (some 30k series, e.g. 1,000 topics x 3 channels, render in a few
milliseconds, several times faster than ``prometheus_client.generate_latest``); the
process series (``process_*``: RSS, CPU, open fds; ``python_gc_*``; ``python_info``)
come from ``prometheus_client``'s collectors.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client import generate_latest

from .http import Response

__all__ = ["CONTENT_TYPE", "Exposition", "label_set", "metrics_response", "process_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_process_registry: CollectorRegistry | None = None


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def label_set(*pairs: tuple[str, str]) -> str:
    """``name="value",...`` (escaped), to put between braces."""
    return ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)


def _number(value: float) -> str:
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class Family:
    """One metric family: ``# HELP``, ``# TYPE`` and its samples."""

    __slots__ = ("help", "kind", "lines", "name")

    def __init__(self, name: str, kind: str, help: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help
        self.lines: list[str] = []

    def add(self, labels: str, value: float, suffix: str = "") -> None:
        """A sample; ``labels`` from :func:`label_set` ("" for none), ``suffix`` e.g.
        ``_count`` for a summary's parts."""
        if labels:
            self.lines.append(f"{self.name}{suffix}{{{labels}}} {_number(value)}\n")
        else:
            self.lines.append(f"{self.name}{suffix} {_number(value)}\n")

    def add_summary(self, labels: str, quantiles: Sequence[tuple[float, float]],
                    count: float, total: float) -> None:
        """A summary's ``quantile`` samples, ``_sum`` and ``_count``."""
        sep = "," if labels else ""
        for q, value in quantiles:
            self.lines.append(f'{self.name}{{{labels}{sep}quantile="{q!r}"}} {_number(value)}\n')
        self.add(labels, total, "_sum")
        self.add(labels, count, "_count")


class Exposition:
    """Families in the order they were declared, rendered as one text body."""

    def __init__(self) -> None:
        self._families: list[Family] = []

    def family(self, name: str, kind: str, help: str) -> Family:
        fam = Family(name, kind, help)
        self._families.append(fam)
        return fam

    def families(self) -> Iterable[Family]:
        return iter(self._families)

    def render(self) -> bytes:
        out: list[str] = []
        for fam in self._families:
            out.append(f"# HELP {fam.name} {fam.help}\n# TYPE {fam.name} {fam.kind}\n")
            out.extend(fam.lines)
        return "".join(out).encode()


def process_metrics() -> bytes:
    """``prometheus_client``'s process, GC and platform series of this process."""
    global _process_registry
    if _process_registry is None:
        registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        PlatformCollector(registry=registry)
        _process_registry = registry
    return generate_latest(_process_registry)


def metrics_response(exposition: Exposition) -> Response:
    """The ``/metrics`` response: the daemon's families, then the process ones."""
    return Response(200, exposition.render() + process_metrics(), CONTENT_TYPE)
