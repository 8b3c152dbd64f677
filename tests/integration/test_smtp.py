"""The SMTP listener of a real `maild run`, spoken to with smtplib over loopback."""

from __future__ import annotations

import json
import signal
import smtplib
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import run_maild
from tests.mailgen import mail


def tickets(config: Path) -> list[dict]:
    result = run_maild("tickets", "list", "--json", "--config", str(config))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for(predicate, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def send(port: int, raw: bytes, rcpts: list[str] | None = None, sender: str = "matti@example.fi") -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail(sender, rcpts or ["jasenpalvelu@liitto.fi"], raw)


def test_mail_becomes_ticket_and_tagged_reply_joins_it(daemon) -> None:  # type: ignore[no-untyped-def]
    running = daemon()
    with smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
        code, reply = client.ehlo()
        assert code == 250 and b"SMTPUTF8" in reply and b"8BITMIME" in reply
        client.sendmail("matti@example.fi", ["jasenpalvelu@liitto.fi"], mail(subject="Osoitteenmuutos"))
    listed = wait_for(lambda: tickets(running.config))
    assert [(t["tag"], t["subject"], t["status"]) for t in listed] == [("[JP#1]", "Osoitteenmuutos", "new")]
    send(running.port, mail(subject="Re: [JP#1] Osoitteenmuutos", body="Unohdin postinumeron."))
    wait_for(lambda: tickets(running.config)[0]["message_count"] == 5)  # 2 from the member, ack, 2 notifications
    assert len(tickets(running.config)) == 1


def test_foreign_recipient_domain_is_refused(daemon) -> None:  # type: ignore[no-untyped-def]
    running = daemon()
    with smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
        client.ehlo()
        client.mail("spammer@example.com")
        code, message = client.rcpt("victim@example.com")
        assert code == 550 and b"Relaying denied" in message
        assert client.rcpt("jasenpalvelu@LIITTO.FI")[0] == 250


def test_oversize_message_gets_552(daemon) -> None:  # type: ignore[no-untyped-def]
    running = daemon()
    big = mail(body="x" * 2_100_000)
    with pytest.raises(smtplib.SMTPException) as caught:
        send(running.port, big)
    assert "552" in str(caught.value)


def test_smtputf8_and_8bit_bodies_are_accepted(daemon) -> None:  # type: ignore[no-untyped-def]
    running = daemon()
    raw = (
        "From: Jörö <jörö@esimerkki.fi>\r\nTo: jasenpalvelu@liitto.fi\r\nSubject: Jäsenyys päättyy\r\n"
        "Message-ID: <utf8@esimerkki.fi>\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nHyvää päivää, äöå.\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
        client.ehlo()
        client.sendmail("jörö@esimerkki.fi", ["jasenpalvelu@liitto.fi"], raw, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    listed = wait_for(lambda: tickets(running.config))
    assert listed[0]["subject"] == "Jäsenyys päättyy" and listed[0]["requester"] == "jörö@esimerkki.fi"
    shown = json.loads(run_maild("tickets", "show", "1", "--json", "--config", str(running.config)).stdout)
    assert shown["messages"][0]["text"] == "Hyvää päivää, äöå."


def test_storage_failure_answers_451_and_listener_stays_up(daemon) -> None:  # type: ignore[no-untyped-def]
    running = daemon()
    raw_dir = running.config.parent / "var" / "raw"
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    raw_dir.write_text("not a directory")  # the raw store cannot write: nothing may be acknowledged
    with pytest.raises(smtplib.SMTPDataError) as caught:
        send(running.port, mail(subject="Ei tallennu"))
    assert caught.value.smtp_code == 451
    raw_dir.unlink()
    send(running.port, mail(subject="Nyt tallentuu"))
    assert [t["subject"] for t in wait_for(lambda: tickets(running.config))] == ["Nyt tallentuu"]


def test_concurrent_clients_every_message_stored_exactly_once(daemon) -> None:  # type: ignore[no-untyped-def]
    running = daemon()
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", running.port, timeout=60) as smtp:
                for i in range(10):
                    smtp.sendmail("m@example.fi", ["jasenpalvelu@liitto.fi"], mail(subject=f"Asia {n}-{i}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    listed = wait_for(lambda: (lambda t: t if len(t) == 80 else None)(tickets(running.config)))
    assert sorted(t["number"] for t in listed) == list(range(1, 81))
    assert len({t["subject"] for t in listed}) == 80


def test_sigterm_exits_zero_and_restart_processes_what_was_spooled(daemon) -> None:  # type: ignore[no-untyped-def]
    running = daemon()
    for i in range(5):
        send(running.port, mail(subject=f"Ennen pysäytystä {i}", sender=f"jasen{i}@example.fi"))
    assert running.stop(signal.SIGTERM) == 0
    assert "stopped" in running.log.read_text()
    running.start()
    listed = wait_for(lambda: (lambda t: t if len(t) == 5 else None)(tickets(running.config)))
    assert all(t["message_count"] == 3 for t in listed)  # the member's mail, its ack, the staff notification


def test_sigkill_after_250_loses_nothing(daemon) -> None:  # type: ignore[no-untyped-def]
    running = daemon()
    for i in range(20):
        send(running.port, mail(subject=f"Ennen kaatumista {i}"))
    running.stop(signal.SIGKILL)
    running.start()
    listed = wait_for(lambda: (lambda t: t if len(t) == 20 else None)(tickets(running.config)))
    assert sorted(t["subject"] for t in listed) == sorted(f"Ennen kaatumista {i}" for i in range(20))


def test_hostile_messages_over_smtp_each_get_a_result(daemon) -> None:  # type: ignore[no-untyped-def]
    running = daemon()
    long_line = b"From: a@example.fi\r\nSubject: Pitka rivi\r\nMessage-ID: <long@x>\r\n\r\n" + b"a" * 100_000 + b"\r\n"
    nul = b"From: b@example.fi\r\nSubject: NUL\x00tavu\r\nMessage-ID: <nul@x>\r\n\r\nteksti\x00jossa nul\r\n"
    no_headers = b"just some text without any header at all\r\n"
    empty_body = b"From: c@example.fi\r\nSubject: Tyhja\r\n\r\n"
    for raw in (long_line, nul, no_headers, empty_body):
        send(running.port, raw)
    listed = wait_for(lambda: (lambda t: t if len(t) == 3 else None)(tickets(running.config)))
    assert sorted(t["subject"] for t in listed) == ["NULtavu", "Pitka rivi", "Tyhja"]
    kept = json.loads(run_maild("quarantine", "list", "--json", "--config", str(running.config)).stdout)
    assert [(k["kind"], k["reason"]) for k in kept] == [("unparseable", "no headers")]


def test_sighup_reloads_rules_and_a_broken_file_keeps_the_old_ones(daemon) -> None:  # type: ignore[no-untyped-def]
    running = daemon()
    rules = running.config.parent / "rules.yaml"
    original = rules.read_text()
    rules.write_text(original + "  - name: Broken\n    if: {subject: {regex: '(a+)+'}}\n    then: {priority: low}\n")
    running.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "rules and templates not reloaded" in running.log.read_text())
    send(running.port, mail(subject="Eroilmoitus"))
    assert wait_for(lambda: tickets(running.config))[0]["priority"] == "high"  # the old rules still route
    rules.write_text(original.replace("then: {priority: high, category: eroaminen}", "then: {priority: urgent, category: eroaminen}"))
    running.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "rules reloaded" in running.log.read_text())
    send(running.port, mail(subject="Eroilmoitus toinen", sender="toinen@example.fi"))
    listed = wait_for(lambda: (lambda t: t if len(t) == 2 else None)(tickets(running.config)))
    assert [t["priority"] for t in sorted(listed, key=lambda t: t["number"])] == ["high", "urgent"]


# --- the spool's rows, written without a daemon ------------------------------------------------


def _pending_rows(count: int, paths: list[str] | None = None) -> list:  # type: ignore[type-arg]
    from maild.intake.spool import inbound_row
    from maild.mail import Envelope

    envelope = Envelope(source="smtp", mail_from="matti@example.fi", recipients=("jasenpalvelu@liitto.fi",))
    return [inbound_row(f"Subject: {i}\r\n\r\n".encode(), path, envelope)
            for i, path in enumerate(paths or [f"raw/2026/12/01/{i:05d}.eml" for i in range(count)])]


def test_spool_rows_of_a_big_batch_get_their_own_ids(db_url: str) -> None:
    """More rows than one page of insertmanyvalues: each id returned is its own row's."""
    import sqlalchemy as sa

    from maild.intake.spool import commit_rows
    from maild.store import db

    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        rows = _pending_rows(1200)
        ids = commit_rows(engine, rows)
        with engine.connect() as connection:
            stored = dict(connection.execute(sa.text("SELECT id, raw_path FROM inbound")).all())
        assert [stored[i] for i in ids] == [row.raw_path for row in rows]
    finally:
        engine.dispose()


def test_spool_rows_refused_by_the_check_are_not_committed(db_url: str) -> None:
    """A batch whose ids cannot be told apart (two rows name one file) is refused whole: the
    sender hears 451 and sends again, so a committed row would be filed twice."""
    import sqlalchemy as sa

    from maild.intake.spool import commit_rows
    from maild.store import db

    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        rows = _pending_rows(2, ["raw/2026/12/01/same.eml", "raw/2026/12/01/same.eml"])
        try:
            ids = commit_rows(engine, rows)
        except RuntimeError:
            ids = []
        with engine.connect() as connection:
            stored = connection.execute(sa.text("SELECT id FROM inbound ORDER BY id")).scalars().all()
        assert stored == ids
    finally:
        engine.dispose()


def test_no_spool_rows_commit_nothing(db_url: str) -> None:
    import sqlalchemy as sa

    from maild.intake.spool import commit_rows
    from maild.store import db

    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        assert commit_rows(engine, []) == []
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM inbound")).scalar_one() == 0
    finally:
        engine.dispose()
