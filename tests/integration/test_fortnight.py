"""A fortnight of sweeps as the daemon runs them: all of them, every five minutes (on
PostgreSQL every quarter of an hour: see the test).

Wed 1.12.2027 00:00 to Wed 15.12.2027 00:00 in Helsinki (EET throughout): weekends on 4.-5.
and 11.-12.12., and Itsenäisyyspäivä on Monday 6.12. Tickets arrive, are answered, and their
members reply at set times. Halfway the daemon goes down (Wed 8.12. 07:00) and comes back
at 11:47 as a new App from the same config: it sweeps at once, then every five minutes from
then on, as `maild run` does.

Every due time below is worked out by hand from the SLA table and business hours (08-16,
Mon-Fri, FI holidays); each must happen exactly once, at the first sweep at or after it (for
one due in the downtime: at the restart). Time moves only through the sweeps' ``now``.
"""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.schedule import ACTOR, run_all
from maild.store import db
from maild.store import tickets as store
from maild.store.tables import Event, Outbox, Ticket
from tests.conftest import MakeInstance
from tests.mailgen import mail

HKI = ZoneInfo("Europe/Helsinki")
RULES = """\
queues:
  jasenasiat:
    name: Jäsenasiat
    address: jasenpalvelu@liitto.fi
    staff: [maija@liitto.fi, pekka@liitto.fi]
    leads: [johtaja@liitto.fi]
    language: fi
    default: true
  laskutus:
    name: Laskutus
    address: laskutus@liitto.fi
    staff: [lasse@liitto.fi, liisa@liitto.fi]
    language: sv
sla: {urgent: 4h, high: 1d, normal: 3d, low: 5d}
business_hours: {days: [mon, tue, wed, thu, fri], hours: "08:00-16:00", holidays: FI}
lifecycle: {remind_member_after_days: 5, resolve_pending_after_days: 14, close_after_days: 7}
rules: []
"""
JASEN = ("maija@liitto.fi", "pekka@liitto.fi")
LASKU = ("lasse@liitto.fi", "liisa@liitto.fi")
LEADS = ("johtaja@liitto.fi",)
ADDRESS = {"jasenasiat": "jasenpalvelu@liitto.fi", "laskutus": "laskutus@liitto.fi"}


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HKI)


START, DOWN, UP, END = local("2027-12-01T00:00"), local("2027-12-08T07:00"), local("2027-12-08T11:47"), local("2027-12-15T00:00")


@dataclass(frozen=True)
class Plan:
    queue: str
    priority: str
    assignee: str | None = None
    machine: bool = False  # opened by an out-of-office reply
    bounced: bool = False  # the requester's address is undeliverable


TICKETS = {
    "urgent-friday": Plan("jasenasiat", "urgent"),
    "high-billing": Plan("laskutus", "high", "lasse@liitto.fi"),
    "normal-thursday": Plan("jasenasiat", "normal", "maija@liitto.fi"),
    "weekend": Plan("jasenasiat", "normal"),
    "low-early": Plan("laskutus", "low"),
    "urgent-downtime": Plan("jasenasiat", "urgent", "pekka@liitto.fi"),
    "answered-early": Plan("jasenasiat", "high", "maija@liitto.fi"),
    "old-pending": Plan("laskutus", "normal", "liisa@liitto.fi"),
    "resolved-by-staff": Plan("jasenasiat", "normal", "pekka@liitto.fi"),
    "two-rounds": Plan("jasenasiat", "normal", "maija@liitto.fi"),
    "low-answered": Plan("laskutus", "low", "lasse@liitto.fi"),
    "answered-late": Plan("jasenasiat", "high", "maija@liitto.fi"),
    "background-members": Plan("jasenasiat", "normal"),  # open all along: every staff member
    "background-billing": Plan("laskutus", "normal"),  # has something for the digest each day
    "replied-in-time": Plan("laskutus", "normal", "liisa@liitto.fi"),
    "urgent-weekend": Plan("laskutus", "urgent"),
    "resolved-silent": Plan("laskutus", "high", "lasse@liitto.fi"),
    "auto-reply": Plan("jasenasiat", "normal", machine=True),
    "bounced": Plan("jasenasiat", "normal", "pekka@liitto.fi", bounced=True),
}

