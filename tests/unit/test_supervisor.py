"""The supervisor and the health records, in-process, on a real SQLite database."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from maild.store import db, health
from maild.supervise import Health, Supervisor, Tracker, describe


@pytest.fixture
def engine(sqlite_url: str) -> sa.Engine:
    db.upgrade(sqlite_url)
    return db.make_engine(sqlite_url)


def test_a_database_error_is_described_by_its_driver_message(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.OperationalError) as caught, engine.connect() as conn:
        conn.exec_driver_sql("select * from no_such_table where x = ?", ("secret parameter",))
    assert describe(caught.value) == "OperationalError: no such table: no_such_table"
    assert describe(ExceptionGroup("tasks", [ValueError("first"), KeyError("second")])) == "ValueError: first"


def test_a_failing_task_is_restarted_with_growing_pauses_and_counted(engine: sa.Engine, caplog: pytest.LogCaptureFixture) -> None:
    starts: list[float] = []

    async def flaky(tracker: Tracker) -> None:
        starts.append(asyncio.get_running_loop().time())
        if len(starts) <= 3:
            raise RuntimeError(f"failure {len(starts)}")
        tracker.ok()
        await stopping.wait()

    async def go() -> Tracker:
        supervisor = Supervisor(Health(engine), stopping, restart_seconds=(0.1, 10.0))
        task = supervisor.spawn("flaky", flaky)
        while len(starts) < 4:
            await asyncio.sleep(0.01)
        stopping.set()
        await task
        return supervisor.health.trackers["flaky"]

    stopping = asyncio.Event()
    with caplog.at_level(logging.ERROR, "maild.supervise"):
        tracker = asyncio.run(go())
    pauses = [later - earlier for earlier, later in zip(starts, starts[1:])]
    assert 0.05 <= pauses[0] <= 0.15 and 0.1 <= pauses[1] <= 0.25 and 0.2 <= pauses[2] <= 0.45
    assert tracker.state.restarts == 3 and tracker.state.last_error == "RuntimeError: failure 3"
    assert not tracker.failing  # it reported success after the last start
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [f"flaky failed: RuntimeError: failure {n}" for n in (1, 2, 3)]


def test_a_task_that_returns_before_stopping_is_started_again(engine: sa.Engine) -> None:
    runs = 0

    async def quits(tracker: Tracker) -> None:
        nonlocal runs
        runs += 1
        if runs > 1:
            await stopping.wait()

    async def go() -> Tracker:
        supervisor = Supervisor(Health(engine), stopping, restart_seconds=(0.01, 0.01))
        task = supervisor.spawn("quits", quits)
        while runs < 2:
            await asyncio.sleep(0.01)
        stopping.set()
        await task
        return supervisor.health.trackers["quits"]

    stopping = asyncio.Event()
    tracker = asyncio.run(go())
    assert tracker.state.restarts == 1 and tracker.state.last_error == "stopped by itself"


def test_health_is_written_read_back_and_a_stopped_daemon_pruned(engine: sa.Engine) -> None:
    async def go() -> Health:
        monitor = Health(engine)
        monitor.track("sender").failed(sa.exc.OperationalError("claim", {}, Exception("database is locked")))
        monitor.track("imap:jasenpalvelu").ok()
        assert await monitor.write()
        return monitor

    monitor = asyncio.run(go())
    now = datetime.now(timezone.utc)
    rows = {row["name"]: row for row in health.read(engine, now)}
    assert set(rows) == {"daemon", "sender", "imap:jasenpalvelu"}
    assert all(row["running"] and row["instance"] == monitor.instance for row in rows.values())
    assert rows["sender"]["last_error"] == "Exception: database is locked" and rows["sender"]["last_error_at"]
    assert rows["imap:jasenpalvelu"]["last_success_at"] and not rows["imap:jasenpalvelu"]["last_error"]
    assert not any(row["running"] for row in health.read(engine, now + health.STALE_AFTER + timedelta(seconds=1)))
    asyncio.run(monitor.close())
    assert not health.read(engine, now)[0]["running"]
    assert health.prune(engine, now) == [monitor.instance]
    assert health.read(engine, now) == []
