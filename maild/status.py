"""``maild status``: what the running system is doing, read from the database alone.

The daemon writes its heartbeat and each part's health into ``components``; the spool, the
outbox and the quarantine are counted from their tables. So ``status`` works from any shell
on any host that reaches the database, and needs no socket to the daemon. The exit code
follows the monitoring-plugin convention (0 ok, 1 warning, 2 critical).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from maild.store import backlog, health
from maild.store.tables import utcnow

OK, WARNING, CRITICAL = 0, 1, 2

SPOOL_WARN, SPOOL_CRITICAL = timedelta(minutes=2), timedelta(minutes=15)
OUTBOX_WARN, OUTBOX_CRITICAL = timedelta(minutes=30), timedelta(hours=4)
RECENT = timedelta(hours=24)  # failures younger than this are worth a warning


@dataclass(frozen=True)
class Problem:
    level: int
    text: str


_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _age(now: datetime, value: datetime | None) -> float | None:
    return round((now - value).total_seconds(), 1) if value else None


def _latest(rows: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The freshest row of a component across daemon instances."""
    found = [row for row in rows if row["name"] == name]
    return max(found, key=lambda row: row["last_success_at"] or row["heartbeat_at"] or _EPOCH, default=None)


def _daemon(rows: list[dict[str, Any]]) -> dict[str, Any]:
    daemons = sorted((row for row in rows if row["name"] == "daemon"),
                     key=lambda row: row["heartbeat_at"] or _EPOCH, reverse=True)
    alive = [row for row in daemons if row["running"]]
    newest = (alive or daemons or [None])[0]
    return {
        "running": bool(alive),
        "pid": newest["pid"] if newest else None,
        "started_at": _iso(newest["started_at"]) if newest else None,
        "heartbeat_at": _iso(newest["heartbeat_at"]) if newest else None,
        "instances": [{"instance": row["instance"], "pid": row["pid"], "started_at": _iso(row["started_at"]),
                       "heartbeat_at": _iso(row["heartbeat_at"])} for row in alive],
    }


def _spool(session: Session, now: datetime) -> dict[str, Any]:
    pending, oldest = backlog.spool(session)
    return {"pending": pending, "oldest_pending_seconds": _age(now, oldest) if pending else None}


def _outbox(session: Session, now: datetime) -> dict[str, Any]:
    queued, oldest = backlog.outbox(session)
    return {"queued": queued, "failed": backlog.failed_mail(session),
            "failed_last_24h": backlog.failed_mail(session, since=now - RECENT),
            "oldest_queued_seconds": _age(now, oldest) if queued else None}


def _quarantine(session: Session, now: datetime) -> dict[str, Any]:
    return {"count": backlog.quarantined(session),
            "errors_last_24h": backlog.quarantined(session, ("error", "unparseable"), since=now - RECENT)}


def _health(row: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "last_success_at": _iso(row["last_success_at"]) if row else None,
        "last_error": row["last_error"] if row else None,
        "last_error_at": _iso(row["last_error_at"]) if row else None,
        "restarts": row["restarts"] if row else 0,
    }


def _failing(row: dict[str, Any] | None) -> bool:
    """The part's latest news is an error."""
    return bool(row and row["last_error_at"]
                and (row["last_success_at"] is None or row["last_error_at"] > row["last_success_at"]))


def collect(engine: sa.Engine, *, mailboxes: list[tuple[str, int]], jobs: list[str], now: datetime | None = None
            ) -> tuple[dict[str, Any], list[Problem]]:
    """Everything ``status`` reports, and what is wrong. ``mailboxes`` are the configured
    ``(name, poll_seconds)``; ``jobs`` the sweep names."""
    now = now or utcnow()
    rows = health.read(engine, now)
    with Session(engine) as session:
        report: dict[str, Any] = {
            "daemon": _daemon(rows),
            "spool": _spool(session, now),
            "quarantine": _quarantine(session, now),
            "outbox": _outbox(session, now),
            "imap": [],
            "sweeps": [],
            "components": [],
        }
    problems: list[Problem] = []
    running = report["daemon"]["running"]
    if not running:
        problems.append(Problem(CRITICAL, "the daemon is not running (no heartbeat in the last "
                                          f"{int(health.STALE_AFTER.total_seconds())} s)"))
    problems += _age_problems("spool: oldest message waiting to be filed", report["spool"]["oldest_pending_seconds"],
                              SPOOL_WARN, SPOOL_CRITICAL)
    problems += _age_problems("outbox: oldest mail waiting to be sent", report["outbox"]["oldest_queued_seconds"],
                              OUTBOX_WARN, OUTBOX_CRITICAL)
    if report["outbox"]["failed_last_24h"]:
        problems.append(Problem(WARNING, f"outbox: {report['outbox']['failed_last_24h']} mail(s) failed for good "
                                         "in the last 24 h (maild outbox list --state failed)"))
    if report["quarantine"]["errors_last_24h"]:
        problems.append(Problem(WARNING, f"quarantine: {report['quarantine']['errors_last_24h']} message(s) could not "
                                         "be processed in the last 24 h (maild quarantine list)"))
    for name, poll_seconds in mailboxes:
        row = _latest(rows, f"imap:{name}")
        report["imap"].append({"name": name, **_health(row)})
        problems += _imap_problems(name, row, poll_seconds, now, running)
    for job in jobs:
        row = _latest(rows, f"sweep:{job}")
        report["sweeps"].append({"job": job, "last_run_at": _iso(row["last_success_at"]) if row else None,
                                 "last_error": row["last_error"] if row and _failing(row) else None})
        if row and _failing(row):
            problems.append(Problem(WARNING, f"sweep {job}: {row['last_error']}"))
    for row in rows:
        if row["name"] == "daemon" or row["name"].startswith(("imap:", "sweep:")) or not row["running"]:
            continue
        report["components"].append({"instance": row["instance"], "name": row["name"], **_health(row)})
        if _failing(row):
            problems.append(Problem(WARNING, f"{row['name']}: {row['last_error']}"))
    return report, problems


def _age_problems(what: str, seconds: float | None, warn: timedelta, critical: timedelta) -> list[Problem]:
    if seconds is None or seconds < warn.total_seconds():
        return []
    level = CRITICAL if seconds >= critical.total_seconds() else WARNING
    return [Problem(level, f"{what} for {_duration(seconds)}")]


def _imap_problems(name: str, row: dict[str, Any] | None, poll_seconds: int, now: datetime, running: bool
                   ) -> list[Problem]:
    if not running:
        return []
    if row is not None and _failing(row):
        since = row["last_success_at"]
        silent = (now - since) if since else None
        level = CRITICAL if silent is None or silent > max(timedelta(seconds=10 * poll_seconds), timedelta(minutes=15)) else WARNING
        return [Problem(level, f"IMAP {name}: {row['last_error']}")]
    if row is None or row["last_success_at"] is None:
        return [Problem(WARNING, f"IMAP {name}: no successful poll yet")]
    return []


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def level_of(problems: list[Problem]) -> int:
    return max((problem.level for problem in problems), default=OK)


def database_label(engine: sa.Engine) -> str:
    """The database URL without its password."""
    return engine.url.render_as_string(hide_password=True)
