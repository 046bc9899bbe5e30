"""Inline SVG charts for the drill report: lines over time, lanes of states, step markers.

Pure string building, no dependencies: each function returns one `<svg>`
element sized in pixels, with a `<title>` for screen readers and hover text
on the marks. Time runs left to right in seconds of the drill; every chart
of one report shares the same time range, so they line up.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
LEFT, RIGHT, TOP, BOTTOM = 38, 8, 18, 20


@dataclass(frozen=True)
class Line:
    label: str
    color: str
    points: Sequence[tuple[float, float]]
    dots: bool = False  # draw points, not a line (wire answers)


@dataclass(frozen=True)
class Marker:
    t: float
    label: str


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    color: str
    text: str


@dataclass(frozen=True)
class Lane:
    label: str
    spans: Sequence[Span]


@dataclass(frozen=True)
class Frame:
    t0: float
    t1: float
    width: int = 380
    height: int = 150
    left: int = LEFT  # room for the axis or the lane labels

    def x(self, t: float) -> float:
        span = self.t1 - self.t0 or 1.0
        return self.left + (t - self.t0) / span * (self.width - self.left - RIGHT)


def _axis_times(frame: Frame, bottom: float) -> str:
    span = frame.t1 - frame.t0
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if span / s <= 8), 1200)
    out = []
    t = (int(frame.t0 // step) + 1) * step if frame.t0 > 0 else 0
    while t <= frame.t1:
        x = frame.x(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 3}" stroke="#999"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{bottom + 13}" font-size="9" text-anchor="middle">{t:g}s</text>'
        )
        t += step
    return "".join(out)


def _markers(
    frame: Frame, markers: Sequence[Marker], top: float, bottom: float, rows: int = 3
) -> str:
    out = []
    for i, m in enumerate(markers):
        if not frame.t0 <= m.t <= frame.t1:
            continue
        x = frame.x(m.t)
        out.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#555"'
            f' stroke-dasharray="3,3"><title>{escape(m.label)} at {m.t:.1f}s</title></line>'
        )
        y = top + 8 + (i % rows) * 9
        out.append(
            f'<text x="{x + 2:.1f}" y="{y}" font-size="8" fill="#555">{escape(m.label)}</text>'
        )
    return "".join(out)


def line_chart(
    title: str,
    lines: Sequence[Line],
    markers: Sequence[Marker],
    frame: Frame,
    *,
    y_max: float = 100.0,
    y_label: str = "weight",
    sqrt: bool = True,
) -> str:
    """Lines (or dots) over time; on a square-root scale by default, so a 1% cell shows."""
    w, h = frame.width, frame.height
    bottom = h - BOTTOM
    top = TOP

    def y(v: float) -> float:
        frac = min(max(v, 0.0), y_max) / y_max
        return bottom - (math.sqrt(frac) if sqrt else frac) * (bottom - top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img"'
        f' class="chart"><title>{escape(title)}</title>',
        f'<text x="{frame.left}" y="11" font-size="10" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{frame.left}" y="{top}" width="{w - frame.left - RIGHT}" height="{bottom - top}"'
        ' fill="#fafafa" stroke="#ccc"/>',
    ]
    for frac in (0.0, 0.01, 0.1, 0.5, 1.0) if sqrt else (0.0, 0.5, 1.0):
        v = y_max * frac
        parts.append(
            f'<text x="{frame.left - 3}" y="{y(v) + 3:.1f}" font-size="9" text-anchor="end">{v:g}</text>'
        )
        parts.append(
            f'<line x1="{frame.left}" y1="{y(v):.1f}" x2="{w - RIGHT}" y2="{y(v):.1f}" stroke="#eee"/>'
        )
    parts.append(
        f'<text x="9" y="{(top + bottom) / 2:.0f}" font-size="9" text-anchor="middle"'
        f' transform="rotate(-90 9 {(top + bottom) / 2:.0f})">{escape(y_label)}</text>'
    )
    parts.append(_axis_times(frame, bottom))
    parts.append(_markers(frame, markers, top, bottom))
    for line in lines:
        pts = [(frame.x(t), y(v)) for t, v in line.points if frame.t0 <= t <= frame.t1]
        if not pts:
            continue
        if line.dots:
            parts += [
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="1.6" fill="{line.color}"'
                ' fill-opacity="0.55"/>'
                for px, py in pts
            ]
            continue
        steps = [f"{pts[0][0]:.1f},{pts[0][1]:.1f}"]
        for (_x0, y0), (x1, y1) in itertools.pairwise(pts):
            steps.append(f"{x1:.1f},{y0:.1f} {x1:.1f},{y1:.1f}")  # a step line: tables jump
        parts.append(
            f'<polyline points="{" ".join(steps)}" fill="none" stroke="{line.color}"'
            f' stroke-width="1.6"><title>{escape(line.label)}</title></polyline>'
        )
    parts.append(_legend(lines, w))
    parts.append("</svg>")
    return "".join(parts)


def _legend(lines: Sequence[Line], width: int) -> str:
    out = []
    x = width - RIGHT
    for line in reversed([ln for ln in lines if not ln.dots]):
        x -= 6 * len(line.label) + 16
        out.append(f'<rect x="{x}" y="4" width="8" height="8" fill="{line.color}"/>')
        out.append(f'<text x="{x + 10}" y="11" font-size="9">{escape(line.label)}</text>')
    return "".join(out)


def lanes_chart(title: str, lanes: Sequence[Lane], markers: Sequence[Marker], frame: Frame) -> str:
    row = 14
    top = TOP + 20  # room for the step labels above the lanes
    h = top + row * max(1, len(lanes)) + BOTTOM
    w = frame.width
    bottom = top + row * len(lanes)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img"'
        f' class="chart"><title>{escape(title)}</title>',
        f'<text x="{frame.left}" y="11" font-size="10" font-weight="bold">{escape(title)}</text>',
    ]
    for i, lane in enumerate(lanes):
        y = top + i * row
        parts.append(
            f'<text x="{frame.left - 3}" y="{y + 10}" font-size="9" text-anchor="end">'
            f"{escape(lane.label)}</text>"
        )
        parts.append(
            f'<rect x="{frame.left}" y="{y + 1}" width="{w - frame.left - RIGHT}" height="{row - 2}"'
            ' fill="#f3f3f3"/>'
        )
        for span in lane.spans:
            x0, x1 = frame.x(max(span.start, frame.t0)), frame.x(min(span.end, frame.t1))
            if x1 <= x0:
                continue
            parts.append(
                f'<rect x="{x0:.1f}" y="{y + 1}" width="{x1 - x0:.1f}" height="{row - 2}"'
                f' fill="{span.color}"><title>{escape(lane.label)}: {escape(span.text)}'
                f" {span.start:.1f}s..{span.end:.1f}s</title></rect>"
            )
    parts.append(_axis_times(frame, bottom))
    parts.append(_markers(frame, markers, TOP, bottom, rows=2))
    parts.append("</svg>")
    return "".join(parts)


def spans(points: Sequence[tuple[float, str]], end: float, colors: dict[str, str]) -> list[Span]:
    """Consecutive equal states as spans (a state absent from `colors` draws nothing)."""
    out: list[Span] = []
    start: float | None = None
    state = ""
    for t, s in points:
        if start is None:
            start, state = t, s
        elif s != state:
            if state in colors:
                out.append(Span(start, t, colors[state], state))
            start, state = t, s
    if start is not None and state in colors:
        out.append(Span(start, end, colors[state], state))
    return out
