"""Staff answer from their own mail client: relay, commands, proof of sender (docs/mail.md#staff)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable

import pytest
from sqlmodel import Session, select

from maild import views
from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.store import db
from maild.store.tables import Outbox
from tests.mailgen import mail


@pytest.fixture
def app(make_instance, sqlite_url: str) -> App:
    instance = App(load_settings(str(make_instance(sqlite_url))))
    db.upgrade(instance.settings.database_url)
    return instance


def deliver(app: App, raw: bytes, recipients: tuple[str, ...] = ("jasenpalvelu@liitto.fi",)) -> str:
    return app.pipeline.process(spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", None, recipients)))


def sent(app: App, kind: str) -> list[email.message.EmailMessage]:
    with Session(app.engine) as session:
        rows = session.exec(select(Outbox).where(Outbox.kind == kind).order_by(Outbox.id)).all()
        return [email.message_from_bytes(r.raw, policy=email.policy.default) for r in rows]  # type: ignore[misc]


def told(app: App) -> list[email.message.EmailMessage]:
    """maild's answers to a staff member's own mail (kind ``notification``, an auto-reply)."""
    return [m for m in sent(app, "notification") if m["Auto-Submitted"] == "auto-replied"]


def ticket(app: App, number: int = 1) -> dict:
    with Session(app.engine) as session:
        detail = views.ticket_detail(session, "JP", number)
    assert detail is not None
    return detail


def staff_address(app: App, staff: str) -> str:
    note = next(m for m in sent(app, "notification") if m["To"] == staff)
    return note["Reply-To"].addresses[0].addr_spec


def outlook_reply(text: str, staff: str, to: str, quoted: str) -> bytes:
    body = f"{text}\n\nLähettäjä: Jäsenasiat <jasenpalvelu@liitto.fi>\nLähetetty: tiistai 24. marraskuuta 2026 10.01\n\n{quoted}"
    return mail(subject="VS: [JP#1] Uusi tiketti: Osoitteenmuutos", body=body, sender=staff, to=to)


def test_the_whole_loop(app: App) -> None:
    deliver(app, mail(subject="Osoitteenmuutos", body="Uusi osoite on Kotikatu 1."))
    token_address = staff_address(app, "maija@liitto.fi")
    quoted = sent(app, "notification")[0].get_body(("plain",)).get_content()
    reply = outlook_reply("Hei Matti,\n\nosoite on päivitetty.\n\nMaija", "maija@liitto.fi", token_address, quoted)
    assert deliver(app, reply, recipients=(token_address,)) == "follow_up:1"

    (answer,) = sent(app, "staff")
    assert answer["To"] == "matti@example.fi" and str(answer["From"]) == "Jäsenasiat <jasenpalvelu@liitto.fi>"
    assert "[JP#1]" in answer["Subject"] and answer["Auto-Submitted"] is None
    body = answer.get_body(("plain",)).get_content()
    assert body.strip().replace("\r\n", "\n") == "Hei Matti,\n\nosoite on päivitetty.\n\nMaija"
    assert "--- maild ---" not in body and "Lähettäjä" not in body
    shown = ticket(app)
    assert (shown["status"], shown["assignee"]) == ("pending", "maija@liitto.fi")

    deliver(app, mail(subject="Re: [JP#1] Osoitteenmuutos", body="Kiitos!"))
    shown = ticket(app)
    assert shown["status"] == "open"
    assert sent(app, "notification")[-1]["To"] == "maija@liitto.fi"  # the assignee hears of it

    close = mail(subject="VS: [JP#1]", body="#close\n", sender="maija@liitto.fi", to=token_address)
    deliver(app, close, recipients=(token_address,))
    assert ticket(app)["status"] == "resolved"
    (resolved,) = sent(app, "resolved")
    assert resolved["To"] == "matti@example.fi" and "[JP#1]" in resolved["Subject"]
    assert len(sent(app, "staff")) == 1  # a bare command relays nothing


def test_commands_and_a_note(app: App) -> None:
    deliver(app, mail(subject="Jäsenmaksu"))
    token_address = staff_address(app, "pekka@liitto.fi")
    text = "#take\n#priority urgent\n#category jäsenmaksu\n#note\nSoitin jäsenelle, hoidan huomenna."
    deliver(app, mail(subject="VS: [JP#1]", body=text, sender="pekka@liitto.fi", to=token_address), recipients=(token_address,))
    shown = ticket(app)
    assert (shown["assignee"], shown["priority"], shown["category"]) == ("pekka@liitto.fi", "urgent", "jäsenmaksu")
    assert shown["messages"][-1]["kind"] == "note"
    assert sent(app, "staff") == []  # nothing to the member
    kinds = [e["kind"] for e in shown["events"]]
    assert {"assigned", "priority", "category"} <= set(kinds)


def test_invalid_command_answers_the_writer_only(app: App) -> None:
    deliver(app, mail(subject="Asia"))
    token_address = staff_address(app, "maija@liitto.fi")
    deliver(app, mail(subject="VS: [JP#1]", body="#priority asap\nHei!", sender="maija@liitto.fi", to=token_address),
            recipients=(token_address,))
    assert sent(app, "staff") == []
    (reply,) = told(app)
    assert reply["To"] == "maija@liitto.fi" and "priority must be" in reply.get_body(("plain",)).get_content()
    shown = ticket(app)
    assert shown["status"] == "new"
    # docs/commands.md: the kinds `tickets show` may give a message
    assert {m["kind"] for m in shown["messages"]} <= {
        "member", "staff", "note", "third_party", "auto_reply", "ack", "notification", "reminder", "resolved", "bounce"}


def quoted_notification(app: App) -> str:
    text = sent(app, "notification")[0].get_body(("plain",)).get_content()
    return "\n".join(f"> {line}" if line else ">" for line in text.replace("\r\n", "\n").split("\n"))


def maija_answers(app: App, body: Callable[[str], str], subject: str = "Re: [JP#1]") -> None:
    """A new ticket; Maija answers its notification (quoted as ``body`` puts it) from her client."""
    deliver(app, mail(subject="Osoitteenmuutos", body="Uusi osoite on Kotikatu 1."))
    token_address = staff_address(app, "maija@liitto.fi")
    deliver(app, mail(subject=subject, body=body(quoted_notification(app)), sender="maija@liitto.fi", to=token_address),
            recipients=(token_address,))


def test_a_bottom_posted_answer_is_relayed(app: App) -> None:
    maija_answers(app, lambda quoted: f"On 24.11.2026 10.01, Jäsenasiat wrote:\n{quoted}\n\nHei Matti,\n"
                                      "osoite on päivitetty.\n")
    (answer,) = sent(app, "staff")
    assert answer.get_body(("plain",)).get_content().strip().replace("\r\n", "\n") == "Hei Matti,\nosoite on päivitetty."
    assert ticket(app)["status"] == "pending" and told(app) == []


def test_a_reply_with_nothing_to_relay_is_kept_as_a_note_and_the_writer_told(app: App) -> None:
    maija_answers(app, lambda quoted: f"Sent from my iPhone\n\nOn 24.11.2026 10.01, Jäsenasiat wrote:\n{quoted}\n")
    assert sent(app, "staff") == []
    (answer,) = told(app)
    assert answer["To"] == "maija@liitto.fi" and "ei lähetetty mitään" in answer.get_body(("plain",)).get_content()
    shown = ticket(app)
    assert shown["status"] == "new"
    assert [m["kind"] for m in shown["messages"] if m["direction"] == "in"][-1] == "note"
    assert "nothing_relayed" in [e["kind"] for e in shown["events"]]


def test_close_from_a_phone_relays_no_signature(app: App) -> None:
    maija_answers(app, lambda quoted: "#close\n\nLähetetty iPhonesta\n\n> Jäsenasiat <jasenpalvelu@liitto.fi> "
                                      f"kirjoitti 24.11.2026 kello 10.01:\n>\n{quoted}", subject="VS: [JP#1]")
    assert ticket(app)["status"] == "resolved"
    assert sent(app, "staff") == [] and told(app) == [] and len(sent(app, "resolved")) == 1


@pytest.mark.parametrize(
    "case",
    ["spoofed From to the plain queue address", "another staff member's token", "member token with staff From"],
)
def test_spoofed_staff_reply_changes_nothing(app: App, case: str) -> None:
    deliver(app, mail(subject="Asia"))
    maija = staff_address(app, "maija@liitto.fi")
    member_token = sent(app, "ack")[0]["Reply-To"].addresses[0].addr_spec
    sender, to = {
        "spoofed From to the plain queue address": ("maija@liitto.fi", "jasenpalvelu@liitto.fi"),
        "another staff member's token": ("pekka@liitto.fi", maija),
        "member token with staff From": ("maija@liitto.fi", member_token),
    }[case]
    forged = mail(subject="VS: [JP#1] Asia", body="#close\n#assign pekka@liitto.fi\nHyväksytty!", sender=sender, to=to)
    assert deliver(app, forged, recipients=(to,)) == "follow_up:1"
    shown = ticket(app)
    assert (shown["status"], shown["assignee"]) == ("new", None)
    assert [m["kind"] for m in shown["messages"] if m["direction"] == "in"][-1] == "third_party"
    assert "staff_unproven" in [e["kind"] for e in shown["events"]]
    assert sent(app, "staff") == [] and sent(app, "resolved") == []


def test_a_staff_token_works_only_for_its_own_ticket(app: App) -> None:
    deliver(app, mail(subject="Ensimmäinen asia", message_id="<first@example.fi>"))
    first_token = staff_address(app, "maija@liitto.fi")  # maija's secret address of ticket 1
    deliver(app, mail(subject="Toinen asia", message_id="<second@example.fi>"))
    local, _, domain = first_token.partition("@")
    forged = local.replace("+1s", "+2s") + "@" + domain  # the same MAC with ticket 2's number
    deliver(app, mail(subject="VS: [JP#2] Toinen asia", body="#close\nHoidettu.", sender="maija@liitto.fi",
                      to=forged), recipients=(forged,))
    second = ticket(app, 2)
    assert second["status"] == "new" and "staff_unproven" in [e["kind"] for e in second["events"]]
    # the genuine token of ticket 1 under ticket 2's tag: the token decides, ticket 2 is untouched
    deliver(app, mail(subject="VS: [JP#2] Toinen asia", body="#close", sender="maija@liitto.fi", to=first_token),
            recipients=(first_token,))
    assert ticket(app, 1)["status"] == "resolved" and ticket(app, 2)["status"] == "new"
    assert sent(app, "staff") == [] and [m["To"] for m in sent(app, "resolved")] == ["matti@example.fi"]


@pytest.mark.parametrize(
    ("results", "relayed"),
    [
        (["mx.liitto.fi; dmarc=pass header.from=liitto.fi"], True),
        (["mx.liitto.fi; dmarc=fail header.from=liitto.fi", "mx.liitto.fi; dmarc=pass header.from=liitto.fi"], False),
        (["evil.example; dmarc=pass header.from=liitto.fi"], False),
    ],
)
def test_authres_proof(make_instance, sqlite_url: str, results: list[str], relayed: bool) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url, extra='\n[staff]\nauthentication = "authres"\ntrusted_authserv_ids = ["mx.liitto.fi"]\n')
    app = App(load_settings(str(config)))
    db.upgrade(app.settings.database_url)
    deliver(app, mail(subject="Asia"))
    raw = mail(subject="VS: [JP#1] Asia", body="Hei, hoidettu.", sender="maija@liitto.fi")
    for header in reversed(results):  # the first of `results` ends up topmost
        raw = f"Authentication-Results: {header}\r\n".encode() + raw
    deliver(app, raw)
    assert bool(sent(app, "staff")) is relayed
    assert ticket(app)["status"] == ("pending" if relayed else "new")


def test_without_reply_tokens_tag_and_references_thread(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url, extra='\n[staff]\nauthentication = "none"\nreply_tokens = false\n')
    app = App(load_settings(str(config)))
    db.upgrade(app.settings.database_url)
    deliver(app, mail(subject="Asia"))
    assert sent(app, "ack")[0]["Reply-To"].addresses[0].addr_spec == "jasenpalvelu@liitto.fi"
    assert {m["Reply-To"].addresses[0].addr_spec for m in sent(app, "notification")} == {"jasenpalvelu@liitto.fi"}
    deliver(app, mail(subject="VS: [JP#1] Asia", body="Hoidettu.", sender="pekka@liitto.fi"))
    assert sent(app, "staff")[0]["To"] == "matti@example.fi"  # `none`: the From alone (trials)


def test_token_proof_without_tokens_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from maild.config import ConfigError

    path = tmp_path / "maild.toml"
    path.write_text('[staff]\nreply_tokens = false\n')
    with pytest.raises(ConfigError, match="reply_tokens"):
        load_settings(str(path))
