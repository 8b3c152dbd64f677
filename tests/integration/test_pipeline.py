"""The intake pipeline end to end on a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlmodel import Session, select

from maild import views
from maild.app import App
from maild.config import load_settings
from maild.ingest import reprocess
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.store import db
from maild.store.tables import Event, Inbound, Message, Quarantine, Ticket
from tests.mailgen import mail, message_id_of


@pytest.fixture
def app(make_instance, db_url: str) -> App:
    instance = App(load_settings(str(make_instance(db_url))))
    db.upgrade(instance.settings.database_url)  # what `maild db upgrade` does
    instance.prepare_database()
    return instance


def deliver(app: App, raw: bytes, recipients: tuple[str, ...] = ("jasenpalvelu@liitto.fi",), sender: str | None = None) -> str:
    inbound_id = spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", sender, recipients))
    return app.pipeline.process(inbound_id)


def show(app: App, number: int) -> dict:
    with Session(app.engine) as session:
        detail = views.ticket_detail(session, "JP", number)
    assert detail is not None
    return detail


def incoming(detail: dict) -> list[dict]:
    """The ticket's received messages (its acknowledgements and other mail left out)."""
    return [m for m in detail["messages"] if m["direction"] == "in"]


def test_new_ticket_and_tagged_reply_make_one_ticket(app: App) -> None:
    assert deliver(app, mail(subject="Osoitteenmuutos")) == "new:1"
    assert deliver(app, mail(subject="VS: Osoitteenmuutos [JP#1]", body="Lisätieto")) == "follow_up:1"
    detail = show(app, 1)
    assert detail["tag"] == "[JP#1]"
    assert detail["subject"] == "Osoitteenmuutos"
    assert [m["kind"] for m in detail["messages"]] == ["member", "ack", "notification", "member", "notification"]
    assert incoming(detail)[1]["text"] == "Lisätieto"
    assert detail["requester"] == "matti@example.fi"


def test_reply_threads_by_references_without_tag(app: App) -> None:
    first = mail(subject="Kysymys")
    deliver(app, first)
    reply = mail(subject="Re: Kysymys", references=f"<other@x> {message_id_of(first)}")
    assert deliver(app, reply) == "follow_up:1"


def test_same_message_twice_is_stored_once(app: App) -> None:
    raw = mail(subject="Sama viesti")
    assert deliver(app, raw) == "new:1"
    assert deliver(app, raw, recipients=("laskutus@liitto.fi",)) == "duplicate"
    with Session(app.engine) as session:
        assert len(session.exec(select(Message).where(Message.direction == "in")).all()) == 1
        assert len(session.exec(select(Ticket)).all()) == 1


def test_reused_message_id_with_other_content_is_kept_and_recorded(app: App) -> None:
    deliver(app, mail(subject="Eka", body="yksi", message_id="<same@x>"))
    assert deliver(app, mail(subject="Toka", body="kaksi", message_id="<same@x>")) == "new:2"
    kinds = [e["kind"] for e in show(app, 2)["events"]]
    assert "message_id_collision" in kinds


def test_rules_route_and_assign_round_robin(app: App) -> None:
    deliver(app, mail(subject="Laskuni on väärin"))
    deliver(app, mail(subject="Toinen lasku"))
    deliver(app, mail(subject="Eroilmoitus"))
    one, two, three = show(app, 1), show(app, 2), show(app, 3)
    assert (one["queue"], one["assignee"]) == ("laskutus", "lasse@liitto.fi")
    assert (two["queue"], two["assignee"]) == ("laskutus", "liisa@liitto.fi")
    assert (three["queue"], three["priority"], three["category"]) == ("jasenasiat", "high", "eroaminen")
    created = next(e for e in three["events"] if e["kind"] == "created")
    assert created["data"]["rules"][0]["name"] == "Eroamiset"


def test_drop_rule_keeps_message_in_quarantine(app: App) -> None:
    assert deliver(app, mail(subject="Cheap viagra")) == "quarantined:dropped"
    with Session(app.engine) as session:
        row = session.exec(select(Quarantine)).one()
        assert row.kind == "dropped" and "Roskaposti" in row.reason
        assert session.exec(select(Ticket)).all() == []


def test_third_party_by_tag_changes_nothing(app: App) -> None:
    deliver(app, mail(subject="Asia"))
    with Session(app.engine) as session:
        ticket = session.exec(select(Ticket)).one()
        ticket.status = "pending"
        session.commit()
    assert deliver(app, mail(subject="Re: Asia [JP#1]", sender="stranger@example.com")) == "follow_up:1"
    detail = show(app, 1)
    assert incoming(detail)[1]["kind"] == "third_party"
    assert detail["status"] == "pending"
    assert detail["cc"] == []


