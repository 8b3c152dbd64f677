"""Who receives a ticket's mail (docs/mail.md#recipients): CCs only from the member's first message and
from staff (#cc/#uncc), none on confidential queues, and a move to another queue takes that
queue's confidentiality and people."""

from __future__ import annotations

import email
import email.policy
import json
import time

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from maild.app import App
from maild.config import load_settings
from maild.store import db
from maild.store.tables import Outbox
from tests.conftest import RULES, run_maild
from tests.integration.smtp_sink import smtp_sink  # noqa: F401  (fixture)
from tests.integration.test_end_to_end import body, send, wait_mail
from tests.integration.test_staff import deliver, sent, staff_address, ticket, told
from tests.mailgen import mail

LAW = "lakineuvonta@liitto.fi"
LAWYERS = ("lakimies@liitto.fi", "juristi@liitto.fi")
ATTACKER = "attacker@evil.example"
RULES_WITH_LAW = RULES.replace("sla:", (
    "  lakineuvonta:\n    name: Lakineuvonta\n    address: lakineuvonta@liitto.fi\n"
    f"    staff: [{', '.join(LAWYERS)}]\n    language: fi\n    confidential: true\nsla:"), 1)


@pytest.fixture
def app(make_instance, sqlite_url: str) -> App:  # type: ignore[no-untyped-def]
    instance = App(load_settings(str(make_instance(sqlite_url, rules=RULES_WITH_LAW))))
    db.upgrade(instance.settings.database_url)
    return instance


def events(app: App, kind: str, number: int = 1) -> list[dict]:
    return [e for e in ticket(app, number)["events"] if e["kind"] == kind]


def notices_to(app: App, staff: str) -> list[email.message.EmailMessage]:
    return [m for m in sent(app, "notification") if m["To"] == staff]


def answers(app: App) -> list[email.message.EmailMessage]:
    """The relayed staff answers, each once (the outbox has a row per recipient)."""
    return list({m["Message-ID"]: m for m in sent(app, "staff")}.values())


def staff_writes(app: App, staff: str, text: str, number: int = 1) -> str:
    """``staff`` answers their notification of ticket ``number`` from their own mail client."""
    token = staff_address(app, staff)
    return deliver(app, mail(subject=f"VS: [JP#{number}] Asia", body=text, sender=staff, to=token), recipients=(token,))


# --- the attack of issue 11, through the real listener and a real smarthost ------------------


