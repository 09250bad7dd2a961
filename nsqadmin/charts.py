"""Inline SVG charts: sparklines for tables and time-series charts with axes.

Pure string building (no I/O, no JavaScript needed to draw). Values that are None
are gaps: the line stops and restarts after them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from html import escape

__all__ = ["format_number", "line_chart", "nice_max", "sparkline"]


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
    for x, y in zip(xs, ys):
        if y is None:
            pen_up = True
            continue
        parts.append(f"{'M' if pen_up else 'L'}{x:.1f},{y:.1f}")
        pen_up = False
    return "".join(parts)


def sparkline(values: Sequence[float | None], *, width: int = 120, height: int = 20,
              css_class: str = "spark", title: str = "") -> str:
    """A small line with no axes; an empty box when there is nothing to draw."""
    n = len(values)
    real = [v for v in values if v is not None]
    head = (f'<svg class="{css_class}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img">')
    if title:
        head += f"<title>{escape(title)}</title>"
    if not real:
        return head + "</svg>"
    top = max(real)
    top = top if top > 0 else 1.0
    step = (width - 2) / max(n - 1, 1)
    xs = [1 + i * step for i in range(n)]
    ys = [None if v is None else (height - 2) - (height - 4) * v / top for v in values]
    return head + f'<path d="{_path(xs, ys)}"/></svg>'


def _time_label(t: float, span: float) -> str:
    fmt = "%H:%M:%S" if span < 600 else "%H:%M"
    return time.strftime(fmt, time.localtime(t))


def line_chart(times: Sequence[float], values: Sequence[float | None], *, title: str,
               unit: str = "", width: int = 560, height: int = 180,
               css_class: str = "chart", data_series: str = "") -> str:
    """A time-series chart with a y axis (0 to a round maximum), time labels and the
    latest value in the title line.

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
    latest = next((v for v in reversed(values) if v is not None), None)
    ymax = nice_max(max(real) if real else 0.0)
    attrs = f' data-series="{escape(data_series)}"' if data_series else ""
    out = [f'<svg class="{css_class}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" data-points="{len(real)}"{attrs}>',
           f"<title>{escape(title)}</title>",
           f'<text class="chart-title" x="{left}" y="15">{escape(title)}</text>']
    if latest is not None:
        out.append(f'<text class="chart-latest" x="{width - right}" y="15" text-anchor="end">'
                   f'{escape(format_number(latest))}{" " + escape(unit) if unit else ""}</text>')
    # grid and y labels
    for i in range(5):
        frac = i / 4
        y = top + ph - ph * frac
        out.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}"/>')
        out.append(f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                   f"{escape(format_number(ymax * frac))}</text>")
    out.append(f'<rect class="frame" x="{left}" y="{top}" width="{pw}" height="{ph}"/>')
    if len(times) >= 1 and real:
        t0, t1 = times[0], times[-1]
        span = max(t1 - t0, 1e-9)
        xs = [left + pw * ((t - t0) / span if len(times) > 1 else 1.0) for t in times]
        ys = [None if v is None else top + ph - ph * min(v / ymax, 1.0) for v in values]
        d = _path(xs, ys)
        out.append(f'<path class="line" d="{d}"/>')
        if len(real) == 1:
            i = next(i for i, v in enumerate(ys) if v is not None)
            dot_y = ys[i]
            assert dot_y is not None
            out.append(f'<circle class="dot" cx="{xs[i]:.1f}" cy="{dot_y:.1f}" r="2.5"/>')
        labels = 4 if len(times) > 1 else 1
        shown: set[str] = set()
        for i in range(labels):
            frac = i / (labels - 1) if labels > 1 else 1.0
            label = _time_label(t0 + span * frac, span)
            if label in shown:
                continue
            shown.add(label)
            x = left + pw * frac
            anchor = "start" if i == 0 and labels > 1 else "end" if frac == 1.0 else "middle"
            out.append(f'<text class="axis" x="{x:.1f}" y="{height - 6}" text-anchor="{anchor}">'
                       f"{escape(label)}</text>")
    else:
        out.append(f'<text class="empty" x="{left + pw / 2}" y="{top + ph / 2 + 4}" '
                   f'text-anchor="middle">waiting for samples…</text>')
    out.append("</svg>")
    return "".join(out)
