"""The command line as users and MTAs call it (docs/commands.md), in real subprocesses."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import run_maild
from tests.mailgen import mail

TICKET_KEYS = {"number", "tag", "subject", "status", "queue", "priority", "category", "requester",
               "assignee", "created_at", "updated_at", "message_count"}
MESSAGE_KEYS = {"direction", "kind", "from", "to", "subject", "message_id", "date", "text"}
QUARANTINE_KEYS = {"id", "kind", "reason", "received_at", "from", "subject", "size"}


def cli(config: Path, *args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    return run_maild(*args, "--config", str(config), input=input)


def test_init_writes_a_working_instance(tmp_path: Path) -> None:
    target = tmp_path / "liitto"
    result = run_maild("init", str(target))
    assert result.returncode == 0, result.stderr
    assert (target / "maild.toml").is_file() and (target / "rules.yaml").is_file()
    assert "secret_key" in (target / "maild.toml").read_text()
    check = run_maild("--config", str(target / "maild.toml"), "check")
    assert check.returncode == 0, check.stderr
    ingest = run_maild("--config", str(target / "maild.toml"), "ingest", input=mail(subject="Hei"))
    assert ingest.returncode == 0, ingest.stderr
    assert (target / "var" / "maild.db").is_file()


def test_ingest_pipe_then_list_and_show_json(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url)
    first = mail(subject="Jäsenmaksu", body="Paljonko jäsenmaksu on?")
    assert cli(config, "ingest", "--recipient", "jasenpalvelu@liitto.fi", input=first).returncode == 0
    reply_file = config.parent / "reply.eml"
    reply_file.write_bytes(mail(subject="VS: [JP#1] Jäsenmaksu", body="Kiitos!"))
    assert cli(config, "ingest", str(reply_file)).returncode == 0

    listed = json.loads(cli(config, "tickets", "list", "--json").stdout)
    assert len(listed) == 1 and TICKET_KEYS <= set(listed[0])
    # the member's two mails, the ack, and the staff notifications of each
    assert listed[0]["tag"] == "[JP#1]" and listed[0]["message_count"] == 5

    shown = json.loads(cli(config, "tickets", "show", "1", "--json").stdout)
    assert TICKET_KEYS <= set(shown) and "events" in shown
    assert all(MESSAGE_KEYS <= set(m) for m in shown["messages"])
    incoming = [m for m in shown["messages"] if m["direction"] == "in"]
    assert [(m["kind"], m["text"]) for m in incoming] == [("member", "Paljonko jäsenmaksu on?"), ("member", "Kiitos!")]
    ack = next(m for m in shown["messages"] if m["direction"] == "out")
    assert ack["kind"] == "ack" and ack["to"] == ["matti@example.fi"] and "[JP#1]" in ack["subject"]

    assert json.loads(cli(config, "tickets", "list", "--status", "closed", "--json").stdout) == []
    assert len(json.loads(cli(config, "tickets", "search", "jäsenmaksu", "--json").stdout)) == 1
    assert json.loads(cli(config, "tickets", "search", "eiloydy", "--json").stdout) == []
    human = cli(config, "tickets", "list")
    assert human.returncode == 0 and "[JP#1]" in human.stdout.decode()


def test_ingest_exit_75_when_it_cannot_store(make_instance) -> None:  # type: ignore[no-untyped-def]
    config = make_instance("postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = cli(config, "ingest", input=mail())
    assert result.returncode == 75
    assert b"Traceback" not in result.stderr and b"could not store" in result.stderr or b"cannot store" in result.stderr


def test_ingest_of_several_files_stores_all_or_none(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """One commit for every file: a file that cannot be read leaves nothing stored (75, the MTA
    tries again), and nothing is half stored that the retry would file twice."""
    config = make_instance(sqlite_url)
    first, second = config.parent / "1.eml", config.parent / "2.eml"
    first.write_bytes(mail(subject="Jäsenmaksu"))
    second.write_bytes(mail(subject="Osoitteenmuutos"))
    failed = cli(config, "ingest", str(first), str(config.parent / "missing.eml"))
    assert failed.returncode == 75 and b"missing.eml: could not store" in failed.stderr
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM inbound")).scalar_one() == 0
    engine.dispose()
    stored = cli(config, "ingest", str(first), str(second))
    assert stored.returncode == 0, stored.stderr
    assert [row["subject"] for row in json.loads(cli(config, "tickets", "list", "--json").stdout)] == [
        "Osoitteenmuutos", "Jäsenmaksu"]


def test_quarantine_list_show_replay(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url)
    assert cli(config, "ingest", input=b"\r\n").returncode == 0  # stored, then quarantined
    assert cli(config, "ingest", input=mail(subject="Halpaa viagraa")).returncode == 0
    rows = json.loads(cli(config, "quarantine", "list", "--json").stdout)
    assert [(r["kind"], r["reason"]) for r in rows] == [("unparseable", "empty message"),
                                                       ("dropped", "dropped by rule: Roskaposti")]
    assert all(QUARANTINE_KEYS <= set(r) for r in rows)
    shown = cli(config, "quarantine", "show", str(rows[1]["id"]), "--raw")
    assert b"Subject: Halpaa viagraa" in shown.stdout
    replay = cli(config, "quarantine", "replay", str(rows[1]["id"]))
    assert replay.returncode == 0 and b"quarantined:dropped" in replay.stdout
    assert cli(config, "quarantine", "replay", "999").returncode == 1


def test_errors_are_one_line_without_traceback(tmp_path: Path, make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.toml"
    bad.write_text('[smtp]\nlisten = "x"\n')
    result = run_maild("--config", str(bad), "tickets", "list")
    assert result.returncode != 0 and result.stderr.decode().startswith(f"{bad}:2: smtp.listen")
    assert b"Traceback" not in result.stderr
    config = make_instance(sqlite_url)
    assert cli(config, "db", "upgrade").returncode == 0  # a read-only command never creates the database
    missing = cli(config, "tickets", "show", "42")
    assert missing.returncode == 1 and missing.stderr.decode().strip() == "maild: no ticket 42"


def test_check_reports_bad_rules_with_line(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url, rules="queues:\n  a:\n    name: A\n    address: a@liitto.fi\n    default: true\n    bogus: 1\n")
    result = cli(config, "check")
    assert result.returncode == 1
    assert "rules.yaml:6:" in result.stderr.decode()


def test_run_refuses_to_start_on_bad_rules(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url, rules="queues: [\n")
    result = cli(config, "run")
    assert result.returncode == 1 and b"rules.yaml:" in result.stderr and b"Traceback" not in result.stderr


RULES_TEST_KEYS = {"classification", "queue", "priority", "category", "assignee", "ack", "ack_reason", "matched_rules"}


def test_rules_test_explains_and_changes_nothing(make_instance, sqlite_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url)
    resignation = tmp_path / "ero.eml"
    resignation.write_bytes(mail(subject="Eroilmoitus", body="Haluan erota liitosta."))
    result = cli(config, "rules", "test", str(resignation), "--json")
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert RULES_TEST_KEYS <= set(decision)
    assert (decision["classification"], decision["queue"], decision["priority"], decision["category"]) == (
        "normal", "jasenasiat", "high", "eroaminen")
    assert decision["ack"] == "ack" and [hit["name"] for hit in decision["matched_rules"]] == ["Eroamiset"]
    assert decision["matched_rules"][0]["actions"] == {"priority": "high", "category": "eroaminen"}
    invoice = tmp_path / "lasku.eml"
    invoice.write_bytes(mail(subject="Lasku", headers={"Auto-Submitted": "auto-replied"}))
    decision = json.loads(cli(config, "rules", "test", str(invoice), "--json").stdout)
    assert (decision["classification"], decision["queue"], decision["assignee"], decision["ack"]) == (
        "auto_reply", "laskutus", "round-robin", False)
    assert decision["ack_reason"].startswith("auto_reply")
    human = cli(config, "rules", "test", str(resignation)).stdout.decode()
    assert "Eroamiset" in human and "priority: high" in human
    assert not (config.parent / "var" / "maild.db").exists()  # nothing was stored


def test_shell_operations_and_members_show(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url)
    for subject in ("Jäsenmaksu", "Osoitteenmuutos"):
        assert cli(config, "ingest", input=mail(subject=subject)).returncode == 0
    assert cli(config, "tickets", "assign", "1", "maija@liitto.fi", "--as", "lead@liitto.fi").returncode == 0
    refused = cli(config, "tickets", "assign", "1", "stranger@example.com")
    assert refused.returncode == 1 and b"not staff" in refused.stderr
    assert cli(config, "tickets", "note", "1", "Soitettu jäsenelle").returncode == 0
    assert cli(config, "tickets", "close", "1").returncode == 0
    shown = json.loads(cli(config, "tickets", "show", "1", "--json").stdout)
    assert (shown["status"], shown["assignee"]) == ("resolved", "maija@liitto.fi")
    assert [m["kind"] for m in shown["messages"]][-2:] == ["note", "resolved"]
    assigned = next(e for e in shown["events"] if e["kind"] == "assigned")
    assert assigned["actor"] == "lead@liitto.fi"
    assert cli(config, "tickets", "reopen", "1").returncode == 0
    assert json.loads(cli(config, "tickets", "show", "1", "--json").stdout)["status"] == "open"
    assert cli(config, "tickets", "close", "2").returncode == 0
    member = json.loads(cli(config, "members", "show", "matti@example.fi", "--json").stdout)
    assert [(t["number"], t["status"]) for t in member["tickets"]] == [(1, "open"), (2, "resolved")]


def test_jobs_list_and_run_at_a_time(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url)
    assert cli(config, "ingest", input=mail(subject="Osoitteenmuutos")).returncode == 0
    listed = json.loads(cli(config, "jobs", "list", "--json", "--at", "2099-01-07T12:00").stdout)
    assert [row["job"] for row in listed] == ["staff_reminder", "escalation", "member_reminder", "auto_resolve", "close", "digest",
                                           "weekly_report", "retention"]
    assert len(listed[0]["due_now"]) == 1
    dry = json.loads(cli(config, "jobs", "run", "staff_reminder", "--at", "2099-01-07T12:00", "--dry-run", "--json").stdout)
    assert dry["dry_run"] is True and len(dry["jobs"]["staff_reminder"]) == 1
    done = json.loads(cli(config, "jobs", "run", "--at", "2099-01-07T12:00", "--json").stdout)
    assert len(done["jobs"]["staff_reminder"]) == 1 and len(done["jobs"]["escalation"]) == 1
    again = json.loads(cli(config, "jobs", "run", "--at", "2099-01-07T12:30", "--json").stdout)
    assert again["jobs"]["staff_reminder"] == [] and again["jobs"]["escalation"] == []
    assert cli(config, "jobs", "run", "nonsense").returncode == 1


def test_tickets_list_filters_by_queue_and_assignee(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url)
    for subject in ("Lasku on väärin", "Osoitteenmuutos"):  # laskutus (round-robin: lasse), jasenasiat
        assert cli(config, "ingest", input=mail(subject=subject)).returncode == 0
    by_queue = json.loads(cli(config, "tickets", "list", "--queue", "laskutus", "--json").stdout)
    assert [(t["number"], t["queue"]) for t in by_queue] == [(1, "laskutus")]
    by_assignee = json.loads(cli(config, "tickets", "list", "--assignee", "LASSE@liitto.fi", "--json").stdout)
    assert [t["number"] for t in by_assignee] == [1]
    assert [t["number"] for t in json.loads(cli(config, "tickets", "list", "--json").stdout)] == [2, 1]  # newest first


def test_check_reads_every_secret_the_configuration_names(make_instance, sqlite_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url, extra=textwrap.dedent(f"""
        [outbound]
        transport = "smtp://127.0.0.1:2"
        username = "jasenpalvelu@liitto.fi"
        password_file = "{tmp_path}/no-such-password"

        [[imap]]
        name = "jasenpalvelu"
        host = "127.0.0.1"
        username = "jasenpalvelu@liitto.fi"
        password_env = "MAILD_TEST_UNSET_IMAP_PASSWORD"
        """))
    result = cli(config, "check")
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "outbound: password_file" in stderr and "no-such-password" in stderr
    assert "imap jasenpalvelu: environment variable MAILD_TEST_UNSET_IMAP_PASSWORD is not set" in stderr
    (tmp_path / "no-such-password").write_text("salasana\n")
    config.write_text(config.read_text().replace('password_env = "MAILD_TEST_UNSET_IMAP_PASSWORD"', 'password = "x"'))
    assert cli(config, "check").returncode == 0
