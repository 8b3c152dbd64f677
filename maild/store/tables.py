"""Database tables (sqlmodel). No business rules here: only shapes and indexes.

Every timestamp is stored as UTC; ``UTCDateTime`` gives aware datetimes back on SQLite
and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from maild.store.types import UTCDateTime  # also where the migrations find it


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _ts(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_type=sa.JSON)


class Counter(SQLModel, table=True):
    """Named sequences (ticket numbers): incremented in the transaction that uses them."""

    __tablename__ = "counters"
    name: str = Field(primary_key=True, max_length=64)
    value: int = 0


class Inbound(SQLModel, table=True):
    """The spool: one row per received raw message, committed before the sender hears yes."""

    __tablename__ = "inbound"
    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime = _ts(default_factory=utcnow)
    source: str = Field(max_length=16)
    mailbox: str | None = Field(default=None, max_length=200)
    mail_from: str | None = Field(default=None, max_length=998)
    recipients: list[str] = _json(list)
    raw_path: str = Field(max_length=500)
    size: int
    sha256: str = Field(max_length=64, index=True)
    state: str = Field(default="pending", max_length=16, index=True)  # pending|done|quarantined
    attempts: int = 0
    error: str | None = None


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"
    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=320, unique=True)
    name: str = Field(default="", max_length=500)
    created_at: datetime = _ts(default_factory=utcnow)
    undeliverable: bool = False  # superseded by undeliverable_since; kept for old rows
    # when a bounce of maild's own mail to this address last said "permanent"; lapses (docs/mail.md#bounces)
    undeliverable_since: datetime | None = _ts(default=None)


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    __table_args__ = (
        sa.Index("ix_tickets_status_queue", "status", "queue"),
        sa.Index("ix_tickets_requester", "requester"),
        sa.Index("ix_tickets_status_changed", "status", "status_changed_at"),
        sa.Index("ix_tickets_unanswered", "status", "first_response_at"),
        sa.Index("ix_tickets_created", "created_at", "status_changed_at"),  # reports (migration 0013)
    )
    id: int | None = Field(default=None, primary_key=True)
    number: int = Field(unique=True)
    queue: str = Field(max_length=100)
    status: str = Field(default="new", max_length=16)
    priority: str = Field(default="normal", max_length=16)
    category: str | None = Field(default=None, max_length=200)
    subject: str = ""
    requester: str = Field(max_length=320)
    assignee: str | None = Field(default=None, max_length=320, index=True)
    confidential: bool = False
    tags: list[str] = _json(list)
    other_queues: list[str] = _json(list)
    cc: list[str] = _json(list)
    linked_to: int | None = None  # the number of an earlier, closed ticket this one continues
    channel: str = Field(default="email", max_length=16)  # email | phone | visit | letter | web
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)
    resolved_at: datetime | None = _ts(default=None)
    closed_at: datetime | None = _ts(default=None)
    status_changed_at: datetime = _ts(default_factory=utcnow)  # when `status` last changed
    first_response_at: datetime | None = _ts(default=None)  # staff's first answer to the member
    erased_at: datetime | None = _ts(default=None)  # its content erased (docs/coming.md#reports-and-privacy); the skeleton stays


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    inbound_id: int | None = Field(default=None, foreign_key="inbound.id")
    direction: str = Field(max_length=3)  # in | out
    kind: str = Field(max_length=16)
    message_id: str | None = Field(default=None, max_length=998, index=True)
    fingerprint: str | None = Field(default=None, max_length=64, index=True)
    from_addr: str = Field(default="", max_length=320)
    from_name: str = Field(default="", max_length=500)
    to: list[str] = _json(list)
    cc: list[str] = _json(list)
    subject: str = ""
    date: datetime | None = _ts(default=None)
    in_reply_to: str | None = None
    references: list[str] = _json(list)
    classification: str = Field(default="normal", max_length=16)
    text: str = ""
    html: str | None = None
    raw_path: str | None = Field(default=None, max_length=500)
    created_at: datetime = _ts(default_factory=utcnow)


class Attachment(SQLModel, table=True):
    __tablename__ = "attachments"
    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="messages.id", index=True)
    filename: str = Field(default="", max_length=500)
    content_type: str = Field(default="application/octet-stream", max_length=200)
    size: int = 0
    sha256: str = Field(max_length=64)
    path: str = Field(max_length=500)


class Event(SQLModel, table=True):
    """The audit trail: every change to a ticket, who made it and when."""

    __tablename__ = "events"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    at: datetime = _ts(default_factory=utcnow)
    actor: str = Field(default="maild", max_length=320)
    kind: str = Field(max_length=32)
    data: dict[str, Any] = _json(dict)


class Quarantine(SQLModel, table=True):
    __tablename__ = "quarantine"
    id: int | None = Field(default=None, primary_key=True)
    inbound_id: int | None = Field(default=None, foreign_key="inbound.id", index=True)
    kind: str = Field(max_length=16)  # unparseable|error|bounce|dropped|oversize
    reason: str = ""
    received_at: datetime = _ts(default_factory=utcnow)
    from_addr: str = Field(default="", max_length=998)
    subject: str = ""
    size: int = 0
    raw_path: str | None = Field(default=None, max_length=500)
    released_at: datetime | None = _ts(default=None)


class ImapState(SQLModel, table=True):
    """How far the UID scan of one polled IMAP folder got: every UID up to ``last_uid`` is stored.

    UIDVALIDITY and UIDs are unsigned 32-bit numbers, hence BIGINT (PostgreSQL's INTEGER is signed).
    """

    __tablename__ = "imap_state"
    __table_args__ = (sa.UniqueConstraint("mailbox", "folder", name="uq_imap_state_mailbox_folder"),)
    id: int | None = Field(default=None, primary_key=True)
    mailbox: str = Field(max_length=200)
    folder: str = Field(max_length=500)
    uidvalidity: int = Field(sa_type=sa.BigInteger)
    last_uid: int = Field(sa_type=sa.BigInteger)
    updated_at: datetime = _ts(default_factory=utcnow)


class Outbox(SQLModel, table=True):
    """One outgoing mail to one envelope recipient: a row before anything is sent.

    ``state``: queued -> sending (committed just before the SMTP transaction) -> sent, or
    failed (5xx, recorded on the ticket). A row left in ``sending`` by a crash is the one
    that was in flight; it is sent again at the next start.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_due", "state", "next_attempt_at"),
        sa.Index("ix_outbox_recipient_kind", "recipient", "kind", "created_at"),  # the acknowledgement cap
    )
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id", index=True)
    message_id: int | None = Field(default=None, foreign_key="messages.id")
    kind: str = Field(max_length=16)  # ack|notification|reminder|resolved|relay|reply
    created_at: datetime = _ts(default_factory=utcnow)
    return_path: str = Field(max_length=320)  # VERP address: bounces+TOKEN@domain
    # TOKEN as written (``core.tokens.bounce_token``), to find the row a bounce returns; NULL on
    # rows queued before migration 0012, whose token names the row id
    bounce_token: str | None = Field(default=None, max_length=40, unique=True, index=True)
    recipient: str = Field(max_length=320)
    raw: bytes = Field(sa_type=sa.LargeBinary)
    state: str = Field(default="queued", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = _ts(default_factory=utcnow)
    claimed_at: datetime | None = _ts(default=None)  # when a sender took it (state sending)
    last_error: str | None = None
    sent_at: datetime | None = _ts(default=None)


class Component(SQLModel, table=True):
    """Health of one long-running part of a daemon (``maild status``): its heartbeat, last
    success and last error. ``name`` is e.g. ``daemon``, ``sender``, ``processor``,
    ``imap:jasenpalvelu`` or ``sweep:reminders``; ``instance`` tells daemons apart."""

    __tablename__ = "components"
    __table_args__ = (sa.UniqueConstraint("instance", "name", name="uq_components_instance_name"),)
    id: int | None = Field(default=None, primary_key=True)
    instance: str = Field(default="", max_length=200)  # host:pid of the daemon
    name: str = Field(max_length=200)
    pid: int | None = None
    started_at: datetime | None = _ts(default=None)
    heartbeat_at: datetime | None = _ts(default=None)
    last_success_at: datetime | None = _ts(default=None)
    last_error_at: datetime | None = _ts(default=None)
    last_error: str | None = None
    restarts: int = 0
    data: dict[str, Any] = _json(dict)


class Member(SQLModel, table=True):
    """The member register (docs/coming.md#member-register): one row per member, from ``maild members
    import`` (``source`` register) or a ``lookup_command`` answer (``source`` lookup).

    ``email`` is lower-case; it and ``member_number`` are each unique when present (NULLs
    are not equal). ``fields`` are the register's other columns as raw strings. Personal
    data: erasure removes the row (``store.members.erase``)."""

    __tablename__ = "members"
    id: int | None = Field(default=None, primary_key=True)
    member_number: str | None = Field(default=None, max_length=64, unique=True)
    email: str | None = Field(default=None, max_length=320, unique=True)
    fields: dict[str, Any] = _json(dict)
    source: str = Field(default="register", max_length=16)
    imported_at: datetime = _ts(default_factory=utcnow)


class TicketMember(SQLModel, table=True):
    """A ticket's link to its member: made when the ticket is created, kept while the member
    is in the register. ``linked_by``: address | number."""

    __tablename__ = "ticket_members"
    ticket_id: int = Field(foreign_key="tickets.id", primary_key=True)
    member_id: int = Field(foreign_key="members.id", index=True)
    linked_by: str = Field(max_length=16)
    linked_at: datetime = _ts(default_factory=utcnow)
