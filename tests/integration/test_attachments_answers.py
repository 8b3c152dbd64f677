"""Attachments out of maild and the canned answers' listing (docs/coming.md#staff-daily-work), in real subprocesses."""

from __future__ import annotations

import json
import os
import pty
import stat
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

from tests.conftest import maild_env, run_maild

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def _with_attachments() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Matti Meikäläinen <matti@example.fi>"
    msg["To"] = "jasenpalvelu@liitto.fi"
    msg["Subject"] = "Palkkalaskelma liitteenä"
    msg["Message-ID"] = "<liite-1@example.fi>"
    msg.set_content("Hei, palkkalaskelmani liitteenä.")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="palkkalaskelma marraskuu.pdf")
    msg.add_attachment("nimi;jäsennumero\nMatti;123\n".encode("cp1252"), maintype="text", subtype="csv",
                       filename="tiedot.csv")
    return bytes(msg)


def cli(config: Path, *args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    return run_maild(*args, "--config", str(config), input=input)


def test_tickets_show_lists_attachments_and_get_writes_them_out(make_instance, sqlite_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url)
    assert cli(config, "ingest", input=_with_attachments()).returncode == 0
    shown = json.loads(cli(config, "tickets", "show", "1", "--json").stdout)
    member = next(m for m in shown["messages"] if m["kind"] == "member")
    assert [(a["filename"], a["content_type"], a["size"]) for a in member["attachments"]] == [
        ("palkkalaskelma marraskuu.pdf", "application/pdf", len(PDF)),
        ("tiedot.csv", "text/csv", len("nimi;jäsennumero\nMatti;123\n".encode("cp1252"))),
    ]
    assert all(m["attachments"] == [] for m in shown["messages"] if m is not member)
    pdf_id = member["attachments"][0]["id"]

    to_stdout = cli(config, "attachments", "get", str(pdf_id))
    assert to_stdout.returncode == 0 and to_stdout.stdout == PDF
    target = tmp_path / "out.pdf"
    to_file = cli(config, "attachments", "get", str(pdf_id), "--out", str(target))
    assert to_file.returncode == 0, to_file.stderr
    assert target.read_bytes() == PDF and stat.S_IMODE(os.stat(target).st_mode) == 0o600
    human = cli(config, "tickets", "show", "1").stdout.decode()
    assert f"attachment {pdf_id}: palkkalaskelma marraskuu.pdf (application/pdf, {len(PDF)} bytes)" in human
    assert f"maild attachments get {pdf_id} --out FILE" in human

    missing = cli(config, "attachments", "get", "999")
    assert missing.returncode == 1 and b"no attachment 999" in missing.stderr


def test_attachments_get_refuses_a_path_outside_the_data_directory(make_instance, sqlite_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    config = make_instance(sqlite_url)
    assert cli(config, "ingest", input=_with_attachments()).returncode == 0
    secret = tmp_path / "secret.txt"
    secret.write_text("not for you")
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        conn.execute("update attachments set path = ? where id = 1", (f"../../../{secret}",))
    result = cli(config, "attachments", "get", "1")
    assert result.returncode == 1 and b"outside the data directory" in result.stderr and b"not for you" not in result.stdout


def test_attachments_get_never_writes_an_attachment_to_a_terminal(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """An attachment is bytes from mail: on a terminal its escape sequences would be obeyed
    (contract 6: text from mail never reaches a terminal raw), so without --out on a terminal
    nothing is written and stderr says what to do."""
    msg = EmailMessage()
    msg["From"] = "matti@example.fi"
    msg["To"] = "jasenpalvelu@liitto.fi"
    msg["Subject"] = "Liite"
    msg.set_content("Liitteenä.")
    hostile = b"\x1b]52;c;cm0gLXJmIH4K\x07\x1b]0;owned\x07\x1b[2J"  # clipboard write, window title, clear screen
    msg.add_attachment(hostile, maintype="text", subtype="plain", filename="lue.txt")
    config = make_instance(sqlite_url)
    assert cli(config, "ingest", input=bytes(msg)).returncode == 0
    (attachment,) = [a for m in json.loads(cli(config, "tickets", "show", "1", "--json").stdout)["messages"]
                     for a in m["attachments"]]
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "maild", "attachments", "get", str(attachment["id"]),
                                 "--config", str(config)], stdout=terminal, stderr=subprocess.PIPE, timeout=60,
                                env=maild_env())
        os.close(terminal)
        seen = b""
        try:
            while chunk := os.read(controller, 4096):
                seen += chunk
        except OSError:  # the other end is closed: all of it was read
            pass
    finally:
        os.close(controller)
    assert b"\x1b" not in seen
    assert result.returncode == 1 and b"--out" in result.stderr
    assert cli(config, "attachments", "get", str(attachment["id"])).stdout == hostile  # to a pipe: the bytes as they are


def test_answers_list_shows_the_starter_set_in_three_languages(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url)
    listed = json.loads(cli(config, "answers", "list", "--json").stdout)
    assert {(a["name"], a["language"]) for a in listed} >= {
        (name, language) for name in ("jasenmaksu", "eroaminen", "jasenkortti", "yhteystiedot", "tyottomyyskassa")
        for language in ("fi", "sv", "en")}
    titles = {(a["name"], a["language"]): a["title"] for a in listed}
    assert titles["eroaminen", "fi"] == "Näin eroat liitosta"
    assert titles["eroaminen", "sv"] == "Så här utträder du ur förbundet"
    assert cli(config, "check").returncode == 0


def test_check_reports_a_rule_naming_a_missing_answer(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import RULES

    rules = RULES.replace("rules:\n", "rules:\n  - name: Kortti\n    if: {subject: {contains: kortti}}\n"
                          "    then: {answer: eiolemassa}\n", 1)
    assert "eiolemassa" in rules
    config = make_instance(sqlite_url, rules=rules)
    result = cli(config, "check")
    assert result.returncode != 0
    assert b"rule 'Kortti': no canned answer 'eiolemassa' in fi" in result.stderr + result.stdout