def test_member_reply_reopens_and_adds_no_cc(app: App) -> None:
    deliver(app, mail(subject="Asia"))
    with Session(app.engine) as session:
        session.exec(select(Ticket)).one().status = "resolved"
        session.commit()
    deliver(app, mail(subject="Re: [JP#1] Asia", cc="puoliso@example.fi"))
    detail = show(app, 1)
    assert detail["status"] == "open"
    assert detail["cc"] == []  # docs/mail.md#recipients: only staff add CCs after the first message (#cc)


def test_auto_reply_follow_up_changes_nothing(app: App) -> None:
    deliver(app, mail(subject="Asia"))
    with Session(app.engine) as session:
        session.exec(select(Ticket)).one().status = "pending"
        session.commit()
    ooo = mail(subject="Automaattinen vastaus: [JP#1] Asia", headers={"Auto-Submitted": "auto-replied"})
    assert deliver(app, ooo) == "follow_up:1"
    detail = show(app, 1)
    assert incoming(detail)[1]["kind"] == "auto_reply"
    assert detail["status"] == "pending"


def test_mail_about_closed_ticket_opens_linked_ticket(app: App) -> None:
    deliver(app, mail(subject="Asia"))
    with Session(app.engine) as session:
        session.exec(select(Ticket)).one().status = "closed"
        session.commit()
    assert deliver(app, mail(subject="Re: [JP#1] Asia")) == "new:2"
    assert show(app, 2)["linked_to"] == 1


def test_unparseable_is_quarantined_and_replayable(app: App) -> None:
    assert deliver(app, b"\r\n\r\n") == "quarantined:unparseable"
    with Session(app.engine) as session:
        row = session.exec(select(Quarantine)).one()
        assert row.kind == "unparseable" and row.reason == "empty message"
        qid = row.id
    with Session(app.engine) as session:
        inbound = reprocess(session, qid)
        session.commit()
        assert inbound is not None
        inbound_id = inbound.id
    assert app.pipeline.process(inbound_id) == "quarantined:unparseable"


def test_processing_error_is_quarantined_not_lost(app: App) -> None:
    inbound_id = spool_sync(app.engine, app.raw_store, mail(), Envelope("smtp", None, ()))
    with Session(app.engine) as session:
        session.get(Inbound, inbound_id).raw_path = "raw/missing.eml"
        session.commit()
    assert app.pipeline.process(inbound_id) == "quarantined:error"
    with Session(app.engine) as session:
        assert "FileNotFoundError" in session.exec(select(Quarantine)).one().reason


def test_ticket_numbers_are_sequential_under_concurrency(app: App) -> None:
    ids = [spool_sync(app.engine, app.raw_store, mail(subject=f"Asia {i}"), Envelope("smtp", None, ())) for i in range(40)]
    outcomes: list[str] = []
    lock = threading.Lock()

    def work(chunk: list[int]) -> None:
        for inbound_id in chunk:
            result = app.pipeline.process(inbound_id)
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=work, args=(ids[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(int(o.split(":")[1]) for o in outcomes) == list(range(1, 41))
    with Session(app.engine) as session:
        numbers = sorted(t.number for t in session.exec(select(Ticket)))
        assert numbers == list(range(1, 41))
        assert len(session.exec(select(Event).where(Event.kind == "created")).all()) == 40


def test_25_mb_message_with_attachment_is_stored_whole(app: App) -> None:
    import email.message
    import hashlib

    payload = bytes(range(256)) * (18 * 1024 * 1024 // 256)  # 18 MiB: ~25 MB once base64-encoded
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "matti@example.fi", "jasenpalvelu@liitto.fi", "Liitteenä palkkatodistus"
    msg["Message-ID"] = "<big@example.fi>"
    msg.set_content("Liitteenä palkkatodistukseni.")
    msg.add_attachment(payload, maintype="application", subtype="pdf", filename="palkkatodistus.pdf")
    raw = bytes(msg)
    assert len(raw) > 24_000_000
    assert deliver(app, raw) == "new:1"
    with Session(app.engine) as session:
        from maild.store.tables import Attachment

        stored = session.exec(select(Attachment)).one()
        assert (stored.filename, stored.size) == ("palkkatodistus.pdf", len(payload))
        assert stored.sha256 == hashlib.sha256(payload).hexdigest()
    assert (app.raw_store.root / stored.path).read_bytes() == payload