def test_a_forged_follow_up_with_a_cc_does_not_get_the_lawyers_answer(daemon, smtp_sink, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    sink = smtp_sink()
    running = daemon(rules=RULES_WITH_LAW, extra=f'\n[outbound]\ntransport = "{sink.url()}"\nstarttls = false\n')
    send(running.port, mail(subject="Irtisanominen", body="Minut irtisanottiin eilen.", to=LAW), LAW, "matti@example.fi")
    first = wait_mail(sink, lambda m: m["To"] == LAWYERS[0] and "Minut irtisanottiin" in body(m))

    # the attacker: the member's own address as a plain From, a guessed tag, himself in Cc
    forged = mail(subject="Re: [JP#1] Irtisanominen", body="Lisätietoa asiaan.", sender="matti@example.fi", to=LAW,
                  cc=ATTACKER)
    send(running.port, forged, LAW, ATTACKER)
    followup = wait_mail(sink, lambda m: m["To"] == LAWYERS[0] and "Lisätietoa asiaan." in body(m))
    assert ATTACKER in body(followup).split("--- /maild ---")[0] and "#cc" in body(followup)

    token = first["Reply-To"].addresses[0].addr_spec
    answer = "Hei Matti,\n\nirtisanomisaika on kaksi viikkoa.\n\nLakimies"
    send(running.port, mail(subject="VS: [JP#1] Irtisanominen", body=answer, sender=LAWYERS[0], to=token), token,
         LAWYERS[0])
    wait_mail(sink, lambda m: m["To"] == "matti@example.fi" and "irtisanomisaika" in body(m))
    engine = sa.create_engine(sqlite_url)  # the daemon's database
    deadline = time.monotonic() + 30
    with Session(engine) as session:  # everything queued has gone out
        while session.exec(select(Outbox).where(col(Outbox.state).in_(("queued", "sending")))).first():
            assert time.monotonic() < deadline, "mail still queued"
            time.sleep(0.2)
            session.expire_all()
    engine.dispose()
    assert [r for r in sink.received if ATTACKER in r.rcpt_tos] == []
    shown = json.loads(run_maild("tickets", "show", "1", "--json", "--config", str(running.config)).stdout)
    assert shown["cc"] == [] and [e["data"]["to"] for e in shown["events"] if e["kind"] == "relayed"] == [
        ["matti@example.fi"]]


# --- the member's first message --------------------------------------------------------------


def test_the_first_message_cc_becomes_a_cc_and_the_answer_goes_there(app: App) -> None:
    deliver(app, mail(subject="Asia", cc="Puoliso <puoliso@example.fi>, jasenpalvelu@liitto.fi"))
    assert ticket(app)["cc"] == ["puoliso@example.fi"]
    staff_writes(app, "maija@liitto.fi", "Hei, asia on hoidettu.")
    (answer,) = answers(app)
    assert answer["To"] == "matti@example.fi" and answer["Cc"] == "puoliso@example.fi"


def test_a_confidential_ticket_starts_without_ccs_and_the_notification_lists_them(app: App) -> None:
    deliver(app, mail(subject="Työsopimus", to=LAW, cc="puoliso@example.fi"), recipients=(LAW,))
    shown = ticket(app)
    assert (shown["confidential"], shown["cc"]) == (True, [])
    for note in (notices_to(app, staff)[0] for staff in LAWYERS):
        internal = note.get_body(("plain",)).get_content().split("--- /maild ---")[0]
        assert "puoliso@example.fi" in internal and '"#cc OSOITE"' in internal
    staff_writes(app, LAWYERS[0], "Hei, katsotaan sopimus.")
    (answer,) = answers(app)
    assert answer["To"] == "matti@example.fi" and answer["Cc"] is None


def test_a_later_member_mail_adds_no_cc_and_the_notification_lists_its_addresses(app: App) -> None:
    deliver(app, mail(subject="Asia"))
    follow_up = mail(subject="Re: [JP#1] Asia", body="Lisää tietoa.", to="jasenpalvelu@liitto.fi, naapuri@example.fi",
                     cc="pekka@liitto.fi, puoliso@example.fi")
    assert deliver(app, follow_up) == "follow_up:1"
    assert ticket(app)["cc"] == []
    note = notices_to(app, "maija@liitto.fi")[-1]
    internal = note.get_body(("plain",)).get_content().split("--- /maild ---")[0]
    listed = internal.split("vastaanottajia")[1].split("Jos viestien")[0]
    assert "naapuri@example.fi" in listed and "puoliso@example.fi" in listed
    assert "pekka@liitto.fi" not in listed and "matti@example.fi" not in listed  # staff, the member


# --- #cc and #uncc ----------------------------------------------------------------------------


def test_cc_adds_an_address_for_the_answer_in_the_same_message_and_uncc_removes_it(app: App) -> None:
    deliver(app, mail(subject="Asia"))
    assert staff_writes(app, "maija@liitto.fi", "#cc Puoliso <mailto:PUOLISO@example.fi>\nHei molemmat!") == "follow_up:1"
    assert told(app)  # the display name form is refused: the writer is told, nothing goes out
    assert answers(app) == [] and ticket(app)["cc"] == []

    staff_writes(app, "maija@liitto.fi", "#cc PUOLISO@example.fi\n\nHei molemmat!")
    (answer,) = answers(app)
    assert answer["To"] == "matti@example.fi" and answer["Cc"] == "puoliso@example.fi"
    assert ticket(app)["cc"] == ["puoliso@example.fi"]
    (added,) = events(app, "cc_added")
    assert (added["actor"], added["data"]["address"]) == ("maija@liitto.fi", "puoliso@example.fi")

    staff_writes(app, "pekka@liitto.fi", "#uncc puoliso@example.fi\nVain sinulle, Matti.")
    last = answers(app)[-1]
    assert last["To"] == "matti@example.fi" and last["Cc"] is None and ticket(app)["cc"] == []
    (removed,) = events(app, "cc_removed")
    assert (removed["actor"], removed["data"]) == ("pekka@liitto.fi", {"address": "puoliso@example.fi", "how": "#uncc"})


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("#cc laskutus+abc@liitto.fi", "our own address laskutus@liitto.fi"),
        ("#cc no-reply@kauppa.example", "no-reply sender"),
        ("#cc ei osoite", "is not one email address"),
        ("#cc a@example.fi, b@example.fi", "is not one email address"),
        ("#uncc matti@example.fi", "the ticket's member"),
    ],
)
def test_a_refused_cc_sends_nothing_and_tells_the_writer(app: App, line: str, error: str) -> None:
    deliver(app, mail(subject="Asia"))
    staff_writes(app, "maija@liitto.fi", f"{line}\nHei!")
    (reply,) = told(app)
    assert error in reply.get_body(("plain",)).get_content()
    assert answers(app) == [] and ticket(app)["cc"] == [] and events(app, "cc_added") == []


# --- moving a ticket ----------------------------------------------------------------------------


