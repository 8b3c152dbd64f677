"""The durable outbox: every outgoing mail is a row (per envelope recipient) before anything
is sent, written in the same transaction as the change that caused it. One sender
(``sender.py``) delivers; nothing else talks SMTP outward."""

from __future__ import annotations

import base64
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from maild.core.bounces import verp_address
from maild.core.tokens import bounce_token
from maild.outbound.compose import Outgoing, Wire, build_parts, checked
from maild.store.tables import Message, Outbox, Ticket, utcnow
from maild.store.tickets import add_event

BOUNCE_PREFIX = "bounces"
MAX_ATTEMPTS = 30  # with the backoff below: about three days of retrying


@dataclass(frozen=True)
class Queued:
    """The message a queued mail was recorded as on its ticket: its row, and to whom it went."""

    id: int
    to: tuple[str, ...]
    cc: tuple[str, ...]


@dataclass
class Made:
    """One notice's mails, made and ready to write (``made``), not yet in the database (``write``)."""

    message: dict[str, Any] | None  # its row on the ticket; None for mail of no ticket
    rows: list[dict[str, Any]]  # an outbox row per mail and envelope recipient; its raw a Wire until written
    left_out: list[str]  # docs/mail.md#recipients: values from mail that could not go into a header


def enqueue(
    session: Session, ticket: Ticket | None, kind: str, mail: Outgoing, secret: bytes, domain: str
) -> Queued | None:
    """Record an outgoing mail on its ticket and queue it for every recipient, in the caller's
    transaction. Returns the ticket message (None for mail that belongs to no ticket)."""
    return enqueue_many(session, ticket, kind, [mail], secret, domain)


def enqueue_many(
    session: Session, ticket: Ticket | None, kind: str, mails: list[Outgoing], secret: bytes, domain: str
) -> Queued | None:
    """Like ``enqueue`` for one notice sent as several mails (one per staff member, each with
    its own reply address): one message on the ticket, addressed to them all."""
    notice = made(ticket, kind, mails, secret, domain)
    if notice is None:
        return None
    (queued,) = write(session, [notice])
    if notice.left_out and ticket is not None:  # docs/mail.md#recipients: what was left out is on the record
        add_event(session, ticket, "outgoing_values_left_out", mail=kind, notes=notice.left_out)
    return queued


def made(ticket: Ticket | None, kind: str, mails: list[Outgoing], secret: bytes, domain: str) -> Made | None:
    """The rows of one notice (None when it has no mail), made without the database: each
    outbox row's VERP token is drawn here and stored on it (``core.tokens.bounce_token``), so
    no row needs its id before its return path is known."""
    if not mails:
        return None
    mails, wires, left_out = prepare(mails)
    first, now = mails[0], utcnow()
    message = None
    if ticket is not None:
        message = {
            "ticket_id": ticket.id, "inbound_id": None, "direction": "out", "kind": kind,
            "message_id": first.message_id, "fingerprint": None, "from_addr": first.from_addr,
            "from_name": first.from_name, "to": list(dict.fromkeys(a for mail in mails for a in mail.to)),
            "cc": list(first.cc), "subject": first.subject, "date": first.date or now, "in_reply_to": first.in_reply_to,
            "references": list(first.references), "classification": "normal", "text": first.text, "html": first.html,
            "raw_path": None, "created_at": now,
        }
    rows = []
    for mail, raw in zip(mails, wires):  # joined into bytes as each row is written (``write``)
        for recipient in dict.fromkeys(mail.to + mail.cc):
            token = bounce_token(secret, base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower())
            rows.append({
                "ticket_id": ticket.id if ticket else None, "message_id": None, "kind": kind, "created_at": now,
                "return_path": verp_address(token, domain, BOUNCE_PREFIX), "bounce_token": token,
                "recipient": recipient, "raw": raw, "state": "queued", "attempts": 0, "next_attempt_at": now,
            })
    return Made(message, rows, left_out)


_MESSAGES = Message.__table__  # type: ignore[attr-defined]
_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]
# RETURNING in the order of the parameters would cost a statement per row on SQLite: the rows
# are told apart by their Message-ID instead (each notice's is new, ``compose.new_message_id``)
_ADD_MESSAGES = sa.insert(_MESSAGES).returning(_MESSAGES.c.message_id, _MESSAGES.c.id)
_ADD_ROWS = sa.insert(_OUTBOX)


def write(session: Session, notices: list[Made]) -> list[Queued | None]:
    """Write made notices in the caller's transaction, in order, in two statements however many
    there are (SQLAlchemy Core: this runs for every mail maild files): their messages on the
    ticket, then every outbox row. Returns each notice's message (None for mail of no ticket)."""
    connection = session.connection()
    messages = [notice.message for notice in notices if notice.message is not None]
    ids = {row[0]: row[1] for row in connection.execute(_ADD_MESSAGES, messages)} if messages else {}
    queued: list[Queued | None] = []
    rows = []
    for notice in notices:
        message_id = ids[notice.message["message_id"]] if notice.message is not None else None
        for row in notice.rows:
            row["message_id"] = message_id
        rows.extend(notice.rows)
        queued.append(None if notice.message is None or message_id is None
                      else Queued(message_id, tuple(notice.message["to"]), tuple(notice.message["cc"])))
    _insert_rows(connection, rows)
    return queued


