"""What is waiting: the spool, the outbox and the quarantine, counted the one way that
``maild status`` and the metrics both report."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlmodel import Session, col, func, select

from maild.store.tables import Inbound, Outbox, Quarantine

WAITING_TO_SEND = ("queued", "sending")


def _aware(value: datetime | None) -> datetime | None:
    """min() of a timestamp column comes back naive on SQLite (the column's type is skipped)."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def spool(session: Session) -> tuple[int, datetime | None]:
    """Stored messages not yet filed, and when the oldest of them arrived."""
    count, oldest = session.exec(
        select(func.count(), func.min(Inbound.received_at)).where(Inbound.state == "pending")).one()
    return count, _aware(oldest)


def outbox(session: Session) -> tuple[int, datetime | None]:
    """Outgoing mails not yet sent (queued or on the wire), and when the oldest was queued."""
    count, oldest = session.exec(select(func.count(), func.min(Outbox.created_at))
                                 .where(col(Outbox.state).in_(WAITING_TO_SEND))).one()
    return count, _aware(oldest)


def failed_mail(session: Session, since: datetime | None = None) -> int:
    """Outgoing mails that failed for good (since ``since``: claimed for their last try after it)."""
    query = select(func.count()).where(Outbox.state == "failed")
    if since is not None:
        query = query.where(Outbox.claimed_at >= since)
    return session.exec(query).one()


def quarantined(session: Session, kinds: tuple[str, ...] = (), since: datetime | None = None) -> int:
    """Messages kept in the quarantine and not released (of ``kinds``, received since ``since``)."""
    query = select(func.count()).where(Quarantine.released_at == None)  # noqa: E711
    if kinds:
        query = query.where(col(Quarantine.kind).in_(kinds))
    if since is not None:
        query = query.where(Quarantine.received_at >= since)
    return session.exec(query).one()
