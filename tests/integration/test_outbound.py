"""The durable outbox and its sender, delivering to a real SMTP server (aiosmtpd sink)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import mailbox
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from maild.app import App
from maild.config import load_settings
from maild.core.tokens import read_bounce_token
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.outbound import outbox
from maild.outbound.compose import Outgoing, new_message_id
from maild.outbound.sender import Sender
from maild.outbound.transport import MaildirTransport, SmtpTransport
from maild.store import db
from maild.store.tables import Event, Outbox, Ticket, utcnow
from tests.integration.smtp_sink import PASSWORD, USER, smtp_sink  # noqa: F401  (fixture)
from tests.mailgen import mail


@pytest.fixture
def app(make_instance, db_url: str) -> App:
    instance = App(load_settings(str(make_instance(db_url))))
    db.upgrade(instance.settings.database_url)
    return instance


def ticket_with_mail(app: App, count: int = 1, to: tuple[str, ...] = ("matti@example.fi",), subject: str = "Asia") -> int:
    spool_id = spool_sync(app.engine, app.raw_store, mail(subject=subject), Envelope("smtp", None, ("jasenpalvelu@liitto.fi",)))
    number = int(app.pipeline.process(spool_id).split(":")[1])
    with Session(app.engine) as session:
        session.execute(sa.delete(Outbox))  # the pipeline's acknowledgement: these tests queue their own
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        for i in range(count):
            out = Outgoing(
                from_name="Jäsenpalvelu", from_addr="jasenpalvelu@liitto.fi", to=to, subject=f"[JP#{number}] Vastaus {i}",
                text=f"Viesti {i}", message_id=new_message_id("liitto.fi"), auto="auto-replied",
            )
            outbox.enqueue(session, ticket, "ack", out, app.pipeline.mailer.secret, "liitto.fi")
        session.commit()
        return ticket.id or 0


def drain(sender: Sender, seconds: float = 3.0) -> None:
    async def go() -> None:
        stopping = asyncio.Event()
        task = asyncio.create_task(sender.run(stopping))
        await asyncio.sleep(seconds)
        stopping.set()
        await task

    asyncio.run(go())


def states(app: App) -> list[tuple[str, str]]:
    with Session(app.engine) as session:
        return [(r.recipient, r.state) for r in session.exec(select(Outbox).order_by(Outbox.id))]


def test_delivers_over_starttls_with_auth_and_verp(app: App, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    sink = smtp_sink(auth=True)
    ticket_with_mail(app)
    drain(Sender(app.engine, lambda: SmtpTransport(sink.url(), True, USER, PASSWORD, ca_file=str(sink.cert))), 1.5)
    assert states(app) == [("matti@example.fi", "sent")]
    (got,) = sink.received
    assert got.rcpt_tos == ["matti@example.fi"]
    local, _, domain = got.mail_from.partition("@")
    with Session(app.engine) as session:
        token = session.exec(select(Outbox.bounce_token)).one()
    assert domain == "liitto.fi" and read_bounce_token(app.pipeline.mailer.secret, local.split("+", 1)[1]) == token
    sent = email.message_from_bytes(got.data, policy=email.policy.default)
    assert sent["Auto-Submitted"] == "auto-replied" and sent["X-Auto-Response-Suppress"] == "All"
    assert sent["Subject"] == "[JP#1] Vastaus 0" and str(sent["From"]) == "Jäsenpalvelu <jasenpalvelu@liitto.fi>"


def test_wrong_password_keeps_mail_queued(app: App, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    sink = smtp_sink(auth=True)
    ticket_with_mail(app)
    drain(Sender(app.engine, lambda: SmtpTransport(sink.url(), True, USER, "wrong", ca_file=str(sink.cert), timeout=2)), 3.0)
    with Session(app.engine) as session:
        row = session.exec(select(Outbox)).one()
        assert row.state in ("queued", "failed") and row.last_error
    assert sink.received == []


def test_5xx_for_one_recipient_is_recorded_and_the_rest_go(app: App, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    sink = smtp_sink()
    sink.handler.replies["gone@example.fi"] = "550 5.1.1 No such user"
    ticket_id = ticket_with_mail(app, to=("gone@example.fi", "matti@example.fi"))
    drain(Sender(app.engine, lambda: SmtpTransport(sink.url(), False, "", ""), connections=2), 1.5)
    assert states(app) == [("gone@example.fi", "failed"), ("matti@example.fi", "sent")]
    with Session(app.engine) as session:
        event = session.exec(select(Event).where(Event.ticket_id == ticket_id, Event.kind == "delivery_failed")).one()
        assert event.data["recipient"] == "gone@example.fi" and "550" in event.data["error"]


def test_4xx_is_retried_later_with_backoff(app: App, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    sink = smtp_sink()
    sink.handler.replies["busy@example.fi"] = "451 4.7.1 Try again later"
    ticket_with_mail(app, to=("busy@example.fi",))
    drain(Sender(app.engine, lambda: SmtpTransport(sink.url(), False, "", ""), connections=2), 1.0)
    with Session(app.engine) as session:
        row = session.exec(select(Outbox)).one()
        assert (row.state, row.attempts) == ("queued", 1) and "451" in (row.last_error or "")
        assert row.next_attempt_at > utcnow() + timedelta(seconds=30)


def test_smarthost_down_then_up_sends_everything_in_order(app: App, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import free_port

    port = free_port()
    ticket_with_mail(app, count=3)
    sender = Sender(app.engine, lambda: SmtpTransport(f"smtp://127.0.0.1:{port}", False, "", ""))
    drain(sender, 1.0)  # nobody listening
    with Session(app.engine) as session:
        rows = session.exec(select(Outbox).order_by(Outbox.id)).all()
        assert [r.state for r in rows] == ["queued"] * 3
        assert rows[0].attempts == 1 and rows[1].attempts == 0  # later mail of the ticket waits its turn
        for row in rows:
            row.next_attempt_at = utcnow()  # as if the backoff had passed
        session.commit()
    sink = smtp_sink(port=port)
    drain(Sender(app.engine, lambda: SmtpTransport(sink.url(), False, "", ""), connections=2), 1.5)
    subjects = [email.message_from_bytes(r.data)["Subject"] for r in sink.received]
    assert subjects == ["[JP#1] Vastaus 0", "[JP#1] Vastaus 1", "[JP#1] Vastaus 2"]


def test_mail_left_sending_by_a_crash_is_sent_again(app: App, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    sink = smtp_sink()
    ticket_with_mail(app)
    with Session(app.engine) as session:
        row = session.exec(select(Outbox)).one()
        row.state, row.claimed_at = "sending", utcnow() - timedelta(minutes=10)
        session.commit()
    drain(Sender(app.engine, lambda: SmtpTransport(sink.url(), False, "", ""), stale_after=timedelta(minutes=2)), 1.5)
    assert states(app) == [("matti@example.fi", "sent")] and len(sink.received) == 1


def test_maildir_transport_can_be_read_back(app: App, tmp_path: Path) -> None:
    ticket_with_mail(app, count=2)
    drain(Sender(app.engine, lambda: MaildirTransport(tmp_path / "outbox"), connections=1), 1.0)
    box = mailbox.Maildir(str(tmp_path / "outbox"))
    subjects = sorted(message["Subject"] for message in box)
    assert subjects == ["[JP#1] Vastaus 0", "[JP#1] Vastaus 1"]
    assert all(message["Delivered-To"] == "matti@example.fi" for message in box)


def test_smtps_with_implicit_tls_and_auth(app: App, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    sink = smtp_sink(auth=True, implicit_tls=True)
    ticket_with_mail(app)
    drain(Sender(app.engine, lambda: SmtpTransport(sink.url("smtps"), True, USER, PASSWORD, ca_file=str(sink.cert))), 1.5)
    assert states(app) == [("matti@example.fi", "sent")] and len(sink.received) == 1


def test_outbox_list_shows_queued_and_failed_mail(app: App, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    import json

    from tests.conftest import run_maild

    sink = smtp_sink()
    sink.handler.replies["gone@example.fi"] = "550 5.1.1 No such user"
    ticket_with_mail(app, to=("gone@example.fi",), count=2)
    drain(Sender(app.engine, lambda: SmtpTransport(sink.url(), False, "", ""), connections=1), 1.5)
    config = str(Path(app.settings.source))
    listed = run_maild("outbox", "list", "--json", "--config", config)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["ticket"], r["state"], r["recipient"]) for r in rows] == [("[JP#1]", "failed", "gone@example.fi")] * 2
    assert "550" in rows[0]["last_error"] and rows[0]["subject"] == "[JP#1] Vastaus 0"
    everything = json.loads(run_maild("outbox", "list", "--all", "--json", "--config", config).stdout)
    assert len(everything) == 2


def test_a_sender_claims_a_batch_but_never_a_tickets_later_mail(app: App, tmp_path: Path) -> None:
    """Rows of many tickets go in one claim (one transaction, more than the connections); a
    ticket's next mail waits while an earlier one of it is unsent, even across instances."""
    ticket_with_mail(app, count=6, to=("a@example.fi", "b@example.fi"))  # 12 rows, one ticket's mail in pairs
    first = Sender(app.engine, lambda: MaildirTransport(tmp_path / "box"), connections=2)
    other = Sender(app.engine, lambda: MaildirTransport(tmp_path / "box"), connections=2)
    claimed = first.claim()
    assert len(claimed) == 2
    assert [row[0] for row in other.claim()] == []  # the ticket's next mail waits for these two
    with Session(app.engine) as session:
        assert sorted(r.state for r in session.exec(select(Outbox))) == ["queued"] * 10 + ["sending"] * 2
        session.execute(sa.delete(Outbox))
        session.commit()
    for n in range(5):
        ticket_with_mail(app, to=(f"m{n}@example.fi",), subject=f"Asia {n}")  # each clears the outbox first
    with Session(app.engine) as session:
        tickets = list(session.exec(select(Ticket.id)))
        for ticket_id in tickets:
            ticket = session.get(Ticket, ticket_id)
            for i in range(2):
                out = Outgoing(from_name="J", from_addr="jasenpalvelu@liitto.fi", to=(f"t{ticket_id}@example.fi",),
                               subject=f"Vastaus {i}", text="x", message_id=new_message_id("liitto.fi"))
                outbox.enqueue(session, ticket, "ack", out, app.pipeline.mailer.secret, "liitto.fi")
        session.commit()
    claimed = first.claim()
    assert len(claimed) == len(tickets) > 2  # the first mail of every ticket, in one claim
    assert len({recipient for _, _, recipient, _ in claimed}) == len(tickets)


