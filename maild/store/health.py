"""The daemon's heartbeat and the health of its parts, in the ``components`` table.

One row per (instance, component): an instance is one running daemon (``host:pid``), a
component one of its long-running parts (``daemon``, ``listener``, ``sender``, ``processor``,
``scheduler``, ``imap:<mailbox>``, ``sweep:<job>``). The daemon writes all its rows together in
one short transaction, on a change and otherwise every ``HEARTBEAT_SECONDS``; ``read`` gives
them back as plain dicts, for ``maild status`` in any shell.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from maild.store.tables import Component

HEARTBEAT_SECONDS = 15.0  # a running daemon writes its rows at least this often
STALE_AFTER = timedelta(seconds=4 * HEARTBEAT_SECONDS)  # no heartbeat for this long: not running
DAEMON = "daemon"  # the component whose row is the instance's heartbeat
ERROR_CHARS = 500


@dataclass
class ComponentHealth:
    """What one component reports; ``data`` holds extras (the daemon's ``stopped_at``)."""

    name: str
    started_at: datetime
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    restarts: int = 0
    data: dict[str, Any] = field(default_factory=dict)


def write(engine: sa.Engine, instance: str, pid: int, components: Iterable[ComponentHealth], now: datetime) -> None:
    """Insert or update this instance's rows, all with heartbeat ``now``, in one transaction."""
    with Session(engine) as session:
        rows = {row.name: row for row in session.exec(select(Component).where(Component.instance == instance))}
        for health in components:
            row = rows.get(health.name) or Component(instance=instance, name=health.name)
            values = asdict(health)
            values["last_error"] = (health.last_error or "")[:ERROR_CHARS] or None
            for key, value in values.items():
                setattr(row, key, value)
            row.pid = pid
            row.heartbeat_at = now
            session.add(row)
        session.commit()


def prune(engine: sa.Engine, now: datetime) -> list[str]:
    """Forget daemons that stopped or whose heartbeat stopped (killed); returns their instances.

    Run at start: ``read`` then shows this daemon and any other one still running."""
    with Session(engine) as session:
        rows = session.exec(select(Component)).all()
        alive = {row.instance for row in rows if row.name == DAEMON and _running(row, now)}
        gone = sorted({row.instance for row in rows} - alive)
        if gone:
            session.execute(sa.delete(Component).where(col(Component.instance).in_(gone)))
        session.commit()
        return gone


def read(engine: sa.Engine, now: datetime) -> list[dict[str, Any]]:
    """Every row as a plain dict (timestamps are aware UTC datetimes), with ``running``: whether
    its daemon has a fresh heartbeat and has not stopped. Ordered by instance and name."""
    with Session(engine) as session:
        rows = session.exec(select(Component).order_by(Component.instance, Component.name)).all()
    running = {row.instance: _running(row, now) for row in rows if row.name == DAEMON}
    return [{**row.model_dump(exclude={"id"}), "running": running.get(row.instance, False)} for row in rows]


def _running(daemon: Component, now: datetime) -> bool:
    fresh = daemon.heartbeat_at is not None and daemon.heartbeat_at >= now - STALE_AFTER
    return fresh and "stopped_at" not in (daemon.data or {})
