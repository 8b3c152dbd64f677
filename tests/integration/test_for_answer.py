"""Canned answers in staff replies and tickets from other channels (docs/mail.md#answer,
docs/mail.md#for), with real parts: a running `maild run` with its SMTP listener and an SMTP
sink as the smarthost; and the pipeline on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
from datetime import datetime, timezone
import zipfile
from pathlib import Path

import pytest
from sqlmodel import Session, select

from maild import views
from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.store import db
from maild.store.tables import Outbox, Quarantine
from tests.conftest import REPO, run_maild
from tests.integration.smtp_sink import smtp_sink  # noqa: F401  (fixture)
from tests.integration.test_end_to_end import body, send, wait_mail
from tests.mailgen import mail

FEE_OPENING = "kiitos kysymyksestäsi jäsenmaksusta."  # a line of templates/fi/answers/jasenmaksu.txt
SENTENCE = "Lisäksi: marraskuun maksusi on jo kirjattu, joten sinun ei tarvitse tehdä mitään."


def opener_address(config: Path, staff: str, queue: str = "jasenasiat") -> str:
    listed = json.loads(run_maild("staff", "addresses", "--json", "--config", str(config)).stdout)
    (row,) = [r for r in listed if r["staff"] == staff and r["queue"] == queue]
    return row["address"]


def test_done_when_a_canned_answer_and_a_phone_call(daemon, smtp_sink, db_url: str) -> None:  # type: ignore[no-untyped-def]
    """Issue 14's "done when": a canned answer plus one sentence reaches the member as one mail,
    the answer above the sentence; a phone call logged with #for shows in `members show` next
    to the member's mail ticket."""
    sink = smtp_sink()
    db.upgrade(db_url)  # maild migrates only SQLite by itself
    running = daemon(db_url, extra=f'\n[outbound]\ntransport = "{sink.url()}"\nstarttls = false\n')
    send(running.port, mail(subject="Jäsenmaksu", body="Paljonko jäsenmaksu on?"), "jasenpalvelu@liitto.fi",
         "matti@example.fi")
    notice = wait_mail(sink, lambda m: m["To"] == "maija@liitto.fi")
    token_address = notice["Reply-To"].addresses[0].addr_spec
    quoted = "\n".join("> " + line for line in body(notice).splitlines())
    reply = mail(subject=f"VS: {notice['Subject']}", sender="Maija <maija@liitto.fi>", to=token_address,
                 body=f"#answer jasenmaksu\n\n{SENTENCE}\n\nLähettäjä: Jäsenasiat <jasenpalvelu@liitto.fi>\n"
                      f"Lähetetty: 24.11.2026\n{quoted}")
    send(running.port, reply, token_address, "maija@liitto.fi")
    answer = wait_mail(sink, lambda m: m["To"] == "matti@example.fi" and m["Auto-Submitted"] is None)
    text = body(answer).replace("\r\n", "\n")
    assert text.index("Hei Matti Meikäläinen,") < text.index(FEE_OPENING) < text.index(SENTENCE)
    assert text.rstrip().endswith(SENTENCE) and "--- maild ---" not in text and "#answer" not in text

    # a phone call, logged by Maija from her mail client to her own opening address
    opener = opener_address(running.config, "maija@liitto.fi")
    call = mail(subject="Puhelu: jäsenkortti", sender="Maija <maija@liitto.fi>", to=opener,
                body="#for Matti Meikäläinen <matti@example.fi>\n#channel phone\n\nSoitti, jäsenkortti on kadonnut.")
    send(running.port, call, opener, "maija@liitto.fi")
    ack = wait_mail(sink, lambda m: m["To"] == "matti@example.fi" and (m["Subject"] or "").startswith("[JP#2]"))
    assert ack["Auto-Submitted"] == "auto-replied" and "jäsenkortti on kadonnut" not in body(ack)
    wait_mail(sink, lambda m: m["To"] == "pekka@liitto.fi" and "[JP#2]" in (m["Subject"] or ""))

    shown = json.loads(run_maild("members", "show", "matti@example.fi", "--json", "--config", str(running.config)).stdout)
    tickets = {t["number"]: t for t in shown["tickets"]}
    assert set(tickets) == {1, 2}
    assert (tickets[1]["channel"], tickets[2]["channel"]) == ("email", "phone")
    assert (tickets[2]["assignee"], tickets[2]["status"], tickets[2]["subject"]) == (
        "maija@liitto.fi", "open", "Puhelu: jäsenkortti")
    detail = json.loads(run_maild("tickets", "show", "2", "--json", "--config", str(running.config)).stdout)
    first = detail["messages"][0]
    assert (first["kind"], first["from"], first["text"]) == ("staff", "maija@liitto.fi", "Soitti, jäsenkortti on kadonnut.")
    # Maija wrote it: she gets no notification of her own ticket
    assert not [r for r in sink.received if "maija@liitto.fi" in r.rcpt_tos and b"[JP#2]" in r.data]


