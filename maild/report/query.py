"""The reads behind a report: a few queries, on SQLite and PostgreSQL alike.

- The tickets created in the period, one tuple each, streamed (SQLAlchemy Core, no ORM
  objects): only the columns the figures need, times as whole POSIX seconds computed by the
  database, the first answer and the resolution already cut at the report's end. No subject
  (only the listed few are read afterwards).
- A ticket whose status changed after the report's end (``status_changed_at``) is replayed
  from its ``status`` events up to the end; every other ticket's row already is its state
  at the end. For the default period, which ends now, nothing needs replaying; the index on
  ``status_changed_at`` finds the others without reading the rest.
- Channels and matched rules are counted by the database from each ticket's ``created``
  event, grouped by queue and the event's text (a handful of distinct texts, each decoded
  once here: SQLite would parse the JSON of every row); answers (``relayed`` events, by
  their staff writer) likewise.

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


def _state_at_end(session: Session, period: Period, queue: str | None) -> dict[int, tuple[str, float | None]]:
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


def facts(session: Session, period: Period, queue: str | None = None) -> Iterator[list[Facts]]:
    """The tickets created in ``period`` as they stood at its end, in batches of tuples in
    the order of :class:`Facts` (rows, not ``Facts`` objects: a million are not built)."""
    as_of = _utc(period.as_of_ts)
    columns = (Ticket.number, Ticket.queue, Ticket.priority, Ticket.category, Ticket.status, Ticket.assignee,
               sa.type_coerce(Ticket.confidential, sa.Integer),  # no bool() per row: only its truth is asked
               epoch(Ticket.created_at),
               epoch(sa.case((col(Ticket.first_response_at) < as_of, Ticket.first_response_at))))
    resolved = sa.func.coalesce(Ticket.resolved_at, Ticket.closed_at)
    settled = (sa.select(*columns, epoch(sa.case((col(Ticket.status).in_(DONE), resolved))))
               .where(*_created_in(period, queue), col(Ticket.status_changed_at) < as_of)
               .execution_options(yield_per=STREAM))
    yield from session.connection().execute(settled).partitions(STREAM)
    state = _state_at_end(session, period, queue)
    changed = sa.select(Ticket.id, *columns).where(*_created_in(period, queue), col(Ticket.status_changed_at) >= as_of)
    batch = []
    for ticket_id, number, queue_id, priority, category, _, assignee, confidential, created, answered in (
            session.connection().execute(changed)):
        status, done = state.get(ticket_id, ("new", None))
        batch.append(Facts(number, queue_id, priority, category, status, assignee, confidential, created, answered,
                           done))
    yield batch


def tallies(session: Session, period: Period, queue: str | None = None) -> Tallies:
    """Channels, matched rules and answers per queue, counted by the database."""
    created = (sa.select(Ticket.queue, sa.cast(Event.data, sa.Text), sa.func.count())
               .join(Ticket, col(Ticket.id) == Event.ticket_id)
               .where(*_created_in(period, queue), Event.kind == "created")
               .group_by(Ticket.queue, sa.cast(Event.data, sa.Text)))
    channels: dict[str, Counter[str]] = defaultdict(Counter)
    matched: dict[str, Counter[str]] = defaultdict(Counter)
    no_rule: Counter[str] = Counter()
    for queue_id, text, count in session.connection().execute(created):
        data = _decoded(text)
        source = data.get("channel")
        if source is None:
            source = data.get("source")
        channels[queue_id][str(source) if source else "unknown"] += count
        names = _rule_names(data.get("rules"))
        if names:
            for name in names:
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


def _decoded(text: str | None) -> dict[str, Any]:
    """An event's data as a dict (JSON text, possibly quoted once more by the backend)."""
    value: Any = text
    for _ in range(2):
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _rule_names(hits: Any) -> list[str]:
    """The names in a ``created`` event's ``rules`` (a list of hits, or its JSON text), each once."""
    value = hits
    for _ in range(2):  # JSON text, possibly quoted once more by the backend
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if not isinstance(value, list):
        return []
    return list(dict.fromkeys(str(hit["name"]) for hit in value if isinstance(hit, dict) and hit.get("name")))


def listed(session: Session, numbers: list[int]) -> dict[int, tuple[str, str, str, str | None]]:
    """Subject, queue, priority and assignee of the few tickets a report lists."""
    if not numbers:
        return {}
    query = (sa.select(Ticket.number, Ticket.subject, Ticket.queue, Ticket.priority, Ticket.assignee)
             .where(col(Ticket.number).in_(numbers)))
    return {number: (subject, queue, priority, assignee) for number, subject, queue, priority, assignee in
            session.connection().execute(query)}
