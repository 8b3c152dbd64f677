"""Charts as inline SVG, written by hand.

pygal (maintained, 3.1.x in 2026) was the candidate library. Its charts load their
tooltips' JavaScript from a CDN unless told not to, weigh tens of kilobytes each, and size
themselves in pixels; a report needs two simple kinds of bar chart that must print, scale
to a phone, survive mail clients and carry no script. These ~100 lines do that: a
``viewBox`` with ``width="100%"`` (scales), no script, no external reference, every text
escaped, and colours that stay apart in greyscale print (dark and light bars).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

DARK = "#1f4e79"
LIGHT = "#9dc3e6"
INK = "#222222"
GRID = "#cccccc"
FONT = 'font-family="system-ui, sans-serif"'


def _nice_top(value: int) -> int:
    """A round axis maximum at or above ``value`` (1, 2, 5 x 10^n)."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if step * top >= value:
                return step * top
        top *= 10


def week_bars(weeks: Mapping[str, Mapping[str, int]], title: str, series: Sequence[tuple[str, str]]) -> str:
    """Grouped columns per ISO week: ``series`` is ((key, label), ...), at most two."""
    labels = list(weeks)
    width, height, left, bottom, top_pad = 480, 240, 36, 34, 36
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    top = _nice_top(max([weeks[w][key] for w in labels for key, _ in series] + [2]))
    colours = (DARK, LIGHT)
    group = plot_w / max(len(labels), 1)
    bar = min(group * 0.8 / max(len(series), 1), 40)
    parts = [_open(width, height, title)]
    for tick in (0, top // 2, top) if top % 2 == 0 else (0, top):
        y = top_pad + plot_h - plot_h * tick / top
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="13" fill="{INK}">{tick:g}</text>')
    for i, label in enumerate(labels):
        x0 = left + group * i + (group - bar * len(series)) / 2
        for j, (key, name) in enumerate(series):
            value = weeks[label][key]
            h = plot_h * value / top
            x, y = x0 + bar * j, top_pad + plot_h - h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colours[j % 2]}">'
                         f'<title>{escape(label)} {escape(name)}: {value}</title></rect>')
            if value:
                parts.append(f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="12" '
                             f'fill="{INK}">{value}</text>')
        short = label.split("-", 1)[-1] if len(labels) > 1 else label
        parts.append(f'<text x="{left + group * i + group / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                     f'font-size="13" fill="{INK}">{escape(short)}</text>')
    x = left
    for j, (_, name) in enumerate(series):
        parts.append(f'<rect x="{x}" y="8" width="12" height="14" fill="{colours[j % 2]}"/>')
        parts.append(f'<text x="{x + 18}" y="20" font-size="14" fill="{INK}">{escape(name)}</text>')
        x += 30 + 8 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def bars(counts: Mapping[str, int], title: str, limit: int = 10) -> str:
    """Horizontal bars, largest first, at most ``limit`` (the rest summed as "…")."""
    items = list(counts.items())[:limit]
    rest = sum(value for _, value in list(counts.items())[limit:])
    if rest:
        items.append(("…", rest))
    row, label_w, width = 28, 190, 480
    height = max(len(items), 1) * row + 30
    top = max([value for _, value in items] + [1])
    parts = [_open(width, height, title)]
    for i, (name, value) in enumerate(items):
        y = 24 + i * row
        w = (width - label_w - 60) * value / top
        shown = name if len(name) <= 24 else name[:23] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="14" fill="{INK}">'
                     f'{escape(shown)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{row - 8}" fill="{DARK}">'
                     f'<title>{escape(name)}: {value}</title></rect>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="14" fill="{INK}">{value}</text>')
    if not items:
        parts.append(f'<text x="{width / 2}" y="40" text-anchor="middle" font-size="12" fill="{INK}">–</text>')
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
            f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="{escape(title)}" {FONT}>'
            f'<title>{escape(title)}</title>')
