"""The retention sweep (docs/coming.md#reports-and-privacy): once a day it erases tickets closed longer ago than their
queue's (else the top level's) ``closed_after_days``, with their raw mail, keeping the
skeleton; a member's contact goes only with their last ticket. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlmodel import Session, select

from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.privacy.identity import is_pseudonym
from maild.schedule import run_job
from maild.store import db
from maild.store.tables import Contact, Event, Inbound, Message, Outbox, Ticket
from tests.conftest import RULES
from tests.integration.test_privacy_erase import all_values, files_with, text_of
from tests.mailgen import mail

RETENTION_RULES = RULES.replace("    address: laskutus@liitto.fi\n",
                                "    address: laskutus@liitto.fi\n    retention: {closed_after_days: 10}\n") \
    + "retention: {closed_after_days: 30}\n"
assert RETENTION_RULES.count("retention:") == 2
NOW = datetime(2027, 3, 10, 9, 0, tzinfo=timezone.utc)
MATTI, PEKKA = "matti@example.fi", "pekka.puro@example.fi"


@pytest.fixture
def app(make_instance, db_url: str) -> App:
    instance = App(load_settings(str(make_instance(db_url, rules=RETENTION_RULES))))
    db.upgrade(instance.settings.database_url)
    return instance


def closed_ticket(app: App, sender: str, subject: str, closed_days_ago: int | None, body: str = "salainen asia") -> int:
    raw = mail(subject=subject, sender=sender, body=body)
    result = app.pipeline.process(spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", None, ())))
    number = int(result.split(":")[1])
    if closed_days_ago is not None:
        with Session(app.engine) as session:
            ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
            ticket.status = "closed"
            ticket.closed_at = ticket.status_changed_at = NOW - timedelta(days=closed_days_ago)
            session.commit()
    return number


def ticket(app: App, number: int) -> Ticket:
    with Session(app.engine) as session:
        return session.exec(select(Ticket).where(Ticket.number == number)).one()


def test_retention_erases_expired_tickets_once_a_day(app: App) -> None:
    old = closed_ticket(app, f"Matti Meikäläinen <{MATTI}>", "Vanha asia", 40, body="MATIN VANHA SALAISUUS")
    newer = closed_ticket(app, f"Matti Meikäläinen <{MATTI}>", "Uudempi asia", 20)
    billing = closed_ticket(app, f"Pekka Puro <{PEKKA}>", "Lasku epaselva", 15, body="PEKAN LASKU")  # laskutus: 10 days
    still_open = closed_ticket(app, f"Matti Meikäläinen <{MATTI}>", "Avoin asia", None)
    with Session(app.engine) as session:
        raw_of_old = session.exec(select(Message.raw_path).join(Ticket).where(Ticket.number == old)).first()
    assert raw_of_old and (app.settings.data_dir / raw_of_old).is_file()

    assert run_job(app.pipeline, "retention", NOW, dry_run=True) == [
        "[JP#1]: would be erased (closed 2027-01-29)", "[JP#3]: would be erased (closed 2027-02-23)"]
    done = run_job(app.pipeline, "retention", NOW)
    assert sorted(done) == ["[JP#1]: erased (closed over 30 days ago)", "[JP#3]: erased (closed over 10 days ago)"]
    assert run_job(app.pipeline, "retention", NOW + timedelta(hours=3)) == []  # once a day

    erased, kept = ticket(app, old), ticket(app, newer)
    assert erased.erased_at == NOW and erased.subject == "" and is_pseudonym(erased.requester)
    assert erased.status == "closed" and erased.queue == "jasenasiat" and erased.created_at < NOW
    assert kept.erased_at is None and kept.requester == MATTI and kept.subject == "Uudempi asia"
    assert ticket(app, still_open).requester == MATTI
    assert not (app.settings.data_dir / raw_of_old).exists()
    with Session(app.engine) as session:
        texts = session.exec(select(Message.text).where(Message.ticket_id == erased.id)).all()
        assert texts and set(texts) == {""}
        events = session.exec(select(Event).where(Event.kind == "erased")).all()
        assert sorted(e.data["closed_after_days"] for e in events) == [10, 30]
        assert all(e.data["reason"] == "retention" for e in events)
        contacts = {c.address: c for c in session.exec(select(Contact)).all()}
        assert contacts[MATTI].name == "Matti Meikäläinen"  # has tickets left: kept as is
        assert PEKKA not in contacts  # his last ticket went: so did his contact
        assert all(not is_pseudonym(o.recipient) or o.raw == b"" for o in session.exec(select(Outbox)).all())
        assert all(i.raw_path for i in session.exec(select(Inbound)).all() if i.state == "pending")
    cells = all_values(app.engine)
    for gone in (PEKKA, "pekan lasku", "matin vanha salaisuus", "pekka puro"):
        assert [(w, v) for w, _, v in cells if gone in text_of(v)] == [], gone
    instance_dir = Path(app.settings.source).parent  # data_dir, and SQLite's file and WAL without a VACUUM
    for needle in (PEKKA.encode(), b"PEKAN LASKU", b"MATIN VANHA SALAISUUS"):
        assert files_with(instance_dir, needle) == [], needle

    # eleven days on: the newer ticket's 30 days are up too
    later = run_job(app.pipeline, "retention", NOW + timedelta(days=11))
    assert later == ["[JP#2]: erased (closed over 30 days ago)"]
    assert ticket(app, still_open).requester == MATTI  # an open ticket is never erased
    with Session(app.engine) as session:
        assert session.exec(select(Contact).where(Contact.address == MATTI)).first() is not None


def test_no_retention_no_sweep(make_instance, sqlite_url: str) -> None:
    instance = App(load_settings(str(make_instance(sqlite_url))))
    db.upgrade(instance.settings.database_url)
    closed_ticket(instance, f"<{MATTI}>", "Vanha", 4000)
    assert run_job(instance.pipeline, "retention", NOW) == []
    assert ticket(instance, 1).requester == MATTI


def test_check_warns_without_retention_and_still_passes(make_instance, sqlite_url: str) -> None:
    from tests.conftest import run_maild

    without = run_maild("--config", str(make_instance(sqlite_url)), "check")
    assert without.returncode == 0, without.stderr
    assert b"warning: " in without.stderr and b"no retention is set" in without.stderr
    with_it = run_maild("--config", str(make_instance(sqlite_url, rules=RETENTION_RULES, name="other")), "check")
    assert with_it.returncode == 0 and b"retention" not in with_it.stderr