# What people do: arrives (the ticket is made), answered (staff's answer: pending), replies
# (the member: open), resolved (by staff), reminded (a member reminder before the fortnight).
LIFE = [
    ("2027-11-22T10:00", "old-pending", "arrives"), ("2027-11-23T13:20", "old-pending", "answered"),
    ("2027-11-28T13:20", "old-pending", "reminded"),
    ("2027-11-26T09:00", "resolved-silent", "arrives"), ("2027-11-29T10:05", "resolved-silent", "answered"),
    ("2027-11-26T10:00", "background-members", "arrives"), ("2027-11-26T11:00", "background-members", "answered"),
    ("2027-11-29T09:00", "background-members", "replies"),
    ("2027-11-26T10:00", "background-billing", "arrives"), ("2027-11-26T11:00", "background-billing", "answered"),
    ("2027-11-29T09:00", "background-billing", "replies"),
    ("2027-11-29T09:00", "resolved-by-staff", "arrives"), ("2027-11-29T12:00", "resolved-by-staff", "answered"),
    ("2027-12-02T16:45", "resolved-by-staff", "resolved"),
    ("2027-11-30T10:00", "auto-reply", "arrives"), ("2027-12-01T10:00", "auto-reply", "answered"),
    ("2027-12-01T08:00", "two-rounds", "arrives"), ("2027-12-01T08:30", "two-rounds", "answered"),
    ("2027-12-07T09:15", "two-rounds", "replies"), ("2027-12-07T14:00", "two-rounds", "answered"),
    ("2027-12-01T09:00", "answered-early", "arrives"), ("2027-12-01T11:00", "answered-early", "answered"),
    ("2027-12-01T10:30", "high-billing", "arrives"),
    ("2027-12-01T13:00", "bounced", "arrives"), ("2027-12-02T09:40", "bounced", "answered"),
    ("2027-12-02T14:10", "normal-thursday", "arrives"),
    ("2027-12-03T15:00", "urgent-friday", "arrives"),
    ("2027-12-04T11:00", "weekend", "arrives"), ("2027-12-09T09:00", "weekend", "answered"),
    ("2027-12-07T07:00", "low-early", "arrives"),
    ("2027-12-07T08:30", "low-answered", "arrives"), ("2027-12-07T15:00", "low-answered", "answered"),
    ("2027-12-08T06:30", "urgent-downtime", "arrives"),
    ("2027-12-09T09:00", "answered-late", "arrives"), ("2027-12-09T14:00", "answered-late", "answered"),
    ("2027-12-09T10:00", "replied-in-time", "arrives"), ("2027-12-09T10:30", "replied-in-time", "answered"),
    ("2027-12-13T09:00", "replied-in-time", "replies"),
    ("2027-12-10T15:30", "urgent-weekend", "arrives"),
]

