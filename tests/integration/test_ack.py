"""Acknowledgements of new tickets, and no answers to machines (docs/mail.md#what-maild-sends, 4.3)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from sqlmodel import Session, select

from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.store import db
from maild.store.tables import Event, Outbox, Quarantine, Ticket
from tests.mailgen import mail, message_id_of

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


@pytest.fixture
def app(make_instance, sqlite_url: str) -> App:
    instance = App(load_settings(str(make_instance(sqlite_url))))
    db.upgrade(instance.settings.database_url)
    return instance


def deliver(app: App, raw: bytes, recipients: tuple[str, ...] = ("jasenpalvelu@liitto.fi",), sender: str | None = None) -> str:
    return app.pipeline.process(spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", sender, recipients)))


def acks(app: App) -> list[email.message.EmailMessage]:
    with Session(app.engine) as session:
        rows = session.exec(select(Outbox).where(Outbox.kind == "ack").order_by(Outbox.id)).all()
        return [email.message_from_bytes(r.raw, policy=email.policy.default) for r in rows]  # type: ignore[misc]


def test_member_gets_an_acknowledgement_threaded_to_their_mail(app: App) -> None:
    original = mail(subject="Osoitteenmuutos", sender="Matti Meikäläinen <matti@example.fi>")
    assert deliver(app, original) == "new:1"
    (ack,) = acks(app)
    assert ack["To"] == "matti@example.fi"
    assert str(ack["From"]) == "Jäsenasiat <jasenpalvelu@liitto.fi>"
    assert ack["Subject"].startswith("[JP#1] ") and "Osoitteenmuutos" in ack["Subject"]
    assert ack["In-Reply-To"] == message_id_of(original)
    assert message_id_of(original) in ack["References"]
    assert ack["Auto-Submitted"] == "auto-replied" and ack["X-Auto-Response-Suppress"] == "All"
    assert ack["Message-ID"].endswith("@liitto.fi>")
    reply_to = ack["Reply-To"].addresses[0].addr_spec
    assert reply_to.startswith("jasenpalvelu+1-") and reply_to.endswith("@liitto.fi")
    body = ack.get_body(("plain",)).get_content()
    assert "[JP#1]" in body and "Hei Matti Meikäläinen" in body


def test_reply_to_the_token_address_threads_without_tag_or_references(app: App) -> None:
    deliver(app, mail(subject="Osoitteenmuutos"))
    token_address = acks(app)[0]["Reply-To"].addresses[0].addr_spec
    reply = mail(subject="aivan uusi aihe", to=token_address)
    assert deliver(app, reply, recipients=(token_address,)) == "follow_up:1"
    forged = token_address.replace("+1-", "+2-")
    assert deliver(app, mail(subject="toinen", to=forged), recipients=(forged,)) == "new:2"


def test_resignation_ack_reminds_of_membership_benefits(app: App) -> None:
    deliver(app, mail(subject="Eroilmoitus", body="Haluan erota liitosta."))
    body = acks(app)[0].get_body(("plain",)).get_content()
    assert "työttömyyskassa" in body.lower() and "[JP#1]" in body


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Precedence": "bulk"},
        {"List-Id": "<jasenet.liitto.fi>"},
        {"X-Autoreply": "yes"},
    ],
)
def test_no_acknowledgement_to_machines(app: App, headers: dict[str, str]) -> None:
    assert deliver(app, mail(subject="Automaattinen vastaus", headers=headers)) == "new:1"
    assert acks(app) == []
    with Session(app.engine) as session:
        skipped = session.exec(select(Event).where(Event.kind == "ack_skipped")).one()
        assert skipped.data["reason"]


@pytest.mark.parametrize("sender", ["noreply@example.fi", "MAILER-DAEMON@example.fi", "jasenpalvelu@liitto.fi"])
def test_no_acknowledgement_to_system_senders(app: App, sender: str) -> None:
    deliver(app, mail(sender=sender))
    assert acks(app) == []


def test_at_most_the_hourly_limit_of_acks_per_sender(app: App) -> None:
    for i in range(5):
        deliver(app, mail(subject=f"Asia {i}"))
    assert len(acks(app)) == 3  # auto_reply_limit_per_hour
    deliver(app, mail(subject="Toiselta", sender="liisa@example.fi"))
    assert len(acks(app)) == 4


def test_out_of_office_storm_gets_no_acknowledgements_and_opens_no_bounce_tickets(app: App) -> None:
    """A newsletter answered by auto-replies and bounces, all to jasenpalvelu@ (scaled down)."""
    auto_replies = sorted((CORPUS / "auto_replies").glob("*.eml"))
    bounces = sorted((CORPUS / "bounces").glob("*.eml"))
    sent = 0
    for round_ in range(4):
        for path in auto_replies:
            raw = path.read_bytes().replace(b"Message-ID: <", f"Message-ID: <storm{round_}-".encode(), 1)
            deliver(app, raw)
            sent += 1
        for path in bounces:
            deliver(app, path.read_bytes(), sender="")
    assert acks(app) == []
    with Session(app.engine) as session:
        tickets = session.exec(select(Ticket)).all()
        kept = session.exec(select(Quarantine).where(Quarantine.kind == "bounce")).all()
    assert len(tickets) <= sent  # auto-replies are stored, as the contract says
    assert len(kept) >= 4 * (len(bounces) - 1)  # every bounce kept, none a ticket (one human-looking sample)


def dsn_for(original: bytes, failed: str, return_path: str) -> bytes:
    """A real-shaped RFC 3464 report, as Postfix writes it, returning our message."""
    return (
        f"Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.example.fi (Mail Delivery System)\r\nTo: {return_path}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        "Message-ID: <dsn-1@mx.example.fi>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.fi\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{failed}>: Recipient address rejected\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ).encode() + original.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n--B--\r\n"


def test_bounce_of_our_ack_is_recorded_on_its_ticket_by_verp(app: App) -> None:
    deliver(app, mail(subject="Jäsenmaksu", sender="typo@example.fi"))
    with Session(app.engine) as session:
        row = session.exec(select(Outbox).where(Outbox.kind == "ack")).one()
        return_path, raw = row.return_path, row.raw
    assert row.bounce_token and return_path == f"bounces+{row.bounce_token}@liitto.fi"
    assert deliver(app, dsn_for(raw, "typo@example.fi", return_path), recipients=(return_path,), sender="") == "bounce:1"
    with Session(app.engine) as session:
        kinds = [e.kind for e in session.exec(select(Event).order_by(Event.id))]
        assert "bounce" in kinds and "requester_undeliverable" in kinds
        assert len(session.exec(select(Ticket)).all()) == 1
    # the address bounces now: the next new ticket from it gets no acknowledgement
    deliver(app, mail(subject="Uusi asia", sender="typo@example.fi"))
    assert len(acks(app)) == 1


def test_bounce_found_by_returned_message_id_without_verp(app: App) -> None:
    deliver(app, mail(subject="Jäsenmaksu", sender="typo@example.fi"))
    with Session(app.engine) as session:
        raw = session.exec(select(Outbox).where(Outbox.kind == "ack")).one().raw
    assert deliver(app, dsn_for(raw, "typo@example.fi", "jasenpalvelu@liitto.fi"), sender="") == "bounce:1"


def test_unmatched_bounce_goes_to_the_quarantine(app: App) -> None:
    stray = dsn_for(mail(subject="Ei meidän"), "x@example.fi", "jasenpalvelu@liitto.fi")
    assert deliver(app, stray, sender="") == "quarantined:bounce"


def notifications(app: App) -> list[email.message.EmailMessage]:
    with Session(app.engine) as session:
        rows = session.exec(select(Outbox).where(Outbox.kind == "notification").order_by(Outbox.id)).all()
        return [email.message_from_bytes(r.raw, policy=email.policy.default) for r in rows]  # type: ignore[misc]


def test_staff_are_notified_with_their_own_secret_reply_address(app: App) -> None:
    from maild.core.tokens import read_staff_token

    deliver(app, mail(subject="Osoitteenmuutos", body="Uusi osoite: Kotikatu 1"))
    sent = notifications(app)
    assert sorted(m["To"] for m in sent) == ["maija@liitto.fi", "pekka@liitto.fi"]
    staff = frozenset({"maija@liitto.fi", "pekka@liitto.fi"})
    for message in sent:
        assert message["Auto-Submitted"] == "auto-generated" and "[JP#1]" in message["Subject"]
        token = message["Reply-To"].addresses[0].addr_spec.split("+", 1)[1].split("@")[0]
        assert read_staff_token(app.pipeline.mailer.secret, token, staff) == (1, message["To"])
        assert "Kotikatu 1" in message.get_body(("plain",)).get_content()
    with Session(app.engine) as session:
        shown = views_detail(session)
    notes = [m for m in shown["messages"] if m["kind"] == "notification"]
    assert len(notes) == 1 and sorted(notes[0]["to"]) == ["maija@liitto.fi", "pekka@liitto.fi"]


def views_detail(session: Session) -> dict:
    from maild import views

    detail = views.ticket_detail(session, "JP", 1)
    assert detail is not None
    return detail


def test_member_follow_up_notifies_the_assignee_only(app: App) -> None:
    deliver(app, mail(subject="Laskuni on väärin"))  # laskutus, round-robin: lasse
    deliver(app, mail(subject="Re: [JP#1] Laskuni on väärin", body="Lisätietoa"))
    followups = [m for m in notifications(app) if "Lisätietoa" in m.get_body(("plain",)).get_content()]
    assert [m["To"] for m in followups] == ["lasse@liitto.fi"]


def test_machine_mail_notifies_nobody(app: App) -> None:
    deliver(app, mail(subject="Poissa", headers={"Auto-Submitted": "auto-replied"}))
    assert notifications(app) == []
