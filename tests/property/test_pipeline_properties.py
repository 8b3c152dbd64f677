"""Every message through the real pipeline (SQLite) ends as exactly one ticket message or one
quarantine entry, or as a recorded duplicate: never nothing, never an exception. Hostile mail
may be quarantined as unparseable, a bounce or dropped, but not as ``error`` (maild failed)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from sqlmodel import Session, func, select

from maild.app import App
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.store.tables import Event, Inbound, Message, Quarantine
from tests.hostile import examples, hostile_message

SERIAL = itertools.count()


def deliver(app: App, raw: bytes) -> tuple[int, str]:
    inbound_id = spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", "sender@example.fi",
                                                                     ("jasenpalvelu@liitto.fi",)))
    return inbound_id, app.pipeline.process(inbound_id)


def fate(app: App, inbound_id: int) -> tuple[str, int, int]:
    """(spool state, ticket messages from it, quarantine entries from it)."""
    with Session(app.engine) as session:
        inbound = session.get(Inbound, inbound_id)
        assert inbound is not None
        messages = session.exec(select(func.count()).select_from(Message).where(Message.inbound_id == inbound_id)).one()
        kept = session.exec(select(func.count()).select_from(Quarantine).where(Quarantine.inbound_id == inbound_id)).one()
        return inbound.state, messages, kept


def error_of(app: App, inbound_id: int) -> str:
    with Session(app.engine) as session:
        return session.exec(select(Quarantine.reason).where(Quarantine.inbound_id == inbound_id)).one()


def duplicates_recorded(app: App) -> int:
    with Session(app.engine) as session:
        return session.exec(select(func.count()).select_from(Event).where(Event.kind == "duplicate_received")).one()


@settings(max_examples=examples(60))
@given(hostile_message(extra_headers=(b"Message-ID: <fixed@example.fi>",)))
def test_every_message_is_stored_once(sqlite_app: App, raw: bytes) -> None:
    unique = f"<{next(SERIAL)}.{id(raw)}@pipeline.test>".encode()  # never a duplicate of an earlier example
    inbound_id, outcome = deliver(sqlite_app, raw.replace(b"<fixed@example.fi>", unique, 1))
    assert fate(sqlite_app, inbound_id) in (("done", 1, 0), ("quarantined", 0, 1)), outcome
    assert outcome != "quarantined:error", error_of(sqlite_app, inbound_id)  # kept, but maild failed on it


@settings(max_examples=examples(30))
@given(hostile_message())
def test_only_the_same_content_is_a_duplicate(sqlite_app: App, raw: bytes) -> None:
    serial = next(SERIAL)
    top = b"From: dup@example.fi\r\nDate: Tue, 1 Dec 2026 10:00:00 +0200\r\nSubject: copy %d %s\r\n"
    first = top % (serial, b"a") + raw
    first_id, _ = deliver(sqlite_app, first)
    if fate(sqlite_app, first_id) != ("done", 1, 0):
        return  # quarantined: a copy is quarantined again, nothing to compare
    other_id, _ = deliver(sqlite_app, top % (serial, b"b") + raw)  # another subject: other content
    assert fate(sqlite_app, other_id) in (("done", 1, 0), ("quarantined", 0, 1))
    recorded = duplicates_recorded(sqlite_app)
    copy_id, outcome = deliver(sqlite_app, first)
    assert outcome == "duplicate" and fate(sqlite_app, copy_id) == ("done", 0, 0)
    assert duplicates_recorded(sqlite_app) == recorded + 1
