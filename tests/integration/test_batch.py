"""Filing in batches: one transaction for many messages. A message that fails is quarantined
alone (the batch is filed again, each message in a savepoint of its own) and the rest are
filed; a database error leaves the whole batch pending, and each message of it is then tried
alone (real SQLite and PostgreSQL)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.store import db
from maild.store.tables import Event, Inbound, Outbox, Quarantine, Ticket
from tests.mailgen import mail

ENVELOPE = Envelope("smtp", None, ("jasenpalvelu@liitto.fi",))


@pytest.fixture
def app(make_instance, db_url: str) -> App:
    instance = App(load_settings(str(make_instance(db_url))))
    db.upgrade(instance.settings.database_url)
    return instance


def with_attachment(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = f"jasen{i}@example.fi", "jasenpalvelu@liitto.fi", f"Liite {i}"
    msg["Message-ID"] = f"<liite-{i}@example.fi>"
    msg.set_content("Liitteenä todistus.")
    msg.add_attachment(b"%PDF-1.4 todistus", maintype="application", subtype="pdf", filename="todistus.pdf")
    return msg.as_bytes()


def spool(app: App, raws: list[bytes]) -> list[int]:
    return [spool_sync(app.engine, app.raw_store, raw, ENVELOPE) for raw in raws]


def test_a_failing_message_is_quarantined_alone_and_the_batch_commits(app: App) -> None:
    raws = [mail(subject=f"Asia {i}", message_id=f"<asia-{i}@example.fi>", sender=f"jasen{i}@example.fi") for i in range(5)]
    raws[2] = with_attachment(2)
    ids = spool(app, raws)
    (app.raw_store.root / "attachments").write_bytes(b"not a directory")  # the attachment cannot be written
    outcomes = app.pipeline.process_many(ids)
    assert [outcomes[i] for i in ids] == ["new:1", "new:2", "quarantined:error", "new:3", "new:4"]
    with Session(app.engine) as session:
        # the failed message's savepoint gave its ticket number back: numbers stay sequential
        assert sorted(t.number for t in session.exec(select(Ticket))) == [1, 2, 3, 4]
        assert [q.inbound_id for q in session.exec(select(Quarantine))] == [ids[2]]
        assert {i.id: i.state for i in session.exec(select(Inbound))} == {
            i: ("quarantined" if i == ids[2] else "done") for i in ids}
        assert len(session.exec(select(Event).where(Event.kind == "created")).all()) == 4


def test_a_database_error_leaves_the_batch_pending_then_each_goes_alone(make_instance, sqlite_url: str) -> None:
    """SQLite only: a table gone mid-batch is an OperationalError there, as an unreachable
    database is; PostgreSQL reports a missing table as a ProgrammingError instead."""
    app = App(load_settings(str(make_instance(sqlite_url))))
    db.upgrade(app.settings.database_url)
    ids = spool(app, [mail(subject=f"Asia {i}", message_id=f"<db-{i}@example.fi>") for i in range(3)])
    Event.__table__.drop(app.engine)  # type: ignore[attr-defined]  # the database fails mid-batch
    with pytest.raises(OperationalError):
        app.pipeline.process_many(ids)
    with Session(app.engine) as session:
        rows = session.exec(select(Inbound).order_by(Inbound.id)).all()
        assert [(r.state, r.attempts) for r in rows] == [("pending", 1)] * 3  # counted, nothing filed
        assert session.exec(select(Ticket)).all() == []
    Event.__table__.create(app.engine)  # type: ignore[attr-defined]  # the database is back
    claimed = app.pipeline._claim(ids)[0]
    assert [r.id for r in claimed] == ids[:1]  # tried before: alone, so only a crashing one is counted again
    outcomes = app.pipeline.process_many(ids)
    assert [outcomes[i] for i in ids] == ["new:1", "new:2", "new:3"]
    with Session(app.engine) as session:
        assert [r.attempts for r in session.exec(select(Inbound).order_by(Inbound.id))] == [3, 2, 2]


def test_messages_of_one_batch_see_each_other(app: App) -> None:
    """A reply filed in the same transaction as the request it answers finds its ticket;
    a copy of a message in the same batch is a duplicate."""
    first = mail(subject="Jäsenmaksu", message_id="<eka@example.fi>")
    reply = mail(subject="VS: [JP#1] Jäsenmaksu", message_id="<toka@example.fi>", in_reply_to="<eka@example.fi>")
    ids = spool(app, [first, reply, first])
    outcomes = app.pipeline.process_many(ids)
    assert [outcomes[i] for i in ids] == ["new:1", "follow_up:1", "duplicate"]


def test_rows_refused_at_the_end_of_a_batch_quarantine_only_their_message(make_instance, sqlite_url: str) -> None:
    """The mail and events of a batch are written at its end; when the database refuses one
    message's rows there (here a trigger stands in for any constraint), the batch is filed
    again a message at a time and only that message is quarantined, with the database's reason."""
    app = App(load_settings(str(make_instance(sqlite_url))))
    db.upgrade(app.settings.database_url)
    with app.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.actor = 'paha@example.fi' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the database'); END")
    senders = ["eka@example.fi", "paha@example.fi", "toka@example.fi"]
    ids = spool(app, [mail(subject=f"Asia {i}", message_id=f"<loppu-{i}@example.fi>", sender=sender)
                      for i, sender in enumerate(senders)])
    outcomes = app.pipeline.process_many(ids)
    assert [outcomes[i] for i in ids] == ["new:1", "quarantined:error", "new:2"]
    with Session(app.engine) as session:
        (kept,) = session.exec(select(Quarantine)).all()
        assert kept.inbound_id == ids[1] and "refused by the database" in kept.reason
        assert sorted(t.requester for t in session.exec(select(Ticket))) == ["eka@example.fi", "toka@example.fi"]


def test_a_batch_writes_big_mail_as_it_goes(app: App) -> None:
    """A notification carrying a big file is written when it is made, not held with the rest of
    the batch; everything is queued all the same, in order."""
    big = EmailMessage()
    big["From"], big["To"], big["Subject"] = "iso@example.fi", "jasenpalvelu@liitto.fi", "Iso liite"
    big["Message-ID"] = "<iso@example.fi>"
    big.set_content("Liitteenä skannattu lomake.")
    big.add_attachment(bytes(range(256)) * 6000, maintype="application", subtype="pdf", filename="lomake.pdf")
    ids = spool(app, [mail(subject="Ennen", message_id="<ennen@example.fi>", sender="eka@example.fi"),
                      big.as_bytes(), mail(subject="Jälkeen", message_id="<jalkeen@example.fi>", sender="toka@example.fi")])
    outcomes = app.pipeline.process_many(ids)
    assert [outcomes[i] for i in ids] == ["new:1", "new:2", "new:3"]
    with Session(app.engine) as session:
        rows = session.exec(select(Outbox).order_by(Outbox.id)).all()
        assert [(r.ticket_id, r.kind) for r in rows] == sorted((r.ticket_id, r.kind) for r in rows)  # in ticket order
        by_ticket = {t.id: t.number for t in session.exec(select(Ticket))}
        staff_copies = [r for r in rows if by_ticket[r.ticket_id] == 2 and r.kind == "notification"]
        assert len(staff_copies) == 2 and all(len(r.raw) > 1_500_000 for r in staff_copies)  # the file went along
