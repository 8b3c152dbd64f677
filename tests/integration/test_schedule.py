"""Sweeps over a simulated fortnight in business time (Europe/Helsinki, FI holidays).

Time is driven by `--at` (run_job's ``now``); nothing sleeps. Each sweep must fire at the
right moment and exactly once, also when it is run again or by a restarted daemon.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.schedule import run_job
from maild.store import db
from maild.store.tables import Outbox, Ticket
from tests.mailgen import mail

HKI = ZoneInfo("Europe/Helsinki")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HKI)


@pytest.fixture
def app(make_instance, db_url: str) -> App:
    instance = App(load_settings(str(make_instance(db_url))))
    db.upgrade(instance.settings.database_url)
    return instance


def new_ticket(app: App, created: datetime, subject: str = "Osoitteenmuutos", status: str = "new") -> int:
    result = app.pipeline.process(spool_sync(app.engine, app.raw_store, mail(subject=subject), Envelope("smtp", None, ())))
    number = int(result.split(":")[1])
    with Session(app.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        ticket.created_at = ticket.status_changed_at = created
        ticket.status = status
        session.commit()
    return number


def fired(app: App, job: str, when: str) -> list[str]:
    return run_job(app.pipeline, job, at(when))


def test_staff_reminder_and_escalation_count_business_time_only(app: App) -> None:
    # Friday 3.12.2027 15:00; Monday 6.12. is Itsenäisyyspäivä. Normal priority: 3d.
    new_ticket(app, at("2027-12-03T15:00"))
    # half of 3 x 8 h = 12 open hours: Fri 1 h, (weekend, holiday), Tue 8 h, Wed 08-11
    assert fired(app, "staff_reminder", "2027-12-08T10:59") == []
    assert len(fired(app, "staff_reminder", "2027-12-08T11:00")) == 1
    assert fired(app, "staff_reminder", "2027-12-08T11:05") == []  # exactly once
    # breach: the third business day at the same local time: Tue, Wed, Thu 9.12. 15:00
    assert fired(app, "escalation", "2027-12-09T14:59") == []
    assert len(fired(app, "escalation", "2027-12-09T15:00")) == 1
    assert fired(app, "escalation", "2027-12-10T09:00") == []
    with Session(app.engine) as session:
        kinds = [row.kind for row in session.exec(select(Outbox).where(Outbox.kind == "reminder"))]
    assert len(kinds) == 4  # two staff members, twice (the test queue has no leads)


def test_dst_change_in_october(app: App) -> None:
    # Friday 29.10.2027 14:00; clocks go back on Sunday 31.10. A 4h (urgent) SLA.
    number = new_ticket(app, at("2027-10-29T14:00"))
    with Session(app.engine) as session:
        session.exec(select(Ticket).where(Ticket.number == number)).one().priority = "urgent"
        session.commit()
    assert fired(app, "escalation", "2027-11-01T09:59") == []  # Fri 2 h + Mon 08-10 = 4 h
    assert len(fired(app, "escalation", "2027-11-01T10:00")) == 1


def test_easter_holidays_do_not_count(app: App) -> None:
    # Thursday 25.3.2027 15:00; Good Friday 26.3. and Easter Monday 29.3. are holidays.
    number = new_ticket(app, at("2027-03-25T15:00"))
    with Session(app.engine) as session:
        session.exec(select(Ticket).where(Ticket.number == number)).one().priority = "urgent"
        session.commit()
    assert fired(app, "escalation", "2027-03-30T10:59") == []  # Thu 1 h + Tue 30.3. 08-11 = 4 h
    assert len(fired(app, "escalation", "2027-03-30T11:00")) == 1


def test_pending_member_reminder_resolve_and_close(app: App) -> None:
    new_ticket(app, at("2027-12-13T10:00"), status="pending")
    assert fired(app, "member_reminder", "2027-12-18T09:59") == []
    assert len(fired(app, "member_reminder", "2027-12-18T10:00")) == 1  # 5 calendar days
    assert fired(app, "member_reminder", "2027-12-20T10:00") == []
    assert fired(app, "auto_resolve", "2027-12-27T09:59") == []
    assert len(fired(app, "auto_resolve", "2027-12-27T10:00")) == 1  # 14 days
    assert fired(app, "auto_resolve", "2027-12-28T10:00") == []
    assert fired(app, "close", "2028-01-03T09:59") == []
    assert len(fired(app, "close", "2028-01-03T10:00")) == 1  # 7 days after resolving
    with Session(app.engine) as session:
        ticket = session.exec(select(Ticket)).one()
        assert ticket.status == "closed"
        kinds = [row.kind for row in session.exec(select(Outbox).where(Outbox.recipient == "matti@example.fi"))]
    assert kinds.count("reminder") == 1 and kinds.count("resolved") == 1


def test_digest_once_each_business_morning(app: App) -> None:
    new_ticket(app, at("2027-12-01T10:00"))
    assert fired(app, "digest", "2027-12-06T09:00") == []  # Itsenäisyyspäivä
    assert fired(app, "digest", "2027-12-07T07:59") == []
    assert len(fired(app, "digest", "2027-12-07T08:00")) == 2  # maija and pekka
    assert fired(app, "digest", "2027-12-07T12:00") == []
    assert fired(app, "digest", "2027-12-11T08:00") == []  # Saturday
    assert len(fired(app, "digest", "2027-12-13T08:00")) == 2


def test_dry_run_changes_nothing(app: App) -> None:
    new_ticket(app, at("2027-12-03T15:00"))
    assert len(run_job(app.pipeline, "staff_reminder", at("2027-12-08T11:00"), dry_run=True)) == 1
    assert len(fired(app, "staff_reminder", "2027-12-08T11:00")) == 1
