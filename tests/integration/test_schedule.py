"""Sweeps in business time (Europe/Helsinki, FI holidays): each at the right moment, exactly
once, also when run again or by two instances at once (tests/integration/test_fortnight.py
runs them all over a simulated fortnight with a restart).

Time is driven by `--at` (run_job's ``now``); nothing sleeps.
"""

from __future__ import annotations

import email
import email.policy
import multiprocessing
import time
import traceback
from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from maild import schedule
from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.schedule import JOBS, run_all, run_job
from maild.store import db
from maild.store import tickets as store
from maild.store.tables import Event, Outbox, Ticket
from tests.conftest import RULES, MakeInstance
from tests.mailgen import mail

HKI = ZoneInfo("Europe/Helsinki")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HKI)


@pytest.fixture
def app(make_instance, db_url: str) -> App:
    instance = App(load_settings(str(make_instance(db_url))))
    db.upgrade(instance.settings.database_url)
    return instance


def new_ticket(app: App, created: datetime, subject: str = "Osoitteenmuutos", status: str = "new", **fields: Any) -> int:
    """A ticket from a member's mail (``mail(...)`` arguments in ``fields``), as if it came at ``created``."""
    mail_args = {key: fields.pop(key) for key in ("sender", "headers") if key in fields}
    raw = mail(subject=subject, **mail_args)
    result = app.pipeline.process(spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", None, ())))
    number = int(result.split(":")[1])
    with Session(app.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        ticket.created_at = ticket.status_changed_at = created
        ticket.status = status
        for name, value in fields.items():
            setattr(ticket, name, value)
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


def test_dry_run_changes_nothing(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule, "BATCH", 2)  # and commits nothing between batches
    for _ in range(3):
        new_ticket(app, at("2027-12-03T15:00"))
    assert len(run_job(app.pipeline, "staff_reminder", at("2027-12-08T11:00"), dry_run=True)) == 3
    assert len(fired(app, "staff_reminder", "2027-12-08T11:00")) == 3


def outbox_rows(app: App, kind: str) -> list[Outbox]:
    with Session(app.engine) as session:
        return list(session.exec(select(Outbox).where(Outbox.kind == kind).order_by(Outbox.id)))


def mark_undeliverable(app: App, address: str, since: datetime) -> None:
    with Session(app.engine) as session:
        store.mark_undeliverable(session, address, since)
        session.commit()


BOUNCES = "the requester's address bounces"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"headers": {"Auto-Submitted": "auto-replied"}}, "the ticket was opened by machine mail (auto_reply)"),
        ({"headers": {"List-Id": "<uutiset.example.fi>"}}, "the ticket was opened by machine mail (list)"),
        ({"requester": "laskutus+x7@liitto.fi"}, "our own address laskutus@liitto.fi"),
        ({"requester": "no-reply@kauppa.example"}, "no-reply sender no-reply@kauppa.example"),
        ({"requester": "postmaster@example.fi"}, "system sender postmaster@example.fi"),
        ({"sender": "pia@example.fi"}, BOUNCES),
    ],
)
def test_no_member_reminder_to_machines_or_bounced_addresses(app: App, fields: dict[str, Any], reason: str) -> None:
    number = new_ticket(app, at("2027-12-13T10:00"), status="pending", **fields)
    if reason == BOUNCES:
        mark_undeliverable(app, fields["sender"], at("2027-12-13T10:00"))

    assert fired(app, "member_reminder", "2027-12-18T10:00") == [f"[JP#{number}]: no member reminder: {reason}"]
    assert fired(app, "member_reminder", "2027-12-18T10:05") == []  # recorded once, not every sweep
    with Session(app.engine) as session:
        events = session.exec(select(Event).where(col(Event.kind).in_(("reminder_skipped", "reminded_member")))).all()
    assert [(e.kind, e.data["reason"]) for e in events] == [("reminder_skipped", reason)]
    assert outbox_rows(app, "reminder") == []


def test_auto_resolution_tells_no_machine_and_no_bounced_address(app: App) -> None:
    new_ticket(app, at("2027-12-13T10:00"), status="pending", headers={"Auto-Submitted": "auto-replied"})
    new_ticket(app, at("2027-12-13T10:00"), status="pending", sender="pia@example.fi")
    mark_undeliverable(app, "pia@example.fi", at("2027-12-13T10:00"))
    new_ticket(app, at("2027-12-13T10:00"), status="pending", queue="lakkautettu")  # queue gone from the rules

    assert len(fired(app, "auto_resolve", "2027-12-27T10:00")) == 3
    assert outbox_rows(app, "resolved") == []
    with Session(app.engine) as session:
        reasons = [e.data["reason"] for e in session.exec(select(Event).where(Event.kind == "resolved_notice_skipped"))]
        statuses = {t.status for t in session.exec(select(Ticket))}
    assert sorted(reasons) == ["its queue is no longer in the rules", "the requester's address bounces",
                               "the ticket was opened by machine mail (auto_reply)"]
    assert statuses == {"resolved"}