# --- the pipeline, on SQLite and PostgreSQL -------------------------------------------------------


@pytest.fixture
def app(make_instance, db_url: str) -> App:  # type: ignore[no-untyped-def]
    instance = App(load_settings(str(make_instance(db_url))))
    db.upgrade(instance.settings.database_url)
    return instance


def deliver(app: App, raw: bytes, to: str = "jasenpalvelu@liitto.fi") -> str:
    return app.pipeline.process(spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", None, (to,))))


def sent(app: App, kind: str | None = None) -> list[email.message.EmailMessage]:
    with Session(app.engine) as session:
        query = select(Outbox).order_by(Outbox.id)
        rows = session.exec(query.where(Outbox.kind == kind) if kind else query).all()
        return [email.message_from_bytes(r.raw, policy=email.policy.default) for r in rows]  # type: ignore[misc]


def detail(app: App, number: int) -> dict:  # type: ignore[type-arg]
    with Session(app.engine) as session:
        found = views.ticket_detail(session, "JP", number)
    assert found is not None
    return found


def staff_token_address(app: App, staff: str = "maija@liitto.fi") -> str:
    note = next(m for m in sent(app, "notification") if m["To"] == staff)
    return note["Reply-To"].addresses[0].addr_spec


def test_an_answer_that_does_not_render_reaches_nobody_and_the_writer_is_told(make_instance, db_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    templates = Path(shutil.copytree(REPO / "templates", tmp_path / "templates"))
    (templates / "fi" / "answers" / "rikki.txt").write_text("Rikki\nHei {{ ticket.jasennumero }}\n")
    config = make_instance(db_url)
    config.write_text(config.read_text().replace(str(REPO / "templates"), str(templates)))
    app = App(load_settings(str(config)))
    db.upgrade(app.settings.database_url)
    assert deliver(app, mail(subject="Kysymys")) == "new:1"
    token = staff_token_address(app)
    assert deliver(app, mail(subject="VS: [JP#1]", body=f"#answer rikki\n#close\n{SENTENCE}", sender="maija@liitto.fi",
                             to=token), to=token) == "follow_up:1"
    assert sent(app, "staff") == [] and sent(app, "resolved") == []
    (told,) = [m for m in sent(app, "notification") if m["Auto-Submitted"] == "auto-replied"]
    assert told["To"] == "maija@liitto.fi" and "#answer rikki: the canned answer cannot be made" in body(told)
    shown = detail(app, 1)
    assert (shown["status"], shown["assignee"]) == ("new", None)
    kept = [m for m in shown["messages"] if m["direction"] == "in"][-1]
    assert kept["kind"] == "note" and SENTENCE in kept["text"]  # the staff message is kept
    assert "commands_rejected" in [e["kind"] for e in shown["events"]]


def test_an_answer_missing_in_the_queues_language_is_a_command_error(app: App) -> None:
    deliver(app, mail(subject="Kysymys"))
    token = staff_token_address(app)
    deliver(app, mail(subject="VS: [JP#1]", body="#answer eiole\nHei", sender="maija@liitto.fi", to=token), to=token)
    assert sent(app, "staff") == []
    (told,) = [m for m in sent(app, "notification") if m["Auto-Submitted"] == "auto-replied"]
    assert "no canned answer 'eiole' in fi" in body(told)


def test_for_to_the_plain_queue_address_opens_nothing_and_the_writer_is_told(app: App) -> None:
    """Token proof: only Maija's own opening address proves her; the mail is kept in the quarantine."""
    raw = mail(subject="Käynti", sender="maija@liitto.fi", body="#for matti@example.fi\n#channel visit\nKävi.")
    assert deliver(app, raw) == "quarantined:dropped"
    assert sent(app, "ack") == [] and sent(app, "notification")[0]["To"] == "maija@liitto.fi"
    (told,) = sent(app)
    assert "not proven to be from maija@liitto.fi" in body(told) and "matti" not in str(told["To"])
    with Session(app.engine) as session:
        (kept,) = session.exec(select(Quarantine)).all()
    assert kept.kind == "dropped" and kept.reason.startswith("#for refused:")
    assert run_maild("tickets", "show", "1", "--config", str(app.settings.source)).returncode != 0


def test_for_an_invalid_address_opens_nothing_and_the_writer_is_told(app: App) -> None:
    opener = opener_address(Path(app.settings.source), "maija@liitto.fi")
    assert deliver(app, mail(subject="Puhelu", sender="maija@liitto.fi", to=opener, body="#for matti@\nSoitti."),
                   to=opener) == "quarantined:dropped"
    (told,) = sent(app)
    assert told["To"] == "maija@liitto.fi" and "'matti@' is not one email address" in body(told)


def test_for_from_someone_who_is_not_staff_is_a_ticket_from_them(app: App) -> None:
    raw = mail(subject="Käynti", sender="huijari@example.com", body="#for matti@example.fi\nAvaa minulle tiketti.")
    assert deliver(app, raw, to="jasenpalvelu+nabcdefghij@liitto.fi") == "new:1"
    shown = detail(app, 1)
    assert (shown["requester"], shown["channel"], shown["assignee"]) == ("huijari@example.com", "email", None)
    assert [m["To"] for m in sent(app, "ack")] == ["huijari@example.com"]  # as any new mail; never to matti


def test_another_staff_members_opening_address_proves_nothing(app: App) -> None:
    pekka = opener_address(Path(app.settings.source), "pekka@liitto.fi")
    raw = mail(subject="Puhelu", sender="maija@liitto.fi", to=pekka, body="#for matti@example.fi\nSoitti.")
    assert deliver(app, raw, to=pekka) == "quarantined:dropped"
    assert sent(app, "ack") == []


def test_tickets_open_from_the_shell(app: App, tmp_path: Path) -> None:
    config = str(app.settings.source)
    notes = tmp_path / "kirje.txt"
    notes.write_text("Kirje saapui: osoitteenmuutos Kotikatu 2.\n", encoding="utf-8")
    opened = run_maild("tickets", "open", "--for", "Matti@Example.fi", "--queue", "laskutus", "--subject", "Kirje",
                       "--body-file", str(notes), "--channel", "letter", "--as", "lasse@liitto.fi", "--config", config)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == b"1\n"
    shown = detail(app, 1)
    assert (shown["queue"], shown["requester"], shown["channel"], shown["assignee"], shown["status"]) == (
        "laskutus", "matti@example.fi", "letter", "lasse@liitto.fi", "open")
    assert [(m["kind"], m["from"], m["text"]) for m in shown["messages"] if m["direction"] == "in"] == [
        ("staff", "lasse@liitto.fi", "Kirje saapui: osoitteenmuutos Kotikatu 2.\n")]
    assert [m["To"] for m in sent(app, "ack")] == ["matti@example.fi"]
    assert [m["To"] for m in sent(app, "notification")] == ["liisa@liitto.fi"]

    as_json = run_maild("tickets", "open", "--for", "maija.m@example.fi", "--queue", "jasenasiat", "--subject", "Käynti",
                        "--json", "--config", config)
    assert as_json.returncode == 0, as_json.stderr
    ticket = json.loads(as_json.stdout)
    assert (ticket["number"], ticket["channel"], ticket["assignee"]) == (2, "phone", None)

    for args, error in ((["--for", "matti"], b"'matti' is not one email address"),
                        (["--for", "matti@example.fi", "--queue", "eiole"], b"no queue 'eiole'")):
        full = {"--queue": "laskutus", "--subject": "x", **dict(zip(args[::2], args[1::2]))}
        refused = run_maild("tickets", "open", *[v for pair in full.items() for v in pair], "--config", config)
        assert refused.returncode == 1 and error in refused.stderr
    assert len(json.loads(run_maild("tickets", "list", "--json", "--config", config).stdout)) == 2


def test_refusals_are_told_at_most_the_hourly_cap(app: App) -> None:
    """Forged #for mails in a staff member's name: each kept, but they hear of three an hour only."""
    for n in range(5):
        raw = mail(subject=f"Käynti {n}", sender="maija@liitto.fi", body="#for matti@example.fi\nKävi.")
        assert deliver(app, raw) == "quarantined:dropped"
    assert [m["To"] for m in sent(app)] == ["maija@liitto.fi"] * 3
    with Session(app.engine) as session:
        reasons = [q.reason for q in session.exec(select(Quarantine).order_by(Quarantine.id)).all()]
    assert len(reasons) == 5 and all(r.startswith("#for refused:") for r in reasons)
    assert [r.endswith("in the last hour)") for r in reasons] == [False, False, False, True, True]


def test_the_members_export_gives_away_no_staff_secret_address(app: App, tmp_path: Path) -> None:
    """A data subject's export holds the staff's mail on their tickets as it came in, but never
    the staff secrets in its addresses: with a staff member's reply address or opening address
    (and a forged From) the member could act as staff, or have maild acknowledge tickets to
    any address (docs/mail.md#staff-proof)."""
    from maild.privacy.export import export

    opener = opener_address(Path(app.settings.source), "maija@liitto.fi")
    assert deliver(app, mail(subject="Puhelu", sender="Maija <maija@liitto.fi>", to=opener,
                             body="#for matti@example.fi\n\nSoitti jäsenkortista."), to=opener).startswith("new:")
    reply_address = staff_token_address(app, "pekka@liitto.fi")
    assert deliver(app, mail(subject="Re: [JP#1] Puhelu", sender="Pekka <pekka@liitto.fi>", to=reply_address,
                             body="Uusi kortti on postissa."), to=reply_address).startswith("follow_up:")
    secrets = [address.split("@")[0].split("+")[1].encode() for address in (opener, reply_address)]

    export(app.engine, app.settings.data_dir, "matti@example.fi", tmp_path / "matti.zip", datetime.now(timezone.utc),
           app.rules.addresses())
    with zipfile.ZipFile(tmp_path / "matti.zip") as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    ticket = json.loads(contents["tickets/1/ticket.json"])
    assert {m["kind"] for m in ticket["messages"]} >= {"staff"} and any(name.endswith(".eml") for name in contents)
    assert b"Soitti j" in b"".join(contents.values())  # the staff notes are theirs to see
    leaked = [(name, secret) for name, data in contents.items() for secret in secrets if secret in data.lower()]
    assert leaked == []
    assert b"jasenpalvelu@liitto.fi" in contents["tickets/1/messages/1.eml"]  # the plain queue address instead


def test_cutting_secrets_leaves_other_addresses_and_finds_a_token_across_chunks() -> None:
    """Only a queue address's staff token is cut, wherever a chunk ends; a member's own
    plus-address that looks like one stays as it is."""
    from maild.privacy.export import _without_secrets, secret_pattern

    pattern = secret_pattern({"jasenpalvelu@liitto.fi"})
    text = (b"To: jasenpalvelu+12sabcdefgh23@liitto.fi, matti+newsletters@example.fi\n" * 3
            + b"x" * 1000 + b"jasenpalvelu+nabcdefgh23@LIITTO.FI\n")
    expected = (b"To: jasenpalvelu@liitto.fi, matti+newsletters@example.fi\n" * 3 + b"x" * 1000
                + b"jasenpalvelu@LIITTO.FI\n")
    for size in (1, 7, 30, 64, 700, len(text)):
        chunks = [text[i:i + size] for i in range(0, len(text), size)]
        assert b"".join(_without_secrets(iter(chunks), pattern)) == expected, size
