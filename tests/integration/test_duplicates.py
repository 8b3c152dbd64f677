"""The duplicate rule (docs/mail.md#threading): the same mail is stored once and the copy is visible;
different mail is never taken for a copy. Real database, real daemon, real Dovecot."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from maild import views
from maild.app import App
from maild.config import load_settings
from maild.core import threader
from maild.core.parse import parse_message
from maild.intake.spool import spool_sync
from maild.mail import Envelope, Source
from maild.store import db
from maild.store.tables import Inbound, Message, Ticket
from tests.conftest import run_maild
from tests.integration.dovecot import Dovecot
from tests.integration.test_imap import processed, send_smtp, wait_for
from tests.mailgen import mail


@pytest.fixture
def app(make_instance, db_url: str) -> App:
    instance = App(load_settings(str(make_instance(db_url))))
    db.upgrade(instance.settings.database_url)
    return instance


def deliver(app: App, raw: bytes, source: Source = "smtp") -> str:
    return app.pipeline.process(spool_sync(app.engine, app.raw_store, raw, Envelope(source, None, ("jasenpalvelu@liitto.fi",))))


def events(app: App, number: int, kind: str) -> list[dict]:
    with Session(app.engine) as session:
        detail = views.ticket_detail(session, "JP", number)
    assert detail is not None
    return [e for e in detail["events"] if e["kind"] == kind]


def scan(subject: str, pdf: bytes) -> bytes:
    """A scanner's mail: no Message-ID; sender, date and text the same every time."""
    msg = EmailMessage()
    msg["From"] = "scanner@toimisto.fi"
    msg["To"] = "jasenpalvelu@liitto.fi"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 24 Nov 2026 10:00:00 +0200"
    msg.set_content("Skannattu asiakirja liitteenä.")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="scan.pdf")
    return bytes(msg)


def test_scanner_mails_without_message_id_are_two_tickets(app: App) -> None:
    assert deliver(app, scan("Jäsenhakemus Virtanen", b"%PDF-1.4 hakemus")) == "new:1"
    assert deliver(app, scan("Eroilmoitus Nieminen", b"%PDF-1.4 ero")) == "new:2"
    assert deliver(app, scan("Jäsenhakemus Virtanen", b"%PDF-1.4 toinen liite")) == "new:3"
    with Session(app.engine) as session:
        assert session.exec(select(sa.func.count()).select_from(Ticket)).one() == 3
        assert [i.state for i in session.exec(select(Inbound).order_by(Inbound.id))] == ["done"] * 3


def test_a_copy_is_stored_once_and_recorded_on_the_ticket(app: App) -> None:
    raw = scan("Jäsenhakemus Virtanen", b"%PDF-1.4 hakemus")
    assert deliver(app, raw) == "new:1"
    assert deliver(app, raw.replace(b"\r\n", b"\n"), source="pipe") == "duplicate"
    [copy] = events(app, 1, "duplicate_received")
    assert copy["data"]["source"] == "pipe" and copy["data"]["received_at"] and copy["data"]["message_id"] is None
    with Session(app.engine) as session:
        first = session.exec(select(Message).where(Message.direction == "in")).one()
        inbound = session.get(Inbound, 2)
        assert inbound is not None and (inbound.state, inbound.error) == ("done", f"duplicate of message {first.id} on [JP#1]")
        assert copy["data"]["first_message"] == first.id and copy["data"]["inbound_id"] == 2


def test_one_web_form_page_posted_twice_is_one_ticket(app: App) -> None:
    """The form remembers used pages in memory; after a restart, or on another instance behind
    the same proxy, a reload of the same page is stored again, and the copy is recognised here."""
    from datetime import timedelta

    from maild.core import webform

    submission, _ = webform.read({"name": "Maija", "email": "maija@example.fi", "subject": "Jäsenmaksu",
                                  "message": "Paljonko se on?"})
    assert submission is not None
    written = webform.token_written(webform.new_token(b"k"))
    first, again = (webform.to_mail(submission, "abc", "jasenpalvelu@liitto.fi", "liitto.fi", client, written,
                                    now=written + later) for client, later in
                    (("192.0.2.1", timedelta(minutes=1)), ("198.51.100.7", timedelta(minutes=30))))
    assert deliver(app, first, "web") == "new:1"
    assert deliver(app, again, "web") == "duplicate"
    assert len(events(app, 1, "duplicate_received")) == 1


