"""Bounces mark addresses undeliverable only for maild's own mail, only the address that mail
went to, and only for 30 days (docs/mail.md#bounces); old marks are migrated to lapse as well."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from maild import views
from maild.app import App
from maild.config import load_settings
from maild.core.bounces import verp_address
from maild.core.tokens import outbox_token
from maild.outbound.sender import Sender
from maild.outbound.transport import SmtpTransport
from maild.store import db
from maild.store import tickets as store
from maild.store.tables import Contact, Event, Outbox, Quarantine, utcnow
from tests.conftest import run_maild
from tests.integration.smtp_sink import smtp_sink  # noqa: F401  (fixture)
from tests.integration.test_ack import acks, deliver, dsn_for
from tests.integration.test_end_to_end import send, wait_mail
from tests.mailgen import mail, message_id_of

VICTIM = "victim@example.fi"
ATTACKER = "attacker@evil.example"


@pytest.fixture
def app(make_instance, db_url: str) -> App:  # type: ignore[no-untyped-def]
    instance = App(load_settings(str(make_instance(db_url))))
    db.upgrade(instance.settings.database_url)
    return instance


def since(app: App, address: str):  # type: ignore[no-untyped-def]
    with Session(app.engine) as session:
        return store.contact_of(session, address).undeliverable_since


def outbox_row(app: App, kind: str, recipient: str) -> Outbox:
    with Session(app.engine) as session:
        return session.exec(select(Outbox).where(Outbox.kind == kind, Outbox.recipient == recipient)).one()


def bounce_events(app: App) -> list[dict]:
    with Session(app.engine) as session:
        return [e.data for e in session.exec(select(Event).where(Event.kind == "bounce").order_by(Event.id))]


# --- the attack of issue 11, through the real listener and a real smarthost ------------------


def test_a_forged_dsn_naming_a_stored_message_id_does_not_silence_the_victim(daemon, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    sink = smtp_sink()
    running = daemon(extra=f'\n[outbound]\ntransport = "{sink.url()}"\nstarttls = false\n')
    victims_mail = mail(subject="Jäsenmaksu", sender=VICTIM)
    send(running.port, victims_mail, "jasenpalvelu@liitto.fi", VICTIM)
    wait_mail(sink, lambda m: m["To"] == VICTIM and m["Auto-Submitted"] == "auto-replied")
    attackers_mail = mail(subject="Kysymys", sender=ATTACKER)
    send(running.port, attackers_mail, "jasenpalvelu@liitto.fi", ATTACKER)
    wait_mail(sink, lambda m: m["To"] == ATTACKER and m["Auto-Submitted"] == "auto-replied")

    # DSNs from the null sender that "return" the victim's own mail and the attacker's own mail
    for original in (victims_mail, attackers_mail):
        send(running.port, dsn_for(original, VICTIM, "jasenpalvelu@liitto.fi"), "jasenpalvelu@liitto.fi", "")

    send(running.port, mail(subject="Uusi asia", sender=VICTIM), "jasenpalvelu@liitto.fi", VICTIM)
    ack = wait_mail(sink, lambda m: m["To"] == VICTIM and "Uusi asia" in m["Subject"])
    assert ack["Auto-Submitted"] == "auto-replied"
    member = json.loads(run_maild("members", "show", VICTIM, "--json", "--config", str(running.config)).stdout)
    assert member["undeliverable_since"] is None and len(member["tickets"]) == 2
    kept = json.loads(run_maild("quarantine", "list", "--json", "--config", str(running.config)).stdout)
    assert [row["kind"] for row in kept] == ["bounce", "bounce"]


# --- which bounce may mark which address ----------------------------------------------------------


def test_a_bounce_of_an_inbound_message_id_is_kept_in_the_quarantine_and_marks_nothing(app: App) -> None:
    original = mail(subject="Jäsenmaksu", sender=VICTIM)
    deliver(app, original)
    assert deliver(app, dsn_for(original, VICTIM, "jasenpalvelu@liitto.fi"), sender="") == "quarantined:bounce"
    assert since(app, VICTIM) is None and bounce_events(app) == []
    with Session(app.engine) as session:
        assert session.exec(select(Quarantine.kind)).all() == ["bounce"]
    deliver(app, mail(subject="Uusi asia", sender=VICTIM))
    assert len(acks(app)) == 2


def test_a_bounce_by_our_message_id_marks_only_the_address_that_mail_went_to(app: App) -> None:
    deliver(app, mail(subject="Jäsenmaksu", sender=VICTIM))
    row = outbox_row(app, "ack", VICTIM)
    # a DSN listing the ack's recipient and someone the ack never went to
    dsn = dsn_for(row.raw, VICTIM, "jasenpalvelu@liitto.fi").replace(
        b"Action: failed\r\n", f"Action: failed\r\n\r\nFinal-Recipient: rfc822; {ATTACKER}\r\nAction: failed\r\n".encode(), 1)
    assert deliver(app, dsn, sender="") == "bounce:1"
    assert since(app, VICTIM) is not None and since(app, ATTACKER) is None
    (event,) = bounce_events(app)
    assert event["undeliverable"] == [VICTIM] and event["permanent"] is True


def test_a_verp_bounce_marks_the_outbox_recipient_not_the_addresses_it_lists(app: App) -> None:
    """The attacker bounces the acknowledgement he got himself (its VERP return path is his to
    see), listing the victim: only his own address is marked."""
    deliver(app, mail(subject="Jäsenmaksu", sender=VICTIM))
    deliver(app, mail(subject="Kysymys", sender=ATTACKER))
    row = outbox_row(app, "ack", ATTACKER)
    outcome = deliver(app, dsn_for(row.raw, VICTIM, row.return_path), recipients=(row.return_path,), sender="")
    assert outcome == "bounce:2"
    assert since(app, VICTIM) is None and since(app, ATTACKER) is not None
    (event,) = bounce_events(app)
    assert event["recipients"] == [VICTIM] and event["undeliverable"] == [ATTACKER]


def test_a_bounce_to_a_token_of_before_migration_0012_still_finds_its_row(app: App) -> None:
    """Mail queued before 0012 went out with ``o<row id>-<mac>`` tokens and no stored token."""
    deliver(app, mail(subject="Jäsenmaksu", sender=VICTIM))
    row = outbox_row(app, "ack", VICTIM)
    old = verp_address(outbox_token(app.pipeline.mailer.secret, row.id or 0), "liitto.fi")
    with Session(app.engine) as session:
        session.execute(sa.update(Outbox).where(Outbox.id == row.id).values(bounce_token=None, return_path=old))
        session.commit()
    assert deliver(app, dsn_for(row.raw, VICTIM, old), recipients=(old,), sender="") == "bounce:1"
    assert since(app, VICTIM) is not None


def test_a_bounce_to_a_made_up_token_is_not_ours(app: App) -> None:
    """A token of the right shape whose MAC is wrong finds no row: quarantined, nothing marked."""
    deliver(app, mail(subject="Jäsenmaksu", sender=VICTIM))
    row = outbox_row(app, "ack", VICTIM)
    assert row.bounce_token and row.return_path == f"bounces+{row.bounce_token}@liitto.fi"
    forged = row.return_path.replace(row.bounce_token[-10:], "a" * 10)
    stranger = mail(subject="Jotain", sender="someone@example.org")  # a Message-ID that is none of ours
    assert deliver(app, dsn_for(stranger, VICTIM, forged), recipients=(forged,), sender="") == "quarantined:bounce"
    assert since(app, VICTIM) is None


def test_a_delayed_bounce_marks_nothing(app: App) -> None:
    deliver(app, mail(subject="Jäsenmaksu", sender=VICTIM))
    row = outbox_row(app, "ack", VICTIM)
    delayed = dsn_for(row.raw, VICTIM, row.return_path).replace(b"Action: failed", b"Action: delayed").replace(
        b"Status: 5.1.1", b"Status: 4.2.2")
    assert deliver(app, delayed, recipients=(row.return_path,), sender="") == "bounce:1"
    assert since(app, VICTIM) is None and bounce_events(app)[0]["undeliverable"] == []


@pytest.mark.parametrize(("days", "acknowledged"), [(29, False), (31, True)])
def test_the_mark_lapses_after_30_days(app: App, days: int, acknowledged: bool) -> None:
    with Session(app.engine) as session:
        store.mark_undeliverable(session, VICTIM, utcnow() - timedelta(days=days))
        session.commit()
    deliver(app, mail(subject="Jäsenmaksu", sender=VICTIM))
    assert bool(acks(app)) is acknowledged
    with Session(app.engine) as session:
        member = views.member_detail(session, "JP", VICTIM)
    assert member is not None and (member["undeliverable_since"] is None) is acknowledged


def test_a_new_bounce_after_the_lapse_marks_the_address_again(app: App) -> None:
    old = utcnow() - timedelta(days=40)
    with Session(app.engine) as session:
        store.mark_undeliverable(session, VICTIM, old)
        session.commit()
    deliver(app, mail(subject="Jäsenmaksu", sender=VICTIM))
    row = outbox_row(app, "ack", VICTIM)
    deliver(app, dsn_for(row.raw, VICTIM, row.return_path), recipients=(row.return_path,), sender="")
    renewed = since(app, VICTIM)
    assert renewed is not None and renewed > old + timedelta(days=39)


def test_a_5xx_from_the_smarthost_marks_the_requester_for_30_days(app: App, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    sink = smtp_sink()
    sink.handler.replies[VICTIM] = "550 5.1.1 No such user"
    deliver(app, mail(subject="Jäsenmaksu", sender=VICTIM))

    async def drain() -> None:
        stopping = asyncio.Event()
        task = asyncio.create_task(Sender(app.engine, lambda: SmtpTransport(sink.url(), False, "", "")).run(stopping))
        await asyncio.sleep(1.5)
        stopping.set()
        await task

    asyncio.run(drain())
    assert outbox_row(app, "ack", VICTIM).state == "failed"
    marked = since(app, VICTIM)
    assert marked is not None and utcnow() - marked < timedelta(minutes=1)


# --- members show -------------------------------------------------------------------------------


def test_members_show(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url)
    for subject in ("Jäsenmaksu", "Osoitteenmuutos"):
        run_maild("--config", str(config), "ingest", input=mail(subject=subject, sender=f"Vera Uhri <{VICTIM}>"))
    engine = db.make_engine(sqlite_url)
    with Session(engine) as session:
        store.mark_undeliverable(session, VICTIM, utcnow() - timedelta(days=2))
        session.commit()
    engine.dispose()

    member = json.loads(run_maild("members", "show", VICTIM.upper(), "--json", "--config", str(config)).stdout)
    assert set(member) == {"address", "name", "undeliverable_since", "tickets", "member"}  # member: docs/coming.md#member-register
    assert (member["address"], member["name"]) == (VICTIM, "Vera Uhri") and member["undeliverable_since"]
    assert [t["number"] for t in member["tickets"]] == [2, 1]
    listed = json.loads(run_maild("tickets", "list", "--json", "--config", str(config)).stdout)
    assert member["tickets"] == sorted(listed, key=lambda t: -t["number"])  # each as in `tickets list`

    text = run_maild("members", "show", VICTIM, "--config", str(config))
    assert text.returncode == 0 and b"Vera Uhri" in text.stdout and b"undeliverable since" in text.stdout
    unknown = run_maild("members", "show", "nobody@example.fi", "--config", str(config))
    assert unknown.returncode == 1 and b"no member nobody@example.fi" in unknown.stderr


# --- old marks ----------------------------------------------------------------------------------


def test_old_undeliverable_flags_are_migrated_to_marks_that_lapse(sqlite_url: str) -> None:
    from alembic import command

    from maild.store.db import _alembic_config

    command.upgrade(_alembic_config(sqlite_url), "0006")
    engine = db.make_engine(sqlite_url)
    long_ago = utcnow() - timedelta(days=90)
    with engine.begin() as conn:
        conn.execute(sa.insert(Contact), [
            {"address": a, "name": "", "created_at": long_ago, "undeliverable": flag}
            for a, flag in (("old@example.fi", True), ("recent@example.fi", True), ("fine@example.fi", False))])
        conn.execute(sa.text("INSERT INTO tickets (number, queue, status, priority, subject, requester, confidential, "
                             "tags, other_queues, cc, created_at, updated_at, status_changed_at) VALUES (1, 'jasenasiat', "
                             "'new', 'normal', '', 'old@example.fi', 0, '[]', '[]', '[]', :t, :t, :t)"),
                     {"t": long_ago.replace(tzinfo=None)})
        conn.execute(sa.insert(Event), [{"ticket_id": 1, "kind": "bounce", "actor": "maild", "at": long_ago,
                                         "data": {"recipients": ["old@example.fi"], "permanent": True}}])
    db.upgrade(sqlite_url)
    with Session(engine) as session:
        marks = {c.address: c.undeliverable_since for c in session.exec(select(Contact))}
    engine.dispose()
    assert marks["old@example.fi"] == long_ago  # from its bounce: lapsed long ago
    assert marks["recent@example.fi"] is not None and utcnow() - marks["recent@example.fi"] < timedelta(minutes=1)
    assert marks["fine@example.fi"] is None


def test_a_co_recipient_cannot_mark_the_member_with_a_bounce_by_message_id(app: App) -> None:
    """The resolved notice goes to the member and their CC: the CC knows its Message-ID and the
    member's address. A DSN by that Message-ID (not to the mail's own VERP address, which only
    the member's server sees) is kept on the ticket but marks nobody: a mail that went to more
    than one address proves nothing about one of them. Real bounces come back to the VERP address."""
    from maild.core.commands import Command

    assert deliver(app, mail(subject="Jäsenmaksu", sender=VICTIM, cc=ATTACKER)) == "new:1"
    assert app.pipeline.act(1, Command("close"), "maija@liitto.fi") is None
    notice = outbox_row(app, "resolved", ATTACKER)  # the CC's copy: the same Message-ID as the member's
    assert deliver(app, dsn_for(notice.raw, VICTIM, "jasenpalvelu@liitto.fi"), sender="") == "bounce:1"
    assert since(app, VICTIM) is None
    (event,) = bounce_events(app)
    assert event["undeliverable"] == [] and event["recipients"] == [VICTIM]
    # the member's own server bouncing to the VERP address still marks them
    mine = outbox_row(app, "resolved", VICTIM)
    assert deliver(app, dsn_for(mine.raw, VICTIM, mine.return_path), sender="",
                   recipients=(mine.return_path,)) == "bounce:1"
    assert since(app, VICTIM) is not None