def test_digest_lists_a_few_tickets_per_section_and_counts_the_rest(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule, "DIGEST_SECTION_LIMIT", 2)
    overdue = new_ticket(app, at("2027-12-01T10:00"))  # normal, 3d: overdue since Mon 6.12.
    waiting = [new_ticket(app, at(f"2027-12-08T1{hour}:00")) for hour in range(5)]

    assert fired(app, "digest", "2027-12-09T08:00") == [
        "digest to maija@liitto.fi: 6 tickets", "digest to pekka@liitto.fi: 6 tickets"]
    message = email.message_from_bytes(outbox_rows(app, "digest")[0].raw, policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "6 tikettiä" in message["Subject"]
    listed = [n for n in [overdue, *waiting] if f"[JP#{n}] " in text]
    assert listed == [overdue, *waiting[:2]]  # the oldest first
    assert "… ja 3 muuta" in text and text.count("muuta") == 1


def test_a_confidential_ticket_shows_its_subject_only_to_its_own_queue_staff(app: App) -> None:
    """Maija (jasenasiat) still owns a confidential ticket moved to laskutus: her digest lists
    its tag only; an unassigned confidential one of laskutus is not in her digest at all."""
    moved = new_ticket(app, at("2027-12-08T10:00"), subject="Palkkasaatava", queue="laskutus",
                       assignee="maija@liitto.fi", confidential=True)
    waiting = new_ticket(app, at("2027-12-08T11:00"), subject="Velkajärjestely", queue="laskutus", confidential=True)

    fired(app, "digest", "2027-12-09T08:00")
    digests = {}
    for row in outbox_rows(app, "digest"):
        message = email.message_from_bytes(row.raw, policy=email.policy.default)
        digests[row.recipient] = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"[JP#{moved}] luottamuksellinen" in digests["maija@liitto.fi"]
    assert "Palkkasaatava" not in digests["maija@liitto.fi"] and f"[JP#{waiting}]" not in digests["maija@liitto.fi"]
    assert f"[JP#{waiting}] Velkajärjestely (luottamuksellinen)" in digests["lasse@liitto.fi"]


LEADS_RULES = RULES.replace("    default: true\n", "    default: true\n    leads: [johtaja@liitto.fi]\n", 1)


def sweep_as_an_instance(config: str, now: datetime, batch: int, barrier: Any, results: Any) -> None:
    """One instance in its own process: its own App from the config file, every sweep once."""
    try:
        schedule.BATCH = batch  # several batches a sweep: the two instances' transactions interleave
        app = App(load_settings(config))
        app.engine.connect().close()
        barrier.wait(timeout=60)
        started = time.monotonic()
        actions = run_all(app.pipeline, now)
        results.put({"started": started, "finished": time.monotonic(), "actions": actions})
    except BaseException:
        results.put({"error": traceback.format_exc()})
        raise


def test_two_instances_at_once_send_everything_exactly_once(make_instance: MakeInstance, db_url: str) -> None:
    config = make_instance(db_url, rules=LEADS_RULES)
    app = App(load_settings(str(config)))
    db.upgrade(app.settings.database_url)
    queues = ("jasenasiat", "laskutus")
    unanswered = [new_ticket(app, at("2027-12-01T10:00"), queue=queues[i % 2]) for i in range(20)]
    pending = [new_ticket(app, at("2027-11-29T08:00"), status="pending", sender=f"jasen{i}@example.fi") for i in range(20)]
    resolved = [new_ticket(app, at("2027-12-03T12:00"), status="resolved") for _ in range(20)]
    app.engine.dispose()
    now = at("2027-12-14T09:00")  # a Tuesday: everything above is due, and the digest

    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    workers = [spawn.Process(target=sweep_as_an_instance, args=(str(config), now, 7, barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=90) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert [o.get("error") for o in outcomes] == [None, None]

    assert max(o["started"] for o in outcomes) < min(o["finished"] for o in outcomes)  # they overlapped
    expected = {"staff_reminder": 20, "escalation": 20, "member_reminder": 20, "auto_resolve": 20, "close": 20, "digest": 4,
                "weekly_report": 1,  # the report of 6.-12.12. to jasenasiat's lead, once
                "retention": 0}  # no retention in these rules
    for name in JOBS:
        both = outcomes[0]["actions"][name] + outcomes[1]["actions"][name]
        assert len(both) == len(set(both)) == expected[name], name
    with Session(app.engine) as session:
        numbers = {t.id: t.number for t in session.exec(select(Ticket))}
        events = Counter((numbers[e.ticket_id], e.kind if e.kind != "status" else e.data["new"])
                         for e in session.exec(select(Event).where(Event.actor == schedule.ACTOR)))
        sent = Counter(row.kind for row in session.exec(select(Outbox)))
    assert events == Counter(
        [(n, "reminded_staff") for n in unanswered] + [(n, "escalated") for n in unanswered]
        + [(n, "reminded_member") for n in pending] + [(n, "resolved") for n in pending]
        + [(n, "closed") for n in resolved])
    # reminders: to the two staff of either queue; escalations: to jasenasiat's lead, laskutus's
    # two staff (it has no leads); member reminders: one each
    assert sent["reminder"] == 20 * 2 + (10 * 1 + 10 * 2) + 20
    assert sent["resolved"] == 20 and sent["digest"] == 4 and sent["report"] == 1
