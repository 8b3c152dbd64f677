"""Erasure (docs/coming.md#reports-and-privacy, Art. 17) on real SQLite and PostgreSQL: afterwards the address (and
name) is in no column of any table (checked here over the whole metadata, independently of
maild's own check) and, byte by byte, in no file under the data directory nor in the SQLite
database and WAL; the tickets' skeletons are kept for reports."""

from __future__ import annotations

import email.policy
import json
import os
import re
import time
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.outbound.transport import maildir_path
from maild.privacy.identity import pseudonym
from maild.privacy.request import erase_address
from maild.store import db
from maild.store.tables import Attachment, Event, Inbound, Message, Outbox, Quarantine, Ticket
from tests.conftest import run_maild
from tests.mailgen import mail

ADDRESS = "matti.meikalainen@example.fi"
NAME = "Matti Meikäläinen"
SECRET_TEXT = "henkilotunnus 010101-123A"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def app(make_instance, db_url: str) -> App:
    instance = App(load_settings(str(make_instance(db_url))))
    db.upgrade(instance.settings.database_url)
    return instance


def deliver(app: App, raw: bytes, process: bool = True) -> str:
    inbound = spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", None, ("jasenpalvelu@liitto.fi",)))
    return app.pipeline.process(inbound) if process else str(inbound)


def with_attachment(raw: bytes, data: bytes, filename: str) -> bytes:
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    return bytes(msg)


def history(app: App, quote_name: bool = False) -> dict[str, Any]:
    """Matti's own ticket (with an attachment), Liisa's ticket with Matti in Cc and a quote of
    him, Matti's answer there, a dropped message of his, and Pekka's unrelated ticket."""
    own = mail(subject="Palkkatodistus", sender=f"{NAME} <{ADDRESS}>",
               body=f"Hei,\n\n{SECRET_TEXT}\n\nTerveisin\n{NAME}")
    own_number = int(deliver(app, with_attachment(own, b"%PDF-1.4 matin palkka 4321 e", "matti-palkka.pdf")).split(":")[1])
    quoted = f"{NAME} <{ADDRESS}> kirjoitti:" if quote_name else f"<{ADDRESS}> kirjoitti:"
    liisa = mail(subject="Yhteinen asia", sender="Liisa Laine <liisa@example.fi>", cc=f"{NAME} <{ADDRESS}>",
                 body=f"Hei,\n\nkysymys koskee meita molempia.\n\n{quoted}\n> vanha viesti")
    liisa_number = int(deliver(app, liisa).split(":")[1])
    with Session(app.engine) as session:
        first = session.exec(select(Message).join(Ticket).where(Ticket.number == liisa_number)).first()
        assert first is not None
        reply_to = first.message_id
    answer = mail(subject=f"Re: [JP#{liisa_number}] Yhteinen asia", sender=f"{NAME} <{ADDRESS}>",
                  body="MATIN VASTAUS toisen tiketissa", in_reply_to=reply_to)
    deliver(app, answer)
    assert deliver(app, mail(subject="viagra", sender=f"{NAME} <{ADDRESS}>")) == "quarantined:dropped"
    other = int(deliver(app, mail(subject="Jasenmaksu", sender="Pekka Puro <pekka.puro@example.fi>")).split(":")[1])
    return {"own": own_number, "liisa": liisa_number, "other": other}


def all_values(engine: sa.Engine) -> list[tuple[str, Any, Any]]:
    """(table.column, row, value) of every cell of every table: the test's own, independent look."""
    cells = []
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)).mappings():
                for column, value in row.items():
                    cells.append((f"{table.name}.{column}", row, value))
    return cells


def text_of(value: Any) -> str:
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).decode("utf-8", "replace").lower()
    return json.dumps(value, ensure_ascii=False, default=str).lower() if not isinstance(value, str) else value.lower()


def files_with(root: Path, needle: bytes) -> list[Path]:
    pattern = re.compile(re.escape(needle), re.IGNORECASE)
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            if pattern.search(path.read_bytes()):
                found.append(path)
    return found


