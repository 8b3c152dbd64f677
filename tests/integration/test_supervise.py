"""Supervision of a real `maild run`: its parts survive a failing database and a vanished IMAP
server, a dead processor child is started again, and the daemon's health is in the
``components`` table (what `maild status` reads)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from maild.app import App
from maild.config import load_settings
from maild.daemon import run_sweeps
from maild.store import db, health
from maild.supervise import Health
from tests.conftest import PG_URL
from tests.integration.dovecot import Dovecot, children
from tests.integration.smtp_sink import Sink, smtp_sink  # noqa: F401  (fixture)
from tests.integration.test_imap import tickets_when
from tests.integration.test_smtp import send, wait_for
from tests.mailgen import mail

BUSY_TIMEOUT_SECONDS = 3  # the daemon's ?timeout=: how long a SQLite statement waits for a lock (30 s by default)


def components(url: str) -> dict[str, dict[str, Any]]:
    """This database's health rows, by component name (one daemon at a time here)."""
    engine = sa.create_engine(url)
    try:
        return {row["name"]: row for row in health.read(engine, datetime.now(timezone.utc))}
    finally:
        engine.dispose()


def component_when(url: str, name: str, condition: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """The component's row once it exists and meets ``condition``."""
    return wait_for(lambda: (lambda row: row if row and condition(row) else None)(components(url).get(name)))


def recovered(row: dict[str, Any]) -> bool:
    return bool(row["last_error_at"] and row["last_success_at"] and row["last_success_at"] > row["last_error_at"])


def query(url: str, sql: str) -> Any:
    """The one row of ``sql``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql).one()
    finally:
        engine.dispose()


def all_sent(url: str) -> int:
    """The number of mails sent, once every queued one is."""
    total, sent = query(url, "select count(*), sum(case when state = 'sent' then 1 else 0 end) from outbox")
    return sent if total and total == sent else 0


def first_mail_id(url: str) -> bytes:
    """The Message-ID header of the first mail sent (the one ``requeue_a_copy`` copies)."""
    (raw,) = query(url, "select raw from outbox where id = (select min(id) from outbox)")
    found = re.search(rb"^Message-ID: *(<[^>\r\n]+>)", bytes(raw), re.MULTILINE | re.IGNORECASE)
    assert found
    return found.group(1)


def copies_received(sink: Sink, message_id: bytes) -> int:
    """How many mails with this Message-ID the sink has (other mail, such as a digest that the
    sweeps queue meanwhile, does not count)."""
    return sum(1 for item in sink.handler.received
               if re.search(rb"^Message-ID: *" + re.escape(message_id), item.data, re.MULTILINE | re.IGNORECASE))


def outbound(sink: Sink) -> str:
    return f'\n[outbound]\ntransport = "{sink.url()}"\nstarttls = false\n'


def requeue_a_copy(conn: Any, due: str = "next_attempt_at") -> None:
    """Queue once more a copy of the first mail sent (on an open connection, in its transaction)."""
    columns = "ticket_id, message_id, kind, created_at, return_path, recipient, raw"
    conn.execute(f"insert into outbox ({columns}, state, attempts, next_attempt_at) "
                 f"select {columns}, 'queued', 0, {due} from outbox where id = (select min(id) from outbox)")


def test_the_sender_outlives_a_sqlite_lock_longer_than_the_busy_timeout(daemon, smtp_sink, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    sink = smtp_sink()
    running = daemon(f"{sqlite_url}?timeout={BUSY_TIMEOUT_SECONDS}", extra=outbound(sink))
    send(running.port, mail(subject="Ennen lukkoa"))
    sent = wait_for(lambda: all_sent(sqlite_url))  # the ack and the staff notifications
    assert len(sink.received) >= sent  # a digest the sweeps queue meanwhile may follow
    path = sqlite_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("begin exclusive")
        requeue_a_copy(conn)
        time.sleep(BUSY_TIMEOUT_SECONDS + 2)  # every statement of maild waits, then fails
        conn.execute("commit")
    copied = first_mail_id(sqlite_url)
    wait_for(lambda: copies_received(sink, copied) == 2)
    log = running.log.read_text()
    assert re.search(r"sender failed: OperationalError: database is locked; restart 1 in [\d.]+ s", log), log
    sender = component_when(sqlite_url, "sender", recovered)
    assert sender["last_error"] == "OperationalError: database is locked"
    assert sender["restarts"] == 1 and sender["running"]
    send(running.port, mail(subject="Lukon jälkeen"))  # and intake and processing work again
    wait_for(lambda: query(sqlite_url, "select count(*) from tickets") == (2,))


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # a schema of its own: counts below are absolute
def test_the_sender_outlives_postgresql_refusing_connections(daemon, smtp_sink, db_url: str) -> None:  # type: ignore[no-untyped-def]
    sink = smtp_sink()
    db.upgrade(db_url)  # maild migrates only SQLite by itself
    running = daemon(db_url, extra=outbound(sink))
    send(running.port, mail(subject="Ennen katkoa"))
    sent = wait_for(lambda: all_sent(db_url))
    assert len(sink.received) >= sent  # a digest the sweeps queue meanwhile may follow
    database = sa.engine.make_url(db_url).database
    maild_db = sa.create_engine(db_url)
    with maild_db.begin() as conn:  # due in 2 s: the database is gone by then
        requeue_a_copy(conn.connection.cursor(), due="now() + interval '2 seconds'")
    maild_db.dispose()
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'alter database "{database}" allow_connections false')
        conn.exec_driver_sql("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (database,))
        time.sleep(5)
        conn.exec_driver_sql(f'alter database "{database}" allow_connections true')
    admin.dispose()
    copied = first_mail_id(db_url)
    wait_for(lambda: copies_received(sink, copied) == 2)
    assert re.search(r"sender failed: OperationalError: .*; restart \d+ in [\d.]+ s", running.log.read_text())
    sender = component_when(db_url, "sender", recovered)
    assert "OperationalError" in sender["last_error"] and sender["restarts"] >= 1
    send(running.port, mail(subject="Katkon jälkeen"))  # and intake and processing work again
    wait_for(lambda: query(db_url, "select count(*) from tickets") == (2,))
    assert "database unavailable" in running.log.read_text()  # the processor waited out the outage ...
    assert components(db_url)["processor"]["restarts"] == 0  # ... instead of dying and being restarted


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    server = Dovecot.start()
    yield server
    server.stop()


def test_a_poller_whose_server_goes_away_reconnects_and_reports_it(own_dovecot: Dovecot, daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    box = own_dovecot.add_user()
    own_dovecot.append(box, mail(subject="Ennen katkoa"))
    running = daemon(extra=own_dovecot.imap_toml(box))
    tickets_when(running.config, 1)
    own_dovecot.halt()
    component_when(sqlite_url, "imap:jasenpalvelu", lambda row: row["last_error"])
    own_dovecot.resume()
    own_dovecot.append(box, mail(subject="Katkon jälkeen"))
    assert sorted(t["subject"] for t in tickets_when(running.config, 2)) == ["Ennen katkoa", "Katkon jälkeen"]
    assert re.search(r"mailbox jasenpalvelu: .*; reconnecting in [\d.]+ s", running.log.read_text())
    imap = component_when(sqlite_url, "imap:jasenpalvelu", recovered)
    assert imap["restarts"] == 0  # reconnected by itself, not started again


def processor_child(parent: int) -> int | None:
    """The pid of the spool processor, the daemon's child started by multiprocessing (None
    while there is none)."""
    for pid in children(parent):
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    return None


def test_a_killed_processor_is_started_again_without_new_mail_and_counted(daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    running = daemon()
    assert running.proc is not None
    child = wait_for(lambda: processor_child(running.proc.pid))
    os.kill(child, signal.SIGKILL)
    restarted = component_when(sqlite_url, "processor", lambda row: row["restarts"] == 1)
    assert restarted["last_error"] == "spool processor exited (code -9)"
    wait_for(lambda: processor_child(running.proc.pid) not in (None, child))  # started after its pause
    send(running.port, mail(subject="Uusi käsittelijä"))
    assert [t["subject"] for t in tickets_when(running.config, 1)] == ["Uusi käsittelijä"]


def test_heartbeat_while_running_and_stopped_after_a_clean_stop(daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    running = daemon()
    component_when(sqlite_url, "sweep:close", lambda row: row["last_success_at"])
    rows = components(sqlite_url)
    assert {"daemon", "listener", "processor", "sender", "scheduler"} <= set(rows)
    assert all(row["running"] and row["instance"].endswith(f":{running.proc.pid}") for row in rows.values())
    assert running.stop() == 0
    stopped = components(sqlite_url)
    assert not stopped["daemon"]["running"] and "stopped_at" in stopped["daemon"]["data"]
    running.start()
    assert running.proc is not None
    wait_for(lambda: {row["instance"].rsplit(":", 1)[1] for row in components(sqlite_url).values()} == {str(running.proc.pid)})


def test_a_failing_sweep_is_retried_after_its_own_backoff_and_the_scheduler_goes_on(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    app = App(load_settings(str(make_instance(sqlite_url))))
    db.upgrade(sqlite_url)
    path = sqlite_url.removeprefix("sqlite:///")

    def rename(old: str, new: str) -> None:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute(f"alter table {old} rename to {new}")

    async def go() -> Health:
        monitor = Health(app.engine)
        stopping = asyncio.Event()
        scheduler = monitor.track("scheduler")
        rename("tickets", "tickets_away")  # every sweep that reads tickets fails
        task = asyncio.create_task(run_sweeps(app, monitor, stopping, scheduler))
        while monitor.trackers.get("sweep:close") is None or not monitor.trackers["sweep:close"].failing:
            await asyncio.sleep(0.05)
        rename("tickets_away", "tickets")
        while monitor.trackers["sweep:close"].failing:  # tried again after its backoff (about a second)
            await asyncio.sleep(0.05)
        stopping.set()
        await task
        return monitor

    monitor = asyncio.run(go())
    close = monitor.trackers["sweep:close"].state
    assert close.last_error == "OperationalError: no such table: tickets"
    assert close.last_success_at and close.last_error_at and close.last_success_at > close.last_error_at
    assert monitor.trackers["scheduler"].state.restarts == 0 and not monitor.trackers["scheduler"].failing
