"""``maild report`` on a terminal: rich tables whose every cell is plain, escaped text
(a subject or a category name comes from mail or from rules and is never markup)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from maild.report.labels import decimal, labels, percent
from maild.terminal import terminal_safe


def _cell(value: Any) -> Text:
    return Text(terminal_safe(str(value)))


def _table(title: str, headers: tuple[str, ...], rows: list[tuple[Any, ...]], numeric_from: int = 1) -> Table:
    table = Table(title=_cell(title), title_justify="left", show_edge=False)
    for i, header in enumerate(headers):
        table.add_column(_cell(header), justify="right" if i >= numeric_from else "left")
    for row in rows:
        table.add_row(*map(_cell, row))
    return table


def render(report: dict[str, Any], language: str) -> Iterator[RenderableType]:
    t = labels(language)
    period = report["period"]
    yield _cell(f"{t['period']} {period['from']} – {period['to']} ({period['timezone']}), {t['as_of']} {period['as_of'][:16].replace('T', ' ')}")
    parts: list[tuple[str, dict[str, Any]]] = []
    if report.get("queue") is None:
        parts.append((t["overall"], report["overall"]))
    parts += [(queue, part) for queue, part in report["queues"].items()]
    yield _table("", ("", *(title for title, _ in parts)), [
        (t["created"], *(p["created"] for _, p in parts)),
        (t["resolved"], *(p["resolved"] for _, p in parts)),
        (t["backlog"], *(p["backlog"] for _, p in parts)),
        (f"{t['first_response']}, {t['median']}", *(decimal(p["first_response_hours"]["median"], language) for _, p in parts)),
        (f"{t['first_response']}, {t['p90']}", *(decimal(p["first_response_hours"]["p90"], language) for _, p in parts)),
        (f"{t['resolution']}, {t['median']}", *(decimal(p["resolution_hours"]["median"], language) for _, p in parts)),
        (f"{t['resolution']}, {t['p90']}", *(decimal(p["resolution_hours"]["p90"], language) for _, p in parts)),
        (t["sla_met"], *(percent(p["sla_met_percent"], language) for _, p in parts)),
    ])
    for title, part in parts:
        yield _cell("")
        name = part.get("name")
        yield _cell(f"== {name} ({title}) ==" if name else f"== {title} ==")
        yield _table(t["weeks"], (t["week"], t["created"], t["resolved"]),
                     [(week, row["created"], row["resolved"]) for week, row in part["weeks"].items()])
        yield _table(t["categories"], (t["name"], t["count"]),
                     [*part["categories"].items(), (f"({t['uncategorised']})", part["uncategorised"])])
        yield _table(t["rules"], (t["name"], t["count"]),
                     [*part["rules"].items(), (f"({t['no_rule']})", part["no_rule"])])
        yield _table(t["channels"], (t["name"], t["count"]), list(part["channels"].items()))
        yield _table(t["staff"], (t["name"], t["assigned"], t["answered"]),
                     [(person, row["assigned"], row["answered"]) for person, row in part["staff"].items()])
        if part["oldest_open"]:
            yield _table(t["oldest"], ("", t["subject"], t["status"], t["assignee"], t["since"]),
                         [(i["tag"], i["subject"], i["status"], i["assignee"] or "", i["created_at"][:10])
                          for i in part["oldest_open"]], numeric_from=99)
        if part["hidden"]:
            yield _cell(f"+ {part['hidden']} {t['hidden']}")