def skeleton(app: App) -> list[tuple[Any, ...]]:
    with Session(app.engine) as session:
        tickets = session.exec(select(Ticket).order_by(Ticket.number)).all()
        return [(t.number, t.queue, t.status, t.priority, t.category, t.created_at, t.closed_at,
                 len(session.exec(select(Message).where(Message.ticket_id == t.id)).all())) for t in tickets]


def test_erase_leaves_no_trace_and_keeps_the_skeleton(app: App) -> None:
    numbers = history(app)
    before = skeleton(app)
    instance_dir = Path(app.settings.source).parent
    assert files_with(instance_dir, ADDRESS.encode())  # the test would see it
    assert any(ADDRESS in text_of(v) for _, _, v in all_values(app.engine))
    with Session(app.engine) as session:  # one answer already sent to Matti, one not
        ack = session.exec(select(Outbox).where(Outbox.recipient == ADDRESS)).one()
        ack.state, ack.sent_at = "sent", NOW
        session.add(Outbox(ticket_id=ack.ticket_id, kind="reply", return_path="bounces+x@liitto.fi", recipient=ADDRESS,
                           raw=f"To: {ADDRESS}\r\n\r\n{SECRET_TEXT}".encode()))
        session.commit()
        sent_id = ack.id

    outcome = erase_address(app.engine, app.settings.data_dir, b"test-secret", ADDRESS, NOW)

    assert outcome.address_found and outcome.remaining == [] and outcome.compact_problem is None
    assert skeleton(app) == before  # numbers, queues, statuses, categories, times, message counts
    alias = pseudonym(b"test-secret", ADDRESS)
    cells = all_values(app.engine)
    assert [(where, value) for where, _, value in cells if ADDRESS in text_of(value)] == []
    assert [(where, value) for where, _, value in cells if "henkilotunnus" in text_of(value)] == []
    assert [(where, value) for where, _, value in cells if NAME.lower() in text_of(value)] == []
    assert files_with(app.settings.data_dir, ADDRESS.encode()) == []
    assert files_with(app.settings.data_dir, b"matin palkka") == []
    assert files_with(app.settings.data_dir, SECRET_TEXT.encode()) == []
    if app.engine.dialect.name == "sqlite":  # the database file, its WAL and free pages
        database = db.sqlite_file(app.settings.database_url)
        assert database is not None
        for needle in (ADDRESS.encode(), SECRET_TEXT.encode(), NAME.encode(), b"MATIN VASTAUS"):
            assert files_with(database.parent, needle) == [], needle
    with Session(app.engine) as session:
        own = session.exec(select(Ticket).where(Ticket.number == numbers["own"])).one()
        assert own.requester == alias and own.subject == ""
        liisa = session.exec(select(Ticket).where(Ticket.number == numbers["liisa"])).one()
        assert liisa.cc == [alias] and liisa.requester == "liisa@example.fi"
        messages = session.exec(select(Message).where(Message.ticket_id == liisa.id).order_by(Message.id)).all()
        first, matti = messages[0], next(m for m in messages if m.from_addr == alias)
        assert "kysymys koskee meita molempia" in first.text and f"<{alias}> kirjoitti" in first.text
        assert first.raw_path and alias.encode() in app.raw_store.read(first.raw_path)  # Liisa's raw mail, rewritten
        assert matti.text == "" and matti.raw_path is None and matti.from_name == ""
        assert session.exec(select(Attachment)).all()[0].path == ""
        assert session.get(Outbox, sent_id) is not None and session.get(Outbox, sent_id).raw == b""  # type: ignore[union-attr]
        assert session.exec(select(Outbox).where(Outbox.recipient == alias, Outbox.state != "sent")).all() == []
        erased = session.exec(select(Event).where(Event.kind == "erased")).all()
        assert {e.ticket_id for e in erased} == {own.id, liisa.id}
        assert all(e.data == {"reason": "request"} for e in erased)
        pekka = session.exec(select(Ticket).where(Ticket.number == numbers["other"])).one()
        assert pekka.requester == "pekka.puro@example.fi" and pekka.subject == "Jasenmaksu"
        assert all(q.raw_path is None for q in session.exec(select(Quarantine)).all())

    again = erase_address(app.engine, app.settings.data_dir, b"test-secret", ADDRESS, NOW)
    assert not again.address_found  # nothing left: a clear "nothing stored", not an error


