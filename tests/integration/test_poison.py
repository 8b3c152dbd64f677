"""Contract 6: no one message holds up the others, on a real `maild run` and `maild ingest`.

The slow input is real: a rules regex that passes the loader's checks but backtracks
exponentially, ``(a|aa)+b``, on a subject of 40 a's (hours of work). The crashes are real
too: the test SIGKILLs the processor child while it is on the message, as the kernel's OOM
killer or a segfault in a C extension would end it.
"""

from __future__ import annotations

import os
import signal
import smtplib
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, select

from maild.store.tables import Inbound, Quarantine, Ticket
from tests.conftest import RULES, Daemon, MakeInstance, run_maild
from tests.mailgen import mail

SLOW_RULES = RULES + """\
  - name: Hidas
    if: {subject: {regex: "(a|aa)+b"}}
    then: {priority: low}
"""
SLOW_SUBJECT = "a" * 40


def send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("matti@example.fi", ["jasenpalvelu@liitto.fi"], raw)


def wait_for(check: Callable[[], object], timeout: float = 60.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


def engine_of(url: str) -> sa.Engine:
    return sa.create_engine(url)


def quarantined(engine: sa.Engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return [(row.kind, row.reason) for row in session.exec(select(Quarantine))]


def subjects(engine: sa.Engine) -> list[str]:
    with Session(engine) as session:
        return [ticket.subject for ticket in session.exec(select(Ticket))]


def attempts(engine: sa.Engine) -> int:
    """Attempts at the first message in the spool."""
    with Session(engine) as session:
        row = session.exec(select(Inbound).order_by(Inbound.id)).first()  # type: ignore[arg-type]
        return row.attempts if row else 0


def processor_child(daemon: Daemon) -> int | None:
    """The pid of the daemon's spool processor (a multiprocessing 'spawn' child), if running."""
    assert daemon.proc is not None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        if parent == str(daemon.proc.pid) and b"spawn_main" in command:
            return int(entry.name)
    return None


def test_a_message_that_hangs_the_processor_is_quarantined_and_later_mail_is_filed(
    daemon: Callable[..., Daemon], sqlite_url: str,
) -> None:
    running = daemon(rules=SLOW_RULES, extra="\n[processing]\nmessage_timeout_seconds = 3\n")
    engine = engine_of(sqlite_url)
    send(running.port, mail(subject=SLOW_SUBJECT))
    send(running.port, mail(subject="Osoitteenmuutos"))
    wait_for(lambda: subjects(engine) == ["Osoitteenmuutos"], what="the mail behind the slow one filed")
    assert quarantined(engine) == [("error", "took over 3 s")]
    assert "took over 3 s; killing the spool processor" in running.log.read_text()
    send(running.port, mail(subject="Jäsenmaksu"))  # and the new child goes on
    wait_for(lambda: "Jäsenmaksu" in subjects(engine), what="mail after the restart filed")


def test_a_message_that_keeps_crashing_the_processor_is_quarantined_after_three_crashes(
    daemon: Callable[..., Daemon], sqlite_url: str,
) -> None:
    running = daemon(rules=SLOW_RULES)  # the default timeout: 60 s, longer than this test
    engine = engine_of(sqlite_url)
    send(running.port, mail(subject=SLOW_SUBJECT))
    for crash in (1, 2, 3):
        wait_for(lambda: attempts(engine) == crash, what=f"attempt {crash}")
        child = wait_for(lambda: processor_child(running), what="the processor child")
        os.kill(child, signal.SIGKILL)  # type: ignore[arg-type]
    send(running.port, mail(subject="Osoitteenmuutos"))
    wait_for(lambda: subjects(engine) == ["Osoitteenmuutos"], what="the mail behind the poison filed")
    assert quarantined(engine) == [("error", "crashed the processor 3 times")]
    assert attempts(engine) == 4  # three crashes, and the look that quarantined it
    assert running.log.read_text().count("spool processor died while on inbound message 1") == 3


def test_maild_ingest_bounds_the_time_of_a_message(make_instance: MakeInstance, sqlite_url: str,
                                                   tmp_path: Path) -> None:
    config = make_instance(sqlite_url, rules=SLOW_RULES, extra="\n[processing]\nmessage_timeout_seconds = 1\n")
    message = tmp_path / "slow.eml"
    message.write_bytes(mail(subject=SLOW_SUBJECT))
    started = time.monotonic()
    result = run_maild("--config", str(config), "ingest", "--recipient", "jasenpalvelu@liitto.fi", str(message))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert b"1: quarantined:error" in result.stderr
    assert quarantined(engine_of(sqlite_url)) == [("error", "took over 1 s")]


def test_the_processor_dies_with_the_daemon(daemon: Callable[..., Daemon], sqlite_url: str) -> None:
    """SIGKILL of `maild run` (the OOM killer, an operator) takes the child along, even while it
    is stuck on a message; the message stays pending, its attempt counted, for the next start."""
    running = daemon(rules=SLOW_RULES)
    engine = engine_of(sqlite_url)
    send(running.port, mail(subject=SLOW_SUBJECT))
    wait_for(lambda: attempts(engine) == 1, what="the processor on the message")
    child = wait_for(lambda: processor_child(running), what="the processor child")
    running.stop(signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{child}").exists() or b"Z" in _state(child), timeout=10,
             what="the child gone")
    with Session(engine) as session:
        assert [row.state for row in session.exec(select(Inbound))] == ["pending"]


def _state(pid: object) -> bytes:
    """The state letter in /proc/PID/stat (Z: a zombie, dead but not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return b"Z"