# (due, ticket, what, to). Staff reminders at half the SLA in open hours, escalations at the
# breach (a 1d/3d/5d target: the same local time on the n-th business day after the count
# starts), member reminders 5 and resolutions 14 calendar days after the answer, closing 7
# after resolving.
EXPECTED = [
    # urgent-friday, Fri 15:00: 1 h on Friday (Mon 6.12. is a holiday), 1 h / 3 h on Tuesday
    ("2027-12-07T09:00", "urgent-friday", "reminded_staff", JASEN),
    ("2027-12-07T11:00", "urgent-friday", "escalated", LEADS),
    # high-billing, Wed 10:30: 4 h; 1d = Thu at 10:30; laskutus has no leads: its staff
    ("2027-12-01T14:30", "high-billing", "reminded_staff", ("lasse@liitto.fi",)),
    ("2027-12-02T10:30", "high-billing", "escalated", LASKU),
    # normal-thursday, Thu 14:10: 1 h 50 + Fri 8 h + Tue 2 h 10 = 12 h; 3d = Fri, Tue, Wed 14:10
    ("2027-12-07T10:10", "normal-thursday", "reminded_staff", ("maija@liitto.fi",)),
    ("2027-12-08T14:10", "normal-thursday", "escalated", LEADS),
    # weekend, Sat: counted from Tue 08:00: Tue 8 h + Wed 4 h; answered Thu 09:00 before the breach
    ("2027-12-08T12:00", "weekend", "reminded_staff", JASEN),
    ("2027-12-14T09:00", "weekend", "reminded_member", ("weekend@example.fi",)),
    # low-early, Tue 07:00, counted from 08:00: 20 h = Tue, Wed, Thu 4 h; 5d = Tue 14.12. 08:00
    ("2027-12-09T12:00", "low-early", "reminded_staff", LASKU),
    ("2027-12-14T08:00", "low-early", "escalated", LASKU),
    # urgent-downtime, Wed 8.12. 06:30: 2 h from 08:00 (down then) and 4 h
    ("2027-12-08T10:00", "urgent-downtime", "reminded_staff", ("pekka@liitto.fi",)),
    ("2027-12-08T12:00", "urgent-downtime", "escalated", LEADS),
    # answered-early: answered before its half SLA; 5 days after the answer, a holiday or not
    ("2027-12-06T11:00", "answered-early", "reminded_member", ("answered-early@example.fi",)),
    # old-pending: answered 23.11. 13:20 (reminded 28.11.): resolved after 14 days, closed 7 later
    ("2027-12-07T13:20", "old-pending", "resolved", ("old-pending@example.fi",)),
    ("2027-12-14T13:20", "old-pending", "closed", ()),
    # resolved-by-staff on Thu 2.12. 16:45: closed 7 days later
    ("2027-12-09T16:45", "resolved-by-staff", "closed", ()),
    # two-rounds: each time it waits for the member, one reminder
    ("2027-12-06T08:30", "two-rounds", "reminded_member", ("two-rounds@example.fi",)),
    ("2027-12-12T14:00", "two-rounds", "reminded_member", ("two-rounds@example.fi",)),
    ("2027-12-12T15:00", "low-answered", "reminded_member", ("low-answered@example.fi",)),
    # answered-late, Thu 9.12. 09:00: 4 h; answered 14:00, before the breach
    ("2027-12-09T13:00", "answered-late", "reminded_staff", ("maija@liitto.fi",)),
    ("2027-12-14T14:00", "answered-late", "reminded_member", ("answered-late@example.fi",)),
    # urgent-weekend, Fri 10.12. 15:30: 30 min on Friday, then Monday 1 h 30 / 3 h 30
    ("2027-12-13T09:30", "urgent-weekend", "reminded_staff", LASKU),
    ("2027-12-13T11:30", "urgent-weekend", "escalated", LASKU),
    # resolved-silent: answered Mon 29.11. 10:05: reminded on Saturday, resolved on Monday
    ("2027-12-04T10:05", "resolved-silent", "reminded_member", ("resolved-silent@example.fi",)),
    ("2027-12-13T10:05", "resolved-silent", "resolved", ("resolved-silent@example.fi",)),
    # no reminder to an auto-reply or to an address that bounced: an event says why
    ("2027-12-06T10:00", "auto-reply", "reminder_skipped", ()),
    ("2027-12-07T09:40", "bounced", "reminder_skipped", ()),
] + [  # the digest each business morning from 08:00 (on 8.12. the daemon is down until 11:47)
    (f"2027-12-{day:02}T08:00", None, "digest", JASEN + LASKU) for day in (1, 2, 3, 7, 8, 9, 10, 13, 14)
]
MAIL_KIND = {"reminded_staff": "reminder", "escalated": "reminder", "reminded_member": "reminder",
             "resolved": "resolved", "digest": "digest"}


def sweep_times(step: timedelta) -> list[datetime]:
    """When the daemon sweeps: every ``step`` from the start, none while it is down, and from
    the restart on a grid of its own."""
    before = [START + k * step for k in range(int((DOWN - START) / step) + 1) if START + k * step < DOWN]
    after = [UP + k * step for k in range(int((END - UP) / step) + 1) if UP + k * step < END]
    return before + after


