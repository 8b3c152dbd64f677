"""The member register on real databases (docs/coming.md#member-register): import, linking, rules, notifications,
the lookup command and re-import; SQLite, and PostgreSQL when MAILD_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import email
import email.policy
import json
import smtplib
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlmodel import Session, select

from maild import views
from maild.app import App
from maild.config import ConfigError, load_settings
from maild.core.register import read_register
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.metrics import DatabaseCollector
from maild.store import db
from maild.store import members as store_members
from maild.store.tables import Member, Outbox, Ticket, TicketMember
from tests.conftest import REPO, run_maild
from tests.integration.smtp_sink import smtp_sink  # noqa: F401  (fixture)
from tests.mailgen import mail

RULES = textwrap.dedent(
    """\
    queues:
      jasenasiat:
        name: Jäsenasiat
        address: jasenpalvelu@liitto.fi
        staff: [maija@liitto.fi]
        language: fi
        default: true
      tampere:
        name: Tampereen osasto
        address: tampere@liitto.fi
        staff: [tiina@liitto.fi]
        language: fi
    rules:
      - name: Tampereen osaston jäsenet osastolle
        if: {member: {osasto: Tampereen osasto}}
        then: {queue: tampere}
    """
)
REGISTER = (
    "Jäsennumero;Sukunimi;Etunimi;Sähköposti;Osasto;maksettu;Liittynyt\n"
    "1001;Meikäläinen;Matti;matti@example.fi;Tampereen osasto;ei;1.3.2015\n"
    "2002;Laine;Anna;anna@example.fi;Oulun osasto;kyllä;12.9.2019\n"
)
SHOW = '\n[members]\nshow_fields = ["Osasto", "maksettu", "Liittynyt"]\n'


def make_app(make_instance, db_url: str, rules: str = RULES, extra: str = SHOW) -> App:  # type: ignore[no-untyped-def]
    instance = App(load_settings(str(make_instance(db_url, rules=rules, extra=extra))))
    db.upgrade(instance.settings.database_url)
    return instance


@pytest.fixture
def app(make_instance, db_url: str) -> App:  # type: ignore[no-untyped-def]
    return make_app(make_instance, db_url)


def load(app: App, text: str, key: str = "email", dry_run: bool = False) -> store_members.ImportResult:
    register = read_register(text.encode("cp1252"), key)  # type: ignore[arg-type]
    with Session(app.engine) as session:
        result = store_members.replace_register(session, register.rows, key, dry_run)  # type: ignore[arg-type]
        session.commit()
    return result


def deliver(app: App, raw: bytes, to: str = "jasenpalvelu@liitto.fi") -> str:
    return app.pipeline.process(spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", None, (to,))))


def show(app: App, number: int) -> dict:
    with Session(app.engine) as session:
        detail = views.ticket_detail(session, "JP", number)
    assert detail is not None
    return detail


def notifications(app: App, to: str) -> list[str]:
    with Session(app.engine) as session:
        rows = session.exec(select(Outbox).where(Outbox.kind == "notification", Outbox.recipient == to)
                            .order_by(Outbox.id)).all()
    return [email.message_from_bytes(r.raw, policy=email.policy.default).get_body(("plain",)).get_content()  # type: ignore[union-attr]
            .replace("\r\n", "\n") for r in rows]


def events(detail: dict, kind: str) -> list[dict]:
    return [e["data"] for e in detail["events"] if e["kind"] == kind]


def test_a_members_mail_shows_number_and_unit_to_staff_and_in_tickets_show(app: App) -> None:
    load(app, REGISTER)
    assert deliver(app, mail(subject="Osoitteenmuutos", sender="Matti <Matti@Example.FI>")) == "new:1"
    detail = show(app, 1)
    assert detail["member"] == {"member_number": "1001", "linked_by": "address", "fields": {
        "Sukunimi": "Meikäläinen", "Etunimi": "Matti", "Osasto": "Tampereen osasto", "maksettu": "ei",
        "Liittynyt": "1.3.2015"}}
    assert events(detail, "member_linked") == [{"member_number": "1001", "linked_by": "address"}]
    (notice,) = notifications(app, "tiina@liitto.fi")  # the rule sent it to the unit's queue
    assert "Jäsennumero:   1001\n" in notice
    assert "Osasto:        Tampereen osasto\n" in notice and "maksettu:      ei\n" in notice
    assert "Sukunimi" not in notice  # only show_fields
    # a follow-up's notification shows the member too
    assert deliver(app, mail(subject="Re: [JP#1] Osoitteenmuutos", sender="matti@example.fi",
                             to="tampere@liitto.fi")) == "follow_up:1"
    assert "Jäsennumero:   1001" in notifications(app, "tiina@liitto.fi")[-1]


def test_a_non_members_mail_has_no_member_and_routes_by_address(app: App) -> None:
    load(app, REGISTER)
    assert deliver(app, mail(subject="Kysymys", sender="outo@example.com")) == "new:1"
    assert show(app, 1)["member"] is None and show(app, 1)["queue"] == "jasenasiat"
    (notice,) = notifications(app, "maija@liitto.fi")
    assert "Jäsennumero" not in notice


def test_shipped_rules_applications_of_non_members_and_unpaid_resignations(make_instance, db_url: str) -> None:  # type: ignore[no-untyped-def]
    app = make_app(make_instance, db_url, rules=(REPO / "rules.yaml").read_text(encoding="utf-8"))
    load(app, REGISTER)
    assert deliver(app, mail(subject="Jäsenhakemus", body="Haluan liittyä liittoon.", sender="uusi@example.fi")) == "new:1"
    assert (show(app, 1)["queue"], show(app, 1)["category"]) == ("jasenhakemukset", "jäsenhakemus")
    assert deliver(app, mail(subject="Jäsenhakemus", body="Puolisoni haluaa liittyä liittoon.", sender="anna@example.fi")) == "new:2"
    assert show(app, 2)["queue"] == "jasenasiat"  # a member: not an application of theirs
    assert deliver(app, mail(subject="Eroilmoitus", sender="matti@example.fi")) == "new:3"
    assert "jasenmaksu-maksamatta" in show(app, 3)["tags"]
    assert deliver(app, mail(subject="Eroilmoitus", sender="anna@example.fi")) == "new:4"
    assert show(app, 4)["tags"] == [] and show(app, 4)["category"] == "eroaminen"


def test_members_show_lists_the_tickets_a_member_sent_from_two_addresses(app: App) -> None:
    load(app, REGISTER)
    assert deliver(app, mail(subject="Kysymys", sender="matti@example.fi")) == "new:1"
    assert deliver(app, mail(subject="Työpaikalta", body="Hei, jäsennumeroni on 1001.",
                             sender="matti.meikalainen@tyopaikka.fi")) == "new:2"
    assert show(app, 2)["member"]["linked_by"] == "number"
    assert show(app, 2)["requester"] == "matti.meikalainen@tyopaikka.fi"
    with Session(app.engine) as session:
        by_number = views.member_detail(session, "JP", "1001")
        by_address = views.member_detail(session, "JP", "MATTI@example.fi")
        other = views.member_detail(session, "JP", "matti.meikalainen@tyopaikka.fi")
        nobody = views.member_detail(session, "JP", "9999")
    assert by_number is not None and by_address is not None and other is not None
    assert [t["number"] for t in by_number["tickets"]] == [2, 1]
    assert by_address == by_number
    assert by_number["member"]["member_number"] == "1001" and by_number["address"] == "matti@example.fi"
    assert other["member"] is None and [t["number"] for t in other["tickets"]] == [2]
    assert nobody is None


def test_a_number_never_overrides_the_senders_address_the_conflict_is_shown(app: App) -> None:
    load(app, REGISTER)
    assert deliver(app, mail(subject="Annan asia", body="Kyse on jäsennumero 2002 tiedoista.",
                             sender="matti@example.fi")) == "new:1"
    detail = show(app, 1)
    assert detail["member"]["member_number"] == "1001"
    (conflict,) = events(detail, "member_conflict")
    assert (conflict["member_number"], conflict["mentioned_number"]) == ("1001", "2002")
    assert "jäsennumero 2002 on toisen jäsenen" in notifications(app, "tiina@liitto.fi")[0]


def test_reimport_unlinks_members_no_longer_in_the_register_and_keeps_the_others(app: App) -> None:
    assert load(app, REGISTER).added == 2
    deliver(app, mail(subject="Yksi", sender="matti@example.fi"))
    deliver(app, mail(subject="Kaksi", sender="anna@example.fi"))
    changed = REGISTER.splitlines()[0] + "\n" + "2002;Laine;Anna;anna@example.fi;Oulun osasto;ei;12.9.2019\n" \
        + "3003;Uusi;Ulla;ulla@example.fi;Turun osasto;kyllä;1.1.2026\n"
    dry = load(app, changed, dry_run=True)
    assert (dry.added, dry.updated, dry.removed, dry.unlinked_tickets) == (1, 1, 1, [show(app, 1)["number"] and 1])
    assert show(app, 1)["member"] is not None  # a dry run changes nothing
    result = load(app, changed)
    assert (result.added, result.updated, result.unchanged, result.removed) == (1, 1, 0, 1)
    first, second = show(app, 1), show(app, 2)
    assert first["member"] is None and first["requester"] == "matti@example.fi"
    assert events(first, "member_unlinked") == [{"member_number": "1001", "reason": "no longer in the member register"}]
    assert second["member"]["fields"]["maksettu"] == "ei"  # the same row, updated: still linked
    with Session(app.engine) as session:
        assert store_members.count(session) == 2
        assert store_members.find(session, "1001") is None
        assert views.member_detail(session, "JP", "matti@example.fi")["member"] is None  # type: ignore[index]
    assert load(app, changed).unchanged == 2


def test_numbers_and_addresses_that_move_between_members_on_reimport(app: App) -> None:
    load(app, "email;member_number\na@example.fi;1\nb@example.fi;2\n")
    swapped = load(app, "email;member_number\na@example.fi;2\nb@example.fi;1\n")
    assert (swapped.updated, swapped.removed) == (2, 0)
    by_number = load(app, "email;member_number\nc@example.fi;1\nd@example.fi;2\n", key="member_number")
    assert (by_number.updated, by_number.added, by_number.removed) == (2, 0, 0)
    with Session(app.engine) as session:
        assert store_members.find(session, "c@example.fi").member_number == "1"  # type: ignore[union-attr]


def test_erasure_removes_the_register_row_and_the_link(app: App) -> None:
    load(app, REGISTER)
    deliver(app, mail(subject="Yksi", sender="matti@example.fi"))
    with Session(app.engine) as session:
        assert store_members.erase(session, "Matti@example.fi") == 1
        session.commit()
        assert session.exec(select(Member).where(Member.email == "matti@example.fi")).first() is None
        assert session.exec(select(TicketMember)).all() == []


# --- lookup command -----------------------------------------------------------------------------

LOOKUP = textwrap.dedent(
    """\
    import json, sys, time
    address = sys.argv[-1]
    with open(sys.argv[1], "a") as log:
        log.write(address + "\\n")
    if address.startswith("slow"):
        time.sleep(30)
    if address.startswith("broken"):
        print("register API down", file=sys.stderr)
        sys.exit(3)
    if address.startswith("garbage"):
        print("<html>error</html>")
    elif address == "ville@example.fi":
        print(json.dumps({"jäsennumero": "7007", "Osasto": "Tampereen osasto", "maksettu": "kyllä"}))
    elif address == "matti.uusi@example.fi":  # Matti's new address: the register still has the old one
        print(json.dumps({"jäsennumero": "1001", "Osasto": "Tampereen osasto"}))
    """
)


@pytest.fixture
def lookup_app(make_instance, db_url: str, tmp_path: Path) -> tuple[App, Path]:  # type: ignore[no-untyped-def]
    script, calls = tmp_path / "lookup.py", tmp_path / "calls.log"
    script.write_text(LOOKUP, encoding="utf-8")
    extra = SHOW + f'lookup_command = "{sys.executable} {script} {calls}"\nlookup_timeout_seconds = 1\n'
    return make_app(make_instance, db_url, extra=extra), calls


def failures(app: App) -> float:
    metric = next(m for m in DatabaseCollector(app.engine)._read() if m.name == "maild_member_lookup_failures")
    return metric.samples[0].value


def test_lookup_command_links_routes_and_is_cached(lookup_app: tuple[App, Path]) -> None:
    app, calls = lookup_app
    load(app, REGISTER)
    assert deliver(app, mail(subject="Kysymys", sender="ville@example.fi")) == "new:1"
    detail = show(app, 1)
    assert detail["member"] == {"member_number": "7007", "linked_by": "address",
                                "fields": {"Osasto": "Tampereen osasto", "maksettu": "kyllä"}}
    assert detail["queue"] == "tampere"  # the rule saw the looked-up member
    assert "Jäsennumero:   7007" in notifications(app, "tiina@liitto.fi")[0]
    assert deliver(app, mail(subject="Toinen", sender="ville@example.fi")) == "new:2"
    assert deliver(app, mail(subject="Kolmas", sender="matti@example.fi")) == "new:3"  # in the register
    assert calls.read_text().splitlines() == ["ville@example.fi"]  # cached; the register needs no command
    assert failures(app) == 0
    with Session(app.engine) as session:
        assert [t["number"] for t in views.member_detail(session, "JP", "7007")["tickets"]] == [2, 1]  # type: ignore[index]


def test_a_number_looked_up_for_a_new_address_no_longer_links_the_old_one_later_in_the_batch(
    lookup_app: tuple[App, Path],
) -> None:
    """The lookup command gives Matti's number for his new address: the register row moves to
    it. A mail from the old address later in the same batch is then a stranger's, as it is
    when filed alone (the batch's prefetched register rows are stale)."""
    app, _ = lookup_app
    load(app, REGISTER)
    envelope = Envelope("smtp", None, ("jasenpalvelu@liitto.fi",))
    ids = [spool_sync(app.engine, app.raw_store, mail(subject="Uusi osoite", sender="matti.uusi@example.fi"), envelope),
           spool_sync(app.engine, app.raw_store, mail(subject="Vanha osoite", sender="matti@example.fi"), envelope)]
    assert app.pipeline.process_many(ids) == {ids[0]: "new:1", ids[1]: "new:2"}
    assert show(app, 1)["member"]["member_number"] == "1001"  # type: ignore[index]
    assert show(app, 2)["member"] is None


@pytest.mark.parametrize(
    ("sender", "error"),
    [("slow@example.fi", "no answer in 1 s"), ("broken@example.fi", "exit status 3: register API down"),
     ("garbage@example.fi", "not a JSON object")],
)
def test_a_failing_lookup_files_the_mail_unlinked_logged_and_counted(
    lookup_app: tuple[App, Path], sender: str, error: str, caplog: pytest.LogCaptureFixture,
) -> None:
    app, calls = lookup_app
    started = time.monotonic()
    assert deliver(app, mail(subject="Kysymys", sender=sender)) == "new:1"
    assert time.monotonic() - started < 10
    detail = show(app, 1)
    assert detail["member"] is None
    (failed,) = events(detail, "member_lookup_failed")
    assert failed["error"].startswith(error)
    assert any("member lookup" in record.getMessage() for record in caplog.records)
    assert failures(app) == 1
    deliver(app, mail(subject="Uudestaan", sender=sender))
    assert len(calls.read_text().splitlines()) == 2  # failures are not cached
    assert failures(app) == 2


def test_check_refuses_a_lookup_command_that_cannot_run(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url, extra='\n[members]\nlookup_command = "./ei-ole.sh --json"\n')
    result = run_maild("check", "--config", str(config))
    assert result.returncode == 1
    assert b"members: lookup_command: ./ei-ole.sh is not an executable file" in result.stderr
    bad = make_instance(sqlite_url, extra="\n[members]\nlookup_timeout_seconds = 0\n", name="bad")
    with pytest.raises(ConfigError) as refused:
        load_settings(str(bad))
    assert refused.value.errors == [f"{bad}:18: members.lookup_timeout_seconds: Value error, "
                                    "lookup_timeout_seconds must be more than 0"]


# --- the command line ---------------------------------------------------------------------------


def test_the_command_line(make_instance, sqlite_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = str(make_instance(sqlite_url, rules=RULES, extra=SHOW))
    export = tmp_path / "rekisteri.csv"
    export.write_bytes((REGISTER + '3003;"Rikki;Rivi;r@example.fi;X;ei;\n'
                        + "4004;Virta;Ville;MATTI@example.fi;Oulun osasto;kyllä;2.2.2020\n").encode("cp1252"))
    dry = run_maild("members", "import", str(export), "--dry-run", "--json", "--config", config)
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert (report["encoding"], report["members"], report["added"], report["dry_run"]) == ("cp1252", 2, 2, True)
    assert [(p["line"], p["kind"]) for p in report["problems"]] == [(2, "duplicate"), (4, "unreadable")]
    assert not (tmp_path / "inst" / "var").exists()  # a dry run creates no database
    done = run_maild("members", "import", str(export), "--config", config)
    assert done.returncode == 0, done.stderr
    assert f"{export}:2: address matti@example.fi again on line 5: the later row wins".encode() in done.stderr
    assert f"{export}:4: cannot be read: a quote is not closed".encode() in done.stderr
    assert b"2 were added" in done.stdout
    assert run_maild("ingest", "--recipient", "jasenpalvelu@liitto.fi", "--config", config,
                     input=mail(subject="Kysymys", sender="matti@example.fi")).returncode == 0
    shown = json.loads(run_maild("tickets", "show", "1", "--json", "--config", config).stdout)
    assert shown["member"]["member_number"] == "4004" and shown["queue"] == "jasenasiat"
    member = json.loads(run_maild("members", "show", "4004", "--json", "--config", config).stdout)
    assert member["address"] == "matti@example.fi" and [t["number"] for t in member["tickets"]] == [1]
    assert member["member"] == {"member_number": "4004", "fields": {
        "Sukunimi": "Virta", "Etunimi": "Ville", "Osasto": "Oulun osasto", "maksettu": "kyllä", "Liittynyt": "2.2.2020"}}
    eml = tmp_path / "q.eml"
    eml.write_bytes(mail(subject="Kysymys", sender="anna@example.fi"))
    as_member = json.loads(run_maild("rules", "test", str(eml), "--json", "--member-field", "Osasto=Tampereen osasto",
                                     "--config", config).stdout)
    assert as_member["queue"] == "tampere" and as_member["member"]["fields"] == {"Osasto": "Tampereen osasto"}


def test_rules_test_looks_the_sender_up_in_the_register(make_instance, db_url: str) -> None:  # type: ignore[no-untyped-def]
    from maild.cli import _member_finder

    app = make_app(make_instance, db_url)
    raw = mail(subject="Kysymys", body="jäsennumero 1001", sender="uusi@example.fi")
    assert _member_finder(app, [], False) is not None
    load(app, REGISTER)
    found = views.rules_verdict(app.rules, raw, (), _member_finder(app, [], False))
    assert found["queue"] == "tampere" and found["member"]["linked_by"] == "number"
    nobody = views.rules_verdict(app.rules, raw, (), _member_finder(app, [], True))
    assert nobody["queue"] == "jasenasiat" and nobody["member"] is None


def test_a_members_mail_over_smtp_reaches_staff_with_number_and_unit(daemon, smtp_sink, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sink = smtp_sink()
    running = daemon(rules=RULES, extra=SHOW + f'\n[outbound]\ntransport = "{sink.url()}"\nstarttls = false\n')
    export = tmp_path / "rekisteri.csv"
    export.write_bytes(REGISTER.encode("utf-8-sig"))
    assert run_maild("members", "import", str(export), "--config", str(running.config)).returncode == 0
    with smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
        client.sendmail("matti@example.fi", ["jasenpalvelu@liitto.fi"], mail(subject="Osoitteenmuutos", sender="matti@example.fi"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        notices = [email.message_from_bytes(r.data, policy=email.policy.default) for r in list(sink.received)]
        notice = next((m for m in notices if m["To"] == "tiina@liitto.fi"), None)
        if notice is not None:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("no staff notification")
    text = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Jäsennumero:   1001" in text and "Osasto:        Tampereen osasto" in text
    with Session(App(load_settings(str(running.config))).engine) as session:
        assert session.exec(select(Ticket.queue)).all() == ["tampere"]


def test_a_member_removed_while_the_ticket_is_filed_leaves_it_unlinked(app: App) -> None:
    """An import on another connection may remove the member between lookup and link: the
    ticket is filed without the link, never lost (the link has a savepoint of its own)."""
    from maild.core.members import Link, Member as Found

    load(app, REGISTER)
    deliver(app, mail(subject="Yksi", sender="outo@example.com"))
    with Session(app.engine) as session:
        ticket = session.exec(select(Ticket)).one()
        gone = Found("1001", "matti@example.fi", {}, id=999_999)
        assert store_members.link_ticket(session, ticket, Link(gone, "address")) is None
        ticket.subject = "Yhä tallessa"
        session.add(ticket)
        session.commit()
    assert show(app, 1)["subject"] == "Yhä tallessa" and show(app, 1)["member"] is None