def test_an_old_row_counts_by_message_id_and_old_fingerprint_only(app: App) -> None:
    """Rows stored before the v2 fingerprints carry the old one (sender, date, body): the same
    Message-ID with it is still the same mail; without a Message-ID it never matches."""
    with_id = mail(subject="Vanha", message_id="<vanha@example.fi>")
    without_id = scan("Vanha skannaus", b"%PDF-1.4 a")
    assert deliver(app, with_id) == "new:1"
    assert deliver(app, without_id) == "new:2"
    with Session(app.engine) as session:  # make them old rows
        for message in session.exec(select(Message).where(Message.direction == "in")):
            parsed, _ = parse_message(app.raw_store.read(message.raw_path or ""))
            message.fingerprint = threader.legacy_fingerprint(parsed)
        session.commit()
    assert deliver(app, with_id) == "duplicate"
    assert len(events(app, 1, "duplicate_received")) == 1
    assert deliver(app, scan("Toinen otsikko", b"%PDF-1.4 b")) == "new:3"  # the old rule's silent drop


def test_readme_quick_start_files_both_messages(daemon) -> None:  # type: ignore[no-untyped-def]
    """The README's own example: smtplib sets no Message-ID and no Date."""
    running = daemon()
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "matti@example.fi", "jasenpalvelu@liitto.fi", "Osoitteenmuutos"
    m.set_content("Hei, osoitteeni on muuttunut.")
    with smtplib.SMTP("127.0.0.1", running.port) as client:
        client.send_message(m)
    m.replace_header("Subject", "Re: [JP#1] Osoitteenmuutos")
    with smtplib.SMTP("127.0.0.1", running.port) as client:
        client.send_message(m)

    def listed() -> list[dict] | None:
        result = run_maild("--config", str(running.config), "tickets", "list", "--json")
        rows = json.loads(result.stdout) if result.returncode == 0 else []
        return rows if rows and rows[0]["message_count"] >= 4 else None  # two in, ack and notification out

    [ticket] = wait_for(listed)
    assert ticket["tag"] == "[JP#1]"
    detail = json.loads(run_maild("--config", str(running.config), "tickets", "show", "1", "--json").stdout)
    assert [m["subject"] for m in detail["messages"] if m["direction"] == "in"] == [
        "Osoitteenmuutos", "Re: [JP#1] Osoitteenmuutos"]


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot.start()
    yield server
    server.stop()


def test_the_same_mail_by_imap_and_smtp_without_message_id_is_one_ticket(
    dovecot: Dovecot, daemon, sqlite_url: str  # type: ignore[no-untyped-def]
) -> None:
    box = dovecot.add_user()
    raw = scan("Kahta reittiä", b"%PDF-1.4 sama")
    running = daemon(extra=dovecot.imap_toml(box))
    send_smtp(running.port, raw)
    dovecot.append(box, raw.replace(b"\r\n", b"\n"))  # what another client or an MTA may do to line ends
    wait_for(lambda: processed(sqlite_url, 2))
    result = run_maild("--config", str(running.config), "tickets", "show", "1", "--json")
    detail = json.loads(result.stdout)
    assert [m["subject"] for m in detail["messages"] if m["direction"] == "in"] == ["Kahta reittiä"]
    [copy] = [e for e in detail["events"] if e["kind"] == "duplicate_received"]
    assert copy["data"]["source"] in ("imap", "smtp") and copy["data"]["received_at"]
    assert run_maild("--config", str(running.config), "tickets", "show", "2").returncode == 1