def test_everywhere_blanks_the_name_in_other_peoples_mail(app: App) -> None:
    numbers = history(app, quote_name=True)
    outcome = erase_address(app.engine, app.settings.data_dir, b"k", ADDRESS, NOW)
    assert outcome.remaining == []
    assert outcome.names_in_others_mail  # the quote in Liisa's text still names him
    # an everywhere erasure of the address, run on a fresh history
    numbers = history(app, quote_name=True)
    outcome = erase_address(app.engine, app.settings.data_dir, b"k", ADDRESS, NOW, everywhere=True)
    assert outcome.remaining == [] and outcome.names_in_others_mail == [] and outcome.erased.others_blanked >= 1
    cells = all_values(app.engine)
    assert [(w, v) for w, _, v in cells if NAME.lower() in text_of(v)] == []
    with Session(app.engine) as session:
        liisa = session.exec(select(Ticket).where(Ticket.number == numbers["liisa"])).one()
        first = session.exec(select(Message).where(Message.ticket_id == liisa.id).order_by(Message.id)).first()
        assert first is not None and "[erased]" in first.text and first.raw_path is None
    assert files_with(app.settings.data_dir, NAME.encode()) == []


def test_new_mail_during_an_erasure_is_filed(app: App) -> None:
    history(app)
    waiting = int(deliver(app, mail(subject="Uusi asia", sender=f"{NAME} <{ADDRESS}>"), process=False))
    outcome = erase_address(app.engine, app.settings.data_dir, b"k", ADDRESS, NOW)
    assert outcome.remaining == [] and outcome.new_mail == 1
    result = app.pipeline.process(waiting)
    assert result.startswith("new:")
    with Session(app.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == int(result.split(":")[1]))).one()
        assert ticket.requester == ADDRESS and ticket.subject == "Uusi asia"
        assert session.get(Inbound, waiting).raw_path  # type: ignore[union-attr]


def test_cli_erase_needs_yes_and_says_when_nothing_is_stored(app: App, tmp_path: Path) -> None:
    history(app)
    config = app.settings.source
    refused = run_maild("--config", config, "members", "erase", ADDRESS)
    assert refused.returncode == 1 and b"--yes" in refused.stderr
    assert files_with(app.settings.data_dir, ADDRESS.encode())
    done = run_maild("--config", config, "members", "erase", ADDRESS, "--yes")
    assert done.returncode == 0, done.stderr
    assert b"nothing of it remains" in done.stdout
    nothing = run_maild("--config", config, "members", "erase", "nobody@example.fi", "--yes")
    assert nothing.returncode == 0 and b"no data stored" in nothing.stdout


