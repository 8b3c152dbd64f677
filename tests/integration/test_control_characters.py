"""Control characters in values taken from mail never stop a mail from going out; what was
cleaned or left out is recorded (docs/mail.md#recipients). Through the real pipeline, the durable outbox
and the sender, into the maildir transport."""

from __future__ import annotations

import email
import email.policy
import mailbox
from pathlib import Path

import pytest
from sqlmodel import Session, select

from maild import views
from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.outbound.sender import Sender
from maild.outbound.transport import MaildirTransport
from maild.store import db
from maild.store.tables import Message, Outbox, Ticket
from tests.integration.test_outbound import drain


@pytest.fixture
def app(make_instance, db_url: str) -> App:
    instance = App(load_settings(str(make_instance(db_url))))
    db.upgrade(instance.settings.database_url)
    return instance


def deliver(app: App, raw: bytes, recipients: tuple[str, ...] = ("jasenpalvelu@liitto.fi",)) -> str:
    return app.pipeline.process(spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", None, recipients)))


def member_mail(extra: bytes = b"") -> bytes:
    return (
        b"From: =?utf-8?q?Matti=0BMeik=C3=A4l=C3=A4inen=0D=0ABcc:_x@evil.example?= <matti@example.fi>\r\n"
        b"To: jasenpalvelu@liitto.fi\r\nCc: Ystava <ystava\x0b@example.fi>, toinen@example.fi\r\n"
        b"Subject: Osoitteenmuutos\r\nDate: Tue, 24 Nov 2026 10:00:00 +0200\r\n" + extra +
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nHei, osoitteeni on muuttunut.\r\n"
    )


def outbox(app: App) -> list[tuple[str, str]]:
    with Session(app.engine) as session:
        return [(row.kind, row.recipient) for row in session.exec(select(Outbox).order_by(Outbox.id))]


def events(app: App, kind: str) -> list[dict]:
    with Session(app.engine) as session:
        detail = views.ticket_detail(session, "JP", 1)
    assert detail is not None
    return [e["data"] for e in detail["events"] if e["kind"] == kind]


def delivered(app: App, directory: Path) -> list[email.message.EmailMessage]:
    drain(Sender(app.engine, lambda: MaildirTransport(directory), connections=1), 1.0)
    with Session(app.engine) as session:
        assert {row.state for row in session.exec(select(Outbox))} == {"sent"}
    return [email.message_from_bytes(m.as_bytes(), policy=email.policy.default) for m in mailbox.Maildir(str(directory))]  # type: ignore[misc]


def staff_reply(app: App) -> str:
    """Maija answers from her mail client, to the secret reply address of her notification."""
    with Session(app.engine) as session:
        raw = session.exec(select(Outbox.raw).where(Outbox.recipient == "maija@liitto.fi")).first()
    assert raw is not None
    token_address = email.message_from_bytes(raw, policy=email.policy.default)["Reply-To"].addresses[0].addr_spec
    reply = (
        f"From: maija@liitto.fi\r\nTo: {token_address}\r\nSubject: RE: [JP#1] Osoitteenmuutos\r\n"
        "Message-ID: <vastaus@liitto.fi>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Hei Matti, osoite on päivitetty.\r\n"
    ).encode()
    return deliver(app, reply, recipients=(token_address,))


def test_control_characters_from_the_member_never_stop_ack_notification_or_relay(app: App, tmp_path: Path) -> None:
    assert deliver(app, member_mail(b"Message-ID: <abc\x0bdef@example.fi>\r\n")) == "new:1"
    assert ("ack", "matti@example.fi") in outbox(app)
    assert [e["notes"] for e in events(app, "mail_values_cleaned")] == [[
        "from: control characters; names were cleaned, addresses with them left out",
        "cc: control characters; names were cleaned, addresses with them left out",
        "message-id: control characters; identifiers with them left out",
    ]]
    with Session(app.engine) as session:
        ticket = session.exec(select(Ticket)).one()
        assert ticket.requester == "matti@example.fi" and ticket.cc == ["toinen@example.fi"]
    assert staff_reply(app) == "follow_up:1"
    assert ("staff", "matti@example.fi") in outbox(app) and ("staff", "toinen@example.fi") in outbox(app)

    mails = delivered(app, tmp_path / "outbox")
    assert sorted(str(m["Delivered-To"]) for m in mails) == [  # ack, two notifications, the answer to two
        "maija@liitto.fi", "matti@example.fi", "matti@example.fi", "pekka@liitto.fi", "toinen@example.fi"]
    for message in mails:  # no header was split or added by a value from mail
        assert message["Bcc"] is None and "evil" not in str(message["To"]) + str(message.get("Cc", ""))
        assert not any("\x0b" in str(value) for value in message.values())
    ack = next(m for m in mails if m["Auto-Submitted"] == "auto-replied" and m["Delivered-To"] == "matti@example.fi")
    assert ack["In-Reply-To"] is None  # the member's Message-ID was left out, the mail was not


def test_bad_values_already_stored_are_left_out_of_the_relay_and_recorded(app: App, tmp_path: Path) -> None:
    """Rows written before values were cleaned at the door: composition itself never lets one
    kill a mail."""
    assert deliver(app, member_mail(b"Message-ID: <kunnossa@example.fi>\r\n")) == "new:1"
    with Session(app.engine) as session:
        ticket = session.exec(select(Ticket)).one()
        ticket.cc = ["ystava\x0b@example.fi", "toinen@example.fi", "x@y.fi\r\nBcc: evil@x.fi"]
        member = session.exec(select(Message).where(Message.direction == "in")).one()
        member.message_id = "abc\x0bdef@example.fi"
        member.references = ["ok@example.fi", "r\x1b[2J@x"]
        session.commit()
    assert staff_reply(app) == "follow_up:1"
    assert [r for k, r in outbox(app) if k == "staff"] == ["matti@example.fi", "toinen@example.fi"]
    assert [e["to"] for e in events(app, "relayed")] == [["matti@example.fi", "toinen@example.fi"]]
    [left_out] = events(app, "outgoing_values_left_out")
    assert left_out["mail"] == "staff"
    assert left_out["notes"] == [
        "Cc: left out 'ystava\\x0b@example.fi'",
        "Cc: left out 'x@y.fi\\r\\nBcc: evil@x.fi'",
        "In-Reply-To: left out 'abc\\x0bdef@example.fi'",
        "References: left out 'r\\x1b[2J@x'",
        "References: left out 'abc\\x0bdef@example.fi'",
    ]
    relayed = [m for m in delivered(app, tmp_path / "outbox") if m["Auto-Submitted"] is None]
    assert sorted(str(m["Delivered-To"]) for m in relayed) == ["matti@example.fi", "toinen@example.fi"]
    for message in relayed:
        assert (str(message["To"]), str(message["Cc"]), message["Bcc"]) == ("matti@example.fi", "toinen@example.fi", None)
        assert message["In-Reply-To"] is None and str(message["References"]) == "<ok@example.fi>"


def test_an_envelope_sender_is_read_like_a_header(app: App) -> None:
    """Without a readable From the envelope sender stands in; aiosmtpd hands MAIL FROM on with
    control characters (and decodes encoded words in it), so it is read with the same rules."""
    raw = b"From: =?utf-8?q?x?=\r\nTo: jasenpalvelu@liitto.fi\r\nSubject: Hei\r\n\r\nTeksti\r\n"
    inbound = spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", "matti\x0b@example.fi", ("jasenpalvelu@liitto.fi",)))
    assert app.pipeline.process(inbound) == "quarantined:unparseable"
    inbound = spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", "Matti@Example.fi", ("jasenpalvelu@liitto.fi",)))
    assert app.pipeline.process(inbound) == "new:1"
    assert ("ack", "matti@example.fi") in outbox(app)
