"""The reads behind a report: a few queries, streamed, on SQLite and PostgreSQL alike.

- The tickets created in the period, one row each, streamed (``yield_per``): no subject
  (only the listed few are read afterwards), times as stored.
- A ticket whose status changed after the report's end (``status_changed_at``) is replayed
  from its ``status`` events up to the end; every other ticket's row already is its state
  at the end. For the default period, which ends now, nothing needs replaying.
- Channels and matched rules are counted by the database from each ticket's ``created``
  event, grouped by queue; answers (``relayed`` events, by their staff writer) likewise.

Attribution follows the ticket as it stands now: its queue, category, priority and
assignee (a moved ticket counts in the queue it was moved to; a category set by staff
later is the better one). Status, answers and resolution are taken as of the end.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, col, select

from maild.report.figures import DONE, Facts, Period, Tallies
from maild.store.tables import Event, Ticket

STREAM = 10_000


class epoch(FunctionElement[int]):
    """A timestamp column as whole POSIX seconds, computed by the database: a million
    datetimes are not built in Python only to be turned into numbers."""

    type = sa.BigInteger()
    inherit_cache = True


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"unixepoch({column})" if sqlite3.sqlite_version_info >= (3, 38) else f"CAST(strftime('%s', {column}) AS INTEGER)"


@compiles(epoch, "postgresql")
def _epoch_postgresql(element: epoch, compiler: Any, **kw: Any) -> str:
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


def period_of(start: date, end: date, zone: ZoneInfo, now: datetime) -> Period:
    """``start`` to ``end`` (local days, both included) as POSIX bounds, as of ``min(end, now)``."""
    start_ts = datetime.combine(start, time(), zone).timestamp()
    end_ts = datetime.combine(end + timedelta(days=1), time(), zone).timestamp()
    return Period(start, end, start_ts, end_ts, min(end_ts, now.timestamp()))


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _created_in(period: Period, queue: str | None) -> list[Any]:
    where = [Ticket.created_at >= _utc(period.start_ts), Ticket.created_at < _utc(period.as_of_ts)]
    if queue is not None:
        where.append(Ticket.queue == queue)
    return where


def _replayed(session: Session, period: Period, queue: str | None) -> dict[int, tuple[str, float | None]]:
    """Status at the end and when it was (last) resolved, for the tickets changed since."""
    as_of = _utc(period.as_of_ts)
    query = (select(Event.ticket_id, epoch(Event.at), Event.data["new"].as_string())
             .join(Ticket, col(Ticket.id) == Event.ticket_id)
             .where(*_created_in(period, queue), Ticket.status_changed_at >= as_of, Event.kind == "status",
                    Event.at < as_of)
             .order_by(Event.ticket_id, Event.at, Event.id))
    state: dict[int, tuple[str, float | None]] = {}
    for ticket_id, at, new in session.exec(query):
        _, resolved = state.get(ticket_id, ("new", None))
        if new == "resolved" or (new == "closed" and resolved is None):
            resolved = at
        elif new not in DONE:
            resolved = None
        state[ticket_id] = (new, resolved)
    return state


FACT_COLUMNS = (Ticket.id, Ticket.number, Ticket.queue, Ticket.priority, Ticket.category, Ticket.status,
                Ticket.assignee, Ticket.confidential, epoch(Ticket.created_at), epoch(Ticket.first_response_at),
                epoch(sa.func.coalesce(Ticket.resolved_at, Ticket.closed_at)), epoch(Ticket.status_changed_at))


def facts(session: Session, period: Period, queue: str | None = None) -> Iterator[Facts]:
    """Each ticket created in ``period`` as it stood at the end, streamed."""
    replayed = _replayed(session, period, queue)
    as_of = period.as_of_ts
    query = sa.select(*FACT_COLUMNS).where(*_created_in(period, queue)).execution_options(yield_per=STREAM)
    for rows in session.connection().execute(query).partitions(STREAM):
        for (ticket_id, number, queue_id, priority, category, status, assignee, confidential, created,
             answered, done, changed) in rows:
            if answered is not None and answered >= as_of:
                answered = None
            if changed < as_of:
                resolved = done if status in DONE else None
            else:
                status, resolved = replayed.get(ticket_id, ("new", None))
            yield Facts(number, queue_id, priority, category, "", status, assignee, bool(confidential),
                        created, answered, resolved)


def tallies(session: Session, period: Period, queue: str | None = None) -> Tallies:
    """Channels, matched rules and answers per queue, counted by the database."""
    channel = sa.func.coalesce(Event.data["channel"].as_string(), Event.data["source"].as_string())
    rules = sa.cast(Event.data["rules"], sa.Text)
    created = (select(Ticket.queue, channel, rules, sa.func.count())
               .join(Ticket, col(Ticket.id) == Event.ticket_id)
               .where(*_created_in(period, queue), Event.kind == "created")
               .group_by(Ticket.queue, channel, rules))
    channels: dict[str, Counter[str]] = defaultdict(Counter)
    matched: dict[str, Counter[str]] = defaultdict(Counter)
    no_rule: Counter[str] = Counter()
    names: dict[str | None, list[str]] = {}
    for queue_id, source, hits, count in session.exec(created):
        channels[queue_id][source or "unknown"] += count
        if hits not in names:
            names[hits] = _rule_names(hits)
        if names[hits]:
            for name in names[hits]:
                matched[queue_id][name] += count
        else:
            no_rule[queue_id] += count
    answers = (select(Ticket.queue, Event.actor, sa.func.count(sa.distinct(Event.ticket_id)))
               .join(Ticket, col(Ticket.id) == Event.ticket_id)
               .where(*_created_in(period, queue), Event.kind == "relayed", Event.at < _utc(period.as_of_ts))
               .group_by(Ticket.queue, Event.actor))
    answered: dict[str, Counter[str]] = defaultdict(Counter)
    for queue_id, actor, count in session.exec(answers):
        answered[queue_id][actor] += count
    return Tallies(dict(channels), dict(matched), dict(no_rule), dict(answered))


def _rule_names(hits: str | None) -> list[str]:
    """The names in a ``created`` event's ``rules`` (a JSON list of hits), each once."""
    try:
        value = json.loads(hits) if hits else []
    except ValueError:
        return []
    if isinstance(value, str):  # JSON text quoted once more by the backend
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if not isinstance(value, list):
        return []
    return list(dict.fromkeys(str(hit["name"]) for hit in value if isinstance(hit, dict) and hit.get("name")))


def subjects(session: Session, numbers: list[int]) -> dict[int, str]:
    if not numbers:
        return {}
    return dict(session.exec(select(Ticket.number, Ticket.subject).where(col(Ticket.number).in_(numbers))).all())
