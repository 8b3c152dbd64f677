"""Supervision of ``maild run``'s long-running tasks, and the health they report.

Every task (sender, IMAP pollers, scheduler, the processor's and the listener's watches) runs
under ``Supervisor.spawn``: when it raises, or returns while maild is not stopping, the error
is logged and recorded, and the task is started again after an exponential backoff with
jitter (capped); restarts are counted. A task reports through its ``Tracker``: ``ok()`` after
work that succeeded (resetting the backoff), ``failed(error)`` for an error it handles itself.

``Health`` keeps every tracker in memory (updates cost nothing) and writes them to the
database (``maild.store.health``) from a thread of its own: within ``FLUSH_SECONDS`` of an
error, a restart or a recovery, and otherwise every ``HEARTBEAT_SECONDS``. A write that fails
(the database is what failed, often) is logged and tried again at the next beat; it never
stops or slows anything else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from maild.store import health as store
from maild.store.health import HEARTBEAT_SECONDS, ComponentHealth
from maild.store.tables import utcnow

log = logging.getLogger("maild.supervise")

RESTART_SECONDS = (1.0, 60.0)  # first delay, cap
FLUSH_SECONDS = 1.0


class Backoff:
    """Exponential delays with jitter: each is between half and all of base * 2**attempt."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self.attempts = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * 2**self.attempts)
        self.attempts += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempts = 0


def describe(error: BaseException | str) -> str:
    """One line for the log and the components table: a database error by its driver's
    message (without SQLAlchemy's statement and parameters), a task group by its first error."""
    if isinstance(error, str):
        return error
    if isinstance(error, BaseExceptionGroup) and error.exceptions:
        return describe(error.exceptions[0])
    if isinstance(error, sa.exc.DBAPIError) and error.orig is not None:
        error = error.orig
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stopping`` is set."""
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except asyncio.TimeoutError:
        pass


class Tracker:
    """One component's health, in memory; ``changed`` is told of errors, restarts and recoveries."""

    def __init__(self, name: str, changed: Callable[[], None] = lambda: None) -> None:
        self.state = ComponentHealth(name, utcnow())
        self.changed = changed

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def failing(self) -> bool:
        """The last report was an error."""
        state = self.state
        return state.last_error_at is not None and (state.last_success_at is None or state.last_success_at < state.last_error_at)

    def ok(self) -> None:
        """A success: written at once when it is the first or a recovery (``status`` and the
        metrics show it without waiting for the heartbeat), else with the next heartbeat."""
        recovered, first = self.failing, self.state.last_success_at is None
        self.state.last_success_at = utcnow()
        if recovered:
            log.info("%s: working again", self.name)
        if recovered or first:
            self.changed()

    def failed(self, error: BaseException | str) -> None:
        self.state.last_error = describe(error)
        self.state.last_error_at = utcnow()
        self.changed()

    def restarted(self) -> None:
        self.state.restarts += 1
        self.changed()


class Health:
    """Every component's tracker, and the heartbeat that writes them to the database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.trackers: dict[str, Tracker] = {}
        self._changed = asyncio.Event()
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health")  # one write at a time
        self.daemon = self.track(store.DAEMON)

    def track(self, name: str) -> Tracker:
        if name not in self.trackers:
            self.trackers[name] = Tracker(name, self._changed.set)
            self._changed.set()  # a new row to write
        return self.trackers[name]

    async def prune(self) -> None:
        """Forget stopped and dead daemons (at start; a failure only leaves their rows)."""
        try:
            gone = await asyncio.get_running_loop().run_in_executor(self._db, store.prune, self.engine, utcnow())
        except Exception as exc:
            log.warning("could not clear the health of earlier daemons: %s", describe(exc))
            return
        if gone:
            log.info("health of earlier daemons cleared: %s", ", ".join(gone))

    async def beat(self) -> None:
        """Write now, then on every change (at most once per ``FLUSH_SECONDS``) and otherwise
        every ``HEARTBEAT_SECONDS``; until cancelled."""
        while True:
            self._changed.clear()
            await self.write()
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await asyncio.wait_for(self._changed.wait(), HEARTBEAT_SECONDS - FLUSH_SECONDS)
            except asyncio.TimeoutError:
                pass

    async def write(self) -> bool:
        """Write every tracker now; False (logged) when the database would not take it."""
        self.daemon.ok()
        states = [ComponentHealth(**vars(tracker.state)) for tracker in self.trackers.values()]  # as of now
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._db, store.write, self.engine, self.instance, os.getpid(), states, utcnow())
        except Exception as exc:
            log.warning("could not write the heartbeat: %s", describe(exc))
            return False
        return True

    async def close(self) -> None:
        """The last write: this daemon stopped."""
        self.daemon.state.data["stopped_at"] = utcnow().isoformat()
        await self.write()
        self._db.shutdown(wait=False)


class Supervisor:
    """Runs long-running tasks and starts again any that fails, until ``stopping`` is set."""

    def __init__(self, health: Health, stopping: asyncio.Event, restart_seconds: tuple[float, float] = RESTART_SECONDS) -> None:
        self.health = health
        self.stopping = stopping
        self.restart_seconds = restart_seconds

    def spawn(self, name: str, run: Callable[[Tracker], Awaitable[None]]) -> asyncio.Task[None]:
        """Run ``run(tracker)`` as task ``name``, again after each failure."""
        return asyncio.create_task(self._keep(self.health.track(name), run), name=name)

    async def _keep(self, tracker: Tracker, run: Callable[[Tracker], Awaitable[None]]) -> None:
        backoff = Backoff(*self.restart_seconds)
        while True:
            started = utcnow()
            error: BaseException | str
            try:
                await run(tracker)
                error = "stopped by itself"
            except Exception as exc:
                error = exc
            if self.stopping.is_set():
                if isinstance(error, BaseException):
                    log.error("%s failed while stopping: %s", tracker.name, describe(error))
                    tracker.failed(error)
                return
            tracker.failed(error)
            if tracker.state.last_success_at is not None and tracker.state.last_success_at >= started:
                backoff.reset()  # it worked for a while: a new failure starts with a short pause
            delay = backoff.next()
            tracker.restarted()
            log.error("%s failed: %s; restart %d in %.1f s", tracker.name, describe(error), tracker.state.restarts, delay,
                      exc_info=error if isinstance(error, BaseException) and not isinstance(error, sa.exc.DBAPIError) else None)
            await pause(self.stopping, delay)
            if self.stopping.is_set():
                return