def first_at_or_after(times: list[datetime], due: datetime) -> datetime:
    return next(t for t in times if t >= due)


@pytest.fixture
def config(make_instance: MakeInstance, db_url: str) -> str:
    path = str(make_instance(db_url, rules=RULES))
    db.upgrade(load_settings(path).database_url)
    return path


def happen(app: App, numbers: dict[str, int], when: datetime, key: str, what: str) -> None:
    """One thing a person did, at ``when``."""
    if what == "arrives":
        plan = TICKETS[key]
        raw = mail(subject=f"Asia {key}", sender=f"{key}@example.fi", to=ADDRESS[plan.queue],
                   headers={"Auto-Submitted": "auto-replied"} if plan.machine else None)
        result = app.pipeline.process(spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", None, ())))
        numbers[key] = int(result.split(":")[1])
    with Session(app.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == numbers[key])).one()
        if what == "arrives":
            ticket.priority, ticket.assignee = TICKETS[key].priority, TICKETS[key].assignee
            ticket.created_at = ticket.updated_at = ticket.status_changed_at = when
            store.contact(session, ticket.requester).undeliverable_since = when if TICKETS[key].bounced else None
        elif what == "reminded":
            store.add_event(session, ticket, "reminded_member", actor=ACTOR, at=when)
        else:
            ticket.status = {"answered": "pending", "replies": "open", "resolved": "resolved"}[what]
            ticket.status_changed_at = when
            if what == "answered":
                ticket.first_response_at = ticket.first_response_at or when
            if what == "resolved":
                ticket.resolved_at = when
        session.commit()


def what_happened(app: App, numbers: dict[str, int]) -> tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]]:
    """The scheduler's events as (ticket, what, when), and its mail as (ticket, kind, to, Date)."""
    keys = {number: key for key, number in numbers.items()}
    with Session(app.engine) as session:
        tickets = {t.id: keys[t.number] for t in session.exec(select(Ticket))}
        events = session.exec(select(Event).where(Event.actor == ACTOR, Event.at >= START))
        done = Counter((tickets[e.ticket_id], e.data["new"] if e.kind == "status" else e.kind, e.at) for e in events)
        rows = session.exec(select(Outbox).where(col(Outbox.kind).in_(("reminder", "resolved", "digest"))))
        sent = Counter(
            (tickets.get(row.ticket_id or 0), row.kind, row.recipient,
             parsedate_to_datetime(email.message_from_bytes(row.raw, policy=email.policy.default)["Date"]))
            for row in rows)
    return done, sent


def test_a_fortnight_with_a_restart_does_everything_once_at_its_time(config: str, db_url: str) -> None:
    # PostgreSQL: every sweep is five round trips even when nothing is due (ping, BEGIN, lock,
    # query, COMMIT): quarter-hour steps keep the test near 15 s; SQLite takes every five minutes.
    times = sweep_times(timedelta(minutes=5 if db_url.startswith("sqlite") else 15))
    life = sorted((local(when), key, what) for when, key, what in LIFE)
    numbers: dict[str, int] = {}
    app = App(load_settings(config))
    for now in times:
        if now == UP:  # the daemon comes back: a new App, engine and pipeline from the config
            app.engine.dispose()
            app = App(load_settings(config))
        while life and life[0][0] <= now:
            happen(app, numbers, *life.pop(0))
        run_all(app.pipeline, now)

    done, sent = what_happened(app, numbers)
    fire = {due: first_at_or_after(times, local(due)) for due, *_ in EXPECTED}
    assert sorted(done.items()) == sorted(Counter(
        (key, what, fire[due]) for due, key, what, _ in EXPECTED if what != "digest").items())
    assert sorted(sent.items(), key=str) == sorted(Counter(
        (key, MAIL_KIND[what], to, fire[due]) for due, key, what, recipients in EXPECTED for to in recipients
    ).items(), key=str)