def test_a_claimed_mail_not_begun_in_time_goes_back_unsent(app: App, tmp_path: Path) -> None:
    """A row whose delivery has not begun within a quarter of ``stale_after`` of its claim is
    given back, never sent late: another instance may by then take it as abandoned."""
    ticket_with_mail(app, count=3)
    drain(Sender(app.engine, lambda: MaildirTransport(tmp_path / "box"), stale_after=timedelta(0)), 0.3)
    assert not list((tmp_path / "box" / "new").iterdir())
    with Session(app.engine) as session:
        assert [(r.state, r.attempts) for r in session.exec(select(Outbox))] == [("queued", 0)] * 3


def test_a_release_leaves_a_row_claimed_again_by_another_instance(app: App, tmp_path: Path) -> None:
    ticket_with_mail(app)
    first = Sender(app.engine, lambda: MaildirTransport(tmp_path / "box"), stale_after=timedelta(minutes=2))
    other = Sender(app.engine, lambda: MaildirTransport(tmp_path / "box"), stale_after=timedelta(minutes=2))
    claimed_at = utcnow()
    (row,) = first.claim(claimed_at)
    later = claimed_at + timedelta(minutes=3)
    assert [r[0] for r in other.claim(later)] == [row[0]]  # abandoned to the other's eyes: taken again
    first.release([row[0]], claimed_at)
    with Session(app.engine) as session:
        assert [(r.state, r.attempts) for r in session.exec(select(Outbox))] == [("sending", 2)]