def test_moving_into_a_confidential_queue_drops_assignee_and_ccs_and_keeps_its_content_there(app: App) -> None:
    deliver(app, mail(subject="Työpaikan ongelma", cc="puoliso@example.fi"))
    staff_writes(app, "maija@liitto.fi", "#take\n#queue lakineuvonta")
    shown = ticket(app)
    assert (shown["queue"], shown["confidential"], shown["assignee"], shown["cc"]) == ("lakineuvonta", True, None, [])
    assert [e["data"]["address"] for e in events(app, "cc_removed")] == ["puoliso@example.fi"]
    (unassigned,) = events(app, "unassigned")
    assert unassigned["data"]["old"] == "maija@liitto.fi" and unassigned["actor"] == "maija@liitto.fi"
    assert [(e["data"]["old"], e["data"]["new"]) for e in events(app, "confidential")] == [(False, True)]

    before = len(sent(app, "notification"))
    deliver(app, mail(subject="Re: [JP#1] Työpaikan ongelma", body="Esimies uhkaili minua."))
    after = sent(app, "notification")[before:]
    assert sorted(m["To"] for m in after) == sorted(LAWYERS)  # not maija, who had it


def test_move_and_assign_to_the_new_queues_staff_in_one_message(app: App) -> None:
    deliver(app, mail(subject="Asia"))
    staff_writes(app, "maija@liitto.fi", f"#queue lakineuvonta\n#assign {LAWYERS[1]}\nHei, siirsin asian juristille.")
    shown = ticket(app)
    assert (shown["queue"], shown["assignee"]) == ("lakineuvonta", LAWYERS[1])
    (answer,) = answers(app)  # the answer goes out from the queue the ticket is in now
    assert answer["To"] == "matti@example.fi" and answer["From"].addresses[0].addr_spec == LAW


def test_the_mover_who_is_not_staff_there_is_not_made_the_assignee(app: App) -> None:
    deliver(app, mail(subject="Asia"))
    staff_writes(app, "maija@liitto.fi", "#queue lakineuvonta\nHei, lakimies vastaa sinulle pian.")
    assert ticket(app)["assignee"] is None and len(answers(app)) == 1


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("#queue lakineuvonta\n#take", "maija@liitto.fi is not staff of this queue"),
        (f"#assign {LAWYERS[0]}\n#queue lakineuvonta", f"{LAWYERS[0]} is not staff of this queue"),
    ],
)
def test_commands_are_checked_against_the_queue_they_act_in(app: App, text: str, error: str) -> None:
    deliver(app, mail(subject="Asia"))
    staff_writes(app, "maija@liitto.fi", text)
    (reply,) = told(app)
    assert error in reply.get_body(("plain",)).get_content()
    assert (ticket(app)["queue"], ticket(app)["assignee"]) == ("jasenasiat", None)


def test_tickets_move_from_the_shell(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url, rules=RULES_WITH_LAW)
    assert run_maild("--config", str(config), "ingest", input=mail(subject="Asia", cc="puoliso@example.fi")).returncode == 0
    assert run_maild("tickets", "assign", "1", "pekka@liitto.fi", "--config", str(config)).returncode == 0

    wrong = run_maild("tickets", "move", "1", "olematon", "--config", str(config))
    assert wrong.returncode == 1 and b"no queue 'olematon'" in wrong.stderr and b"Traceback" not in wrong.stderr
    missing = run_maild("tickets", "move", "7", "lakineuvonta", "--config", str(config))
    assert missing.returncode == 1 and b"no ticket 7" in missing.stderr
    own = run_maild("tickets", "cc", "1", "laskutus@liitto.fi", "--config", str(config))
    assert own.returncode == 1 and b"our own address" in own.stderr
    assert run_maild("tickets", "cc", "1", "Naapuri@example.fi", "--config", str(config)).returncode == 0

    moved = run_maild("tickets", "move", "1", "lakineuvonta", "--as", "anna@liitto.fi", "--config", str(config))
    assert moved.returncode == 0, moved.stderr
    shown = json.loads(run_maild("tickets", "show", "1", "--json", "--config", str(config)).stdout)
    assert (shown["queue"], shown["confidential"], shown["assignee"], shown["cc"]) == ("lakineuvonta", True, None, [])
    moves = [(e["actor"], e["data"]) for e in shown["events"] if e["kind"] == "queue"]
    assert moves == [("anna@liitto.fi", {"old": "jasenasiat", "new": "lakineuvonta"})]
    assert {e["kind"] for e in shown["events"]} >= {"unassigned", "confidential", "cc_added"}
    dropped = [e["data"]["address"] for e in shown["events"] if e["kind"] == "cc_removed"]
    assert dropped == ["puoliso@example.fi", "naapuri@example.fi"]


def test_a_follow_up_goes_to_the_queues_staff_when_the_assignee_is_not_staff_there(app: App) -> None:
    """A ticket whose assignee is no longer staff of its queue (moved before maild checked, or
    the rules changed): its content goes to the queue's staff, not to the old assignee."""
    deliver(app, mail(subject="Asia", to=LAW), recipients=(LAW,))
    with Session(app.engine) as session:
        session.execute(sa.text("UPDATE tickets SET assignee = 'maija@liitto.fi'"))
        session.commit()
    before = len(sent(app, "notification"))
    deliver(app, mail(subject="Re: [JP#1] Asia", body="Salainen lisätieto."))
    assert sorted(m["To"] for m in sent(app, "notification")[before:]) == sorted(LAWYERS)