BIG = 1 << 20  # a mail at least this big (files attached) is written by a statement of its own


def _insert_rows(connection: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert outbox rows in order, their ``raw`` a ``Wire`` until now. Small mails go in one
    statement; each big one goes alone, its bytes joined just before and let go just after,
    so a notice whose files go to every staff member is never held once per recipient."""
    small: list[dict[str, Any]] = []
    for row in rows:
        head, body = row["raw"]
        if len(head) + sum(len(piece) for piece in body) < BIG:
            small.append({**row, "raw": b"".join([head, *body])})
            continue
        if small:
            connection.execute(_ADD_ROWS, small)
            small = []
        connection.execute(_ADD_ROWS, {**row, "raw": b"".join([head, *body])})
    if small:
        connection.execute(_ADD_ROWS, small)


def prepare(mails: list[Outgoing]) -> tuple[list[Outgoing], list[Wire], list[str]]:
    """The mails as they go out (a bad value from mail left out, never fatal), their wire
    form, and the notes on what was left out."""
    checks = [checked(mail) for mail in mails]
    fixed = [mail for mail, _ in checks]
    left_out = list(dict.fromkeys(note for _, notes in checks for note in notes))
    return fixed, build_parts(fixed), left_out


def acks_sent_since(session: Session, address: str, since: datetime) -> int:
    """Acknowledgements queued to one address since a time (the per-sender hourly cap)."""
    query = select(sa.func.count()).select_from(Outbox).where(
        Outbox.recipient == address, Outbox.kind == "ack", Outbox.created_at >= since
    )
    return int(session.exec(query).one())


def claim_due(session: Session, now: datetime, limit: int, stale_after: timedelta) -> list[Outbox]:
    """Take due rows for sending, oldest first, keeping each ticket's mail in order.

    A row waits while an earlier row of its ticket is still unsent. Rows left in ``sending``
    longer than ``stale_after`` (their sender died) are taken again. On PostgreSQL the rows
    are locked with SKIP LOCKED, so several instances never take the same row.
    """
    session.execute(
        sa.update(Outbox)
        .where(Outbox.state == "sending", col(Outbox.claimed_at) < now - stale_after)
        .values(state="queued")
    )
    earlier = sa.orm.aliased(Outbox)
    blocked = (
        select(earlier.id)
        .where(
            earlier.ticket_id == Outbox.ticket_id,
            earlier.id < Outbox.id,
            earlier.message_id.is_distinct_from(Outbox.message_id),  # the same mail's rows go together
            col(earlier.state).in_(("queued", "sending")),
        )
        .exists()
    )
    query = (
        select(Outbox)
        .where(Outbox.state == "queued", Outbox.next_attempt_at <= now, sa.or_(col(Outbox.ticket_id).is_(None), ~blocked))
        .order_by(Outbox.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Outbox)
    rows = list(session.exec(query))
    for row in rows:
        row.state = "sending"
        row.claimed_at = now
        row.attempts += 1
    session.commit()
    return rows


def backoff(attempts: int) -> timedelta:
    """Exponential backoff with jitter: 1, 2, 4 ... minutes, at most two hours."""
    base = min(60 * 2 ** max(attempts - 1, 0), 7200)
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


# What `maild outbox retry|hold|delete` may change (in the spirit of Postfix's postsuper). A row
# in ``sending`` is on the wire: it is left alone until its sender records the result.
OPERATOR_ACTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "retry": (("queued", "held", "failed"), {"state": "queued", "attempts": 0, "last_error": None}),
    "hold": (("queued",), {"state": "held"}),
    "delete": (("queued", "held", "failed"), {}),
}


def operate(session: Session, action: str, ids: list[int] | None, now: datetime) -> list[int]:
    """Apply an operator's ``action`` to the rows ``ids`` (None: every row it applies to);
    return the ids changed. Rows in other states are left as they are."""
    states, values = OPERATOR_ACTIONS[action]
    where = [col(Outbox.state).in_(states)]
    if ids is not None:
        where.append(col(Outbox.id).in_(ids))
    changed = list(session.exec(select(Outbox.id).where(*where)))
    if changed and action == "delete":
        session.execute(sa.delete(Outbox).where(col(Outbox.id).in_(changed)))
    elif changed:
        extra = {"next_attempt_at": now} if action == "retry" else {}
        session.execute(sa.update(Outbox).where(col(Outbox.id).in_(changed)).values(**values, **extra))
    return [row_id for row_id in changed if row_id is not None]