def test_the_sender_waits_while_intake_is_busy(app: App, tmp_path: Path) -> None:
    """Under a burst of incoming mail the sender holds back (intake, then filing, go first: the
    database has one writer at a time), and sends as soon as intake is quiet."""
    ticket_with_mail(app)
    busy_until = [0.0]

    async def go() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        loop = asyncio.get_running_loop()
        busy_until[0] = loop.time() + 1.5
        sender = Sender(app.engine, lambda: MaildirTransport(tmp_path / "out"), connections=1)
        sender.hold = lambda: loop.time() < busy_until[0]
        stopping = asyncio.Event()
        task = asyncio.create_task(sender.run(stopping))
        await asyncio.sleep(1.0)
        held = states(app)
        await asyncio.sleep(1.5)
        stopping.set()
        await task
        return held, states(app)

    held, after = asyncio.run(go())
    assert held == [("matti@example.fi", "queued")]
    assert after == [("matti@example.fi", "sent")]


def test_a_steady_trickle_of_mail_does_not_stop_sending(app: App, tmp_path: Path) -> None:
    """Intake that never goes quiet (a message every fifth of a second) holds the sender back
    for two seconds at most at a time."""
    ticket_with_mail(app)
    sender = Sender(app.engine, lambda: MaildirTransport(tmp_path / "out"), connections=1)
    sender.hold = lambda: True
    drain(sender, 3.5)
    assert states(app) == [("matti@example.fi", "sent")]
