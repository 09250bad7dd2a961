"""Inline SVG charts: sparklines for tables and time-series charts with axes.

The geometry is computed here; ``templates/charts.svg`` draws it (no JavaScript
needed). Values that are None are gaps: the line stops and restarts after them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Chart", "Spark", "chart", "format_number", "line_chart", "nice_max", "spark",
           "sparkline"]


def nice_max(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^n that is >= ``value`` (1 for value <= 0)."""
    if value <= 0 or math.isnan(value):
        return 1.0
    exp = math.floor(math.log10(value))
    base = 10.0 ** exp
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * base * (1 + 1e-9):
            return step * base
    return 10.0 * base


def format_number(value: float) -> str:
    """Short human form: ``950``, ``12.5``, ``1.2k``, ``3.4M``."""
    if value is None or math.isnan(value):
        return "–"
    a = abs(value)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{value / div:.3g}{suffix}"
    if a >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.3g}"


def _path(xs: Sequence[float], ys: Sequence[float | None]) -> str:
    parts: list[str] = []
    pen_up = True
    for x, y in zip(xs, ys, strict=False):
        if y is None:
            pen_up = True
            continue
        parts.append(f"{'M' if pen_up else 'L'}{x:.1f},{y:.1f}")
        pen_up = False
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Spark:
    """What a sparkline draws: its box and the line (``d`` is empty with no data)."""

    css_class: str
    width: int
    height: int
    title: str
    d: str


@dataclass(frozen=True, slots=True)
class Chart:
    """What a time-series chart draws; coordinates are preformatted text."""

    css_class: str
    width: int
    height: int
    title: str
    data_points: int
    data_series: str
    left: int
    top: int
    plot_width: int
    plot_height: int
    title_x: int
    latest: str | None
    grid: list[tuple[str, str, str]]  # (line y, label y, label)
    d: str
    dot: tuple[str, str] | None  # (cx, cy) when there is a single point
    times: list[tuple[str, str, str]]  # (x, text-anchor, label)
    empty: tuple[str, str] | None  # (x, y) of the "waiting" text when nothing is drawn
    axis_x: int
    time_y: int


def spark(values: Sequence[float | None], *, width: int = 120, height: int = 20,
          css_class: str = "spark", title: str = "") -> Spark:
    """The geometry of a sparkline: a small line with no axes."""
    n = len(values)
    real = [v for v in values if v is not None]
    if not real:
        return Spark(css_class, width, height, title, "")
    top = max(real)
    top = top if top > 0 else 1.0
    step = (width - 2) / max(n - 1, 1)
    xs = [1 + i * step for i in range(n)]
    ys = [None if v is None else (height - 2) - (height - 4) * v / top for v in values]
    return Spark(css_class, width, height, title, _path(xs, ys))


def sparkline(values: Sequence[float | None], *, width: int = 120, height: int = 20,
              css_class: str = "spark", title: str = "") -> str:
    """A sparkline as SVG text; an empty box when there is nothing to draw."""
    from .render import render_macro
    return render_macro("charts.svg", "sparkline")(
        spark(values, width=width, height=height, css_class=css_class, title=title))


def _time_label(t: float, span: float) -> str:
    fmt = "%H:%M:%S" if span < 600 else "%H:%M"
    return time.strftime(fmt, time.localtime(t))


def chart(times: Sequence[float], values: Sequence[float | None], *, title: str,
          unit: str = "", width: int = 560, height: int = 180,
          css_class: str = "chart", data_series: str = "") -> Chart:
    """The geometry of a time-series chart: a y axis from 0 to a round maximum, time
    labels and the latest value in the title line.

    Args:
        times: Sample times (epoch seconds), ascending.
        values: One value (or None) per time.
        title: Caption drawn above the plot.
        unit: Appended to the latest value (``"msg/s"``).
        width: SVG width in pixels.
        height: SVG height in pixels.
        css_class: Class of the ``<svg>`` element.
        data_series: Stored as ``data-series`` on the ``<svg>`` (for scripts and tests).
    """
    left, right, top, bottom = 48, 12, 24, 22
    pw, ph = width - left - right, height - top - bottom
    real = [v for v in values if v is not None]
    last = next((v for v in reversed(values) if v is not None), None)
    latest = None if last is None else format_number(last) + (" " + unit if unit else "")
    ymax = nice_max(max(real) if real else 0.0)
    grid = []
    for i in range(5):
        y = top + ph - ph * (i / 4)
        grid.append((f"{y:.1f}", f"{y + 4:.1f}", format_number(ymax * (i / 4))))
    d, dot, labels, empty = "", None, [], None
    if len(times) >= 1 and real:
        t0, t1 = times[0], times[-1]
        span = max(t1 - t0, 1e-9)
        xs = [left + pw * ((t - t0) / span if len(times) > 1 else 1.0) for t in times]
        ys = [None if v is None else top + ph - ph * min(v / ymax, 1.0) for v in values]
        d = _path(xs, ys)
        if len(real) == 1:
            i = next(i for i, v in enumerate(ys) if v is not None)
            dot_y = ys[i]
            assert dot_y is not None
            dot = (f"{xs[i]:.1f}", f"{dot_y:.1f}")
        count = 4 if len(times) > 1 else 1
        shown: set[str] = set()
        for i in range(count):
            frac = i / (count - 1) if count > 1 else 1.0
            label = _time_label(t0 + span * frac, span)
            if label in shown:
                continue
            shown.add(label)
            anchor = "start" if i == 0 and count > 1 else "end" if frac == 1.0 else "middle"
            labels.append((f"{left + pw * frac:.1f}", anchor, label))
    else:
        empty = (f"{left + pw / 2}", f"{top + ph / 2 + 4}")
    return Chart(css_class, width, height, title, len(real), data_series, left, top, pw, ph,
                 width - right, latest, grid, d, dot, labels, empty, left - 6, height - 6)


def line_chart(times: Sequence[float], values: Sequence[float | None], *, title: str,
               unit: str = "", width: int = 560, height: int = 180,
               css_class: str = "chart", data_series: str = "") -> str:
    """A time-series chart as SVG text (arguments as for :func:`chart`)."""
    from .render import render_macro
    return render_macro("charts.svg", "line_chart")(
        chart(times, values, title=title, unit=unit, width=width, height=height,
              css_class=css_class, data_series=data_series))
