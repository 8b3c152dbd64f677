"""The daemon's log (docs/operations.md): one line per message stored and per message filed, in JSON
when asked, with third-party chatter kept down."""

from __future__ import annotations

import io
import json
import logging
import smtplib
import time

import pytest

from maild import logs
from tests.mailgen import mail


def test_json_log_has_a_line_per_message_stored_and_filed(daemon) -> None:  # type: ignore[no-untyped-def]
    running = daemon(extra='\n[log]\nformat = "json"\n')
    with smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
        client.sendmail("matti@example.fi", ["jasenpalvelu@liitto.fi"], mail(subject="Loki", message_id="<loki@x>"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in running.log.read_text().splitlines() if line.startswith("{")]
        filed = [line for line in lines if line["message"] == "filed"]
        if filed:
            break
        time.sleep(0.3)
    stored = [line for line in lines if line["message"] == "stored"]
    assert len(stored) == 1 and stored[0]["source"] == "smtp" and stored[0]["message_id"] == "<loki@x>"
    assert stored[0]["size"] > 0 and stored[0]["level"] == "info"
    assert filed == [{**filed[0], "spool": stored[0]["spool"], "outcome": "new", "ticket": "[JP#1]"}]
    assert all(set(line) >= {"ts", "level", "logger", "message"} for line in lines)


@pytest.mark.parametrize("journald, stamped", [(False, True), (True, False)])
def test_text_lines_have_no_timestamp_under_journald(monkeypatch, journald: bool, stamped: bool) -> None:  # type: ignore[no-untyped-def]
    if journald:
        monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    else:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure("info", "text")
        stream = io.StringIO()
        root.handlers[0].stream = stream  # type: ignore[attr-defined]
        logging.getLogger("maild.test").info("filed", extra={"spool": 7, "outcome": "new", "ticket": "[JP#3]"})
        logging.getLogger("alembic.runtime").info("chatter")
        line = stream.getvalue()
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    assert line.strip().endswith("INFO maild.test: filed spool=7 outcome=new ticket=[JP#3]")
    assert line[:4].isdigit() is stamped and "chatter" not in line


def test_protocol_libraries_never_log_their_wire_even_at_debug() -> None:
    """aioimaplib's DEBUG lines carry AUTHENTICATE XOAUTH2 with the access token (docs/operations.md)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure("debug", "text")
        assert logging.getLogger("maild.imap").isEnabledFor(logging.DEBUG)
        for name in ("aioimaplib.aioimaplib", "aiosmtplib", "mail.log"):
            assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
        assert logging.getLogger("alembic").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
        logs.configure("info", "text")


def test_run_refuses_an_unknown_log_level(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import run_maild

    result = run_maild("--config", str(make_instance(sqlite_url)), "run", "--log-level", "loud")
    assert result.returncode == 1
    assert result.stderr.decode().strip() == "maild: --log-level 'loud': not one of debug, info, warning, error"