def test_erase_while_the_daemon_files_new_mail(daemon) -> None:  # type: ignore[no-untyped-def]
    """A real `maild run` files Matti's new mail while `maild members erase` runs: every message
    is filed, and each is either erased whole (it was filed before) or kept whole (after)."""
    import smtplib
    import threading
    import time

    running = daemon()
    instance = App(load_settings(str(running.config)))

    def send(raw: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", running.port, timeout=60) as client:
            client.sendmail(ADDRESS, ["jasenpalvelu@liitto.fi"], raw)

    def filed() -> int:
        with Session(instance.engine) as session:
            waiting = session.exec(select(Inbound).where(Inbound.state == "pending")).all()
            members = session.exec(select(Message).where(Message.direction == "in")).all()
            return -1 if waiting else len(members)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 120
        while filed() != count:
            assert time.monotonic() < deadline, f"only {filed()} filed"
            time.sleep(0.1)

    for n in range(3):
        send(mail(subject=f"Vanha {n}", sender=f"{NAME} <{ADDRESS}>", body=f"VANHA {n} {SECRET_TEXT}"))
    wait_for(3)
    sender = threading.Thread(target=lambda: [
        (send(mail(subject=f"Uusi {n}", sender=f"{NAME} <{ADDRESS}>", body=f"UUSI {n}")), time.sleep(0.05))
        for n in range(20)])
    sender.start()
    time.sleep(0.3)
    erased = run_maild("--config", str(running.config), "members", "erase", ADDRESS, "--yes", "--json")
    sender.join()
    wait_for(23)
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout)["remaining"] == []
    alias = pseudonym(secret_key_of(instance), ADDRESS)
    with Session(instance.engine) as session:
        messages = session.exec(select(Message).where(Message.direction == "in")).all()
        assert {m.from_addr for m in messages} <= {ADDRESS, alias} and len(messages) == 23
        for message in messages:
            assert (message.from_addr, message.text == "") in ((alias, True), (ADDRESS, False)), message
        kept = sorted(int(m.text.split()[1]) for m in messages if m.from_addr == ADDRESS)
        assert kept == list(range(20 - len(kept), 20)), kept  # the later ones, in order of arrival
        for number in (1, 2, 3):
            assert session.exec(select(Ticket).where(Ticket.number == number)).one().requester == alias


def secret_key_of(instance: App) -> bytes:
    from maild.ingest import secret_key

    return secret_key(instance.settings.instance.secret_key, instance.settings.data_dir)


def test_erase_leaves_no_sent_copy_in_the_outbox_maildir(app: App) -> None:
    """The maildir transport (the default, under data_dir) keeps what maild sent: the member's
    acknowledgement names them. Sent minutes before the request, it is not mail coming in."""
    import asyncio

    deliver(app, mail(subject="Irtisanominen raskauden vuoksi", sender=f"{NAME} <{ADDRESS}>", body=SECRET_TEXT))
    deliver(app, mail(subject="Jasenmaksu", sender="Pekka Puro <pekka.puro@example.fi>"))

    async def send() -> None:
        stopping = asyncio.Event()
        task = asyncio.create_task(app.sender().run(stopping))
        await asyncio.sleep(1.0)
        stopping.set()
        await task

    asyncio.run(send())
    sent = files_with(app.settings.data_dir / "outbox", ADDRESS.encode())
    assert sent  # the acknowledgement and the staff notification, as the maildir transport keeps them
    pekka = files_with(app.settings.data_dir / "outbox", b"Jasenmaksu")
    assert pekka

    maildir = maildir_path(app.settings.outbound.transport, Path(app.settings.base_dir))
    outcome = erase_address(app.engine, app.settings.data_dir, b"test-secret", ADDRESS, NOW, maildir=maildir)

    assert outcome.remaining == [] and outcome.new_mail == 0
    assert files_with(app.settings.data_dir, ADDRESS.encode()) == []
    assert files_with(app.settings.data_dir, "Irtisanominen raskauden".encode()) == []
    assert files_with(app.settings.data_dir, b"010101-123A") == []  # the staff notification quoted it
    assert files_with(maildir, b"Jasenmaksu") == pekka  # Pekka's acknowledgement and notifications stay


def test_an_operators_file_under_the_data_dir_is_named_not_deleted(app: App) -> None:
    """Only maild's own files are maild's to delete: a list an operator keeps under data_dir that
    names the member stays, and the erasure exits 1 naming it as remaining (old or new alike)."""
    history(app)
    notes = app.settings.data_dir / "notes"
    notes.mkdir()
    old, new = notes / "old.txt", notes / "new.txt"
    for path in (old, new):
        path.write_bytes(f"soita {ADDRESS}\n".encode())
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    done = run_maild("--config", app.settings.source, "members", "erase", ADDRESS, "--yes")
    assert done.returncode == 1, done.stdout
    assert old.read_bytes() == new.read_bytes() == f"soita {ADDRESS}\n".encode()
    assert str(old).encode() in done.stdout + done.stderr
    assert set(files_with(app.settings.data_dir, ADDRESS.encode())) == {old, new}
