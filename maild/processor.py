"""The spool processor: a child process of ``maild run`` that turns spool rows into tickets.

Parsing and persisting cost far more CPU than receiving, so they run in their own process
(the second core, and no contention for the GIL with the listener) at a lower priority:
under a burst, intake wins and the durable spool absorbs the backlog, which is processed
as soon as there is time. The parent marks each spool commit in a shared value (``wake``)
and talks to it over a pipe: ``reload`` with the rules text the parent validated on SIGHUP
(the child never reads a rules file itself: it may have changed since), ``stop`` at
shutdown (finish what is pending, then exit).

Contract 6, no one message holds up the others: the child shows in shared memory which
message it is on and since when (``Watch``). A watchdog thread in the parent kills a child
that has been on one message longer than ``[processing] message_timeout_seconds``,
quarantines that message and starts a new child. A child that died, whatever killed it (a
segfault in a C extension, the kernel's OOM killer), is started again by the daemon's
supervision (``restart_if_dead``). The attempt that died was counted in the database before
the work began, so a message that keeps killing the processor is quarantined by the child
after the third crash when it comes up again (``Pipeline.process``). Stopping from outside
works on anything, even C code that never looks at signals; so the child reads messages
with no in-process time limit of its own.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from maild import logs
from maild.app import App, TemplatesError
from maild.config import Settings
from maild.ingest import quarantine_error
from maild.read_ahead import ReadAhead
from maild.rules.loader import RulesError
from maild.store import db
from maild.supervise import Backoff, describe

log = logging.getLogger("maild.processor")

BATCH = 64
BUSY_BATCH = 2  # messages to a transaction while intake is busy (docs/architecture.md#benchmarks)
BUSY_AHEAD = 8  # ... claimed and read ahead at a time, for the transactions that follow
IDLE_RECHECK_SECONDS = 2.0  # also picks up `maild quarantine replay` from another process
WAKE_CHECK_SECONDS = 0.1
INTAKE_QUIET_SECONDS = 0.25  # intake counts as busy this long after its last commit
YIELD_SECONDS = 0.02  # longest pause between batches while intake is busy (docs/architecture.md#benchmarks)
COMMIT_POLL_SECONDS = 0.001
NICENESS = 5
OUTAGE_SECONDS = (0.5, 10.0)  # first pause and cap while the database is unreachable
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_SECONDS = 0.25  # how often the parent looks at what the child is on


class Watch:
    """What the child is on, in memory shared with the parent: an inbound id (0: none) and
    since when (``time.monotonic()``, one clock for every process on the machine).

    Two plain values and no lock: a child killed while holding a lock would hang the parent.
    The child writes the time before the id, the parent reads the id before the time, so a
    time read with an id is never older than that message's start: no message is ever
    judged overdue early.
    """

    def __init__(self, context: Any) -> None:
        self.inbound = context.Value("q", 0, lock=False)
        self.since = context.Value("d", 0.0, lock=False)

    @contextmanager
    def on(self, inbound_id: int) -> Iterator[None]:
        """In the child: processing ``inbound_id``."""
        self.since.value = time.monotonic()
        self.inbound.value = inbound_id
        try:
            yield
        finally:
            self.inbound.value = 0

    def overdue(self, limit: float) -> int | None:
        """In the parent: the message the child has been on for over ``limit`` seconds, if any."""
        inbound_id = self.inbound.value
        if inbound_id and time.monotonic() - self.since.value > limit:
            return int(inbound_id)
        return None

    def current(self) -> int:
        return int(self.inbound.value)

    def clear(self) -> None:
        self.inbound.value = 0


def serve(settings_data: dict[str, Any], rules_text: str, conn: Connection, last_intake: Synchronized,
          watch: Watch) -> None:
    """The child's main loop.

    Intake first: while mail is arriving (``last_intake`` is recent), file two messages a
    transaction, each right after the listener's latest commit, so that its commits seldom wait
    for the database; the durable spool holds the backlog, which goes at full speed afterwards.
    Either way the reader (``maild.read_ahead``) reads the next messages meanwhile; it is
    outside the parent's watch, and what it does not hand back in time this process reads.
    """
    ignore_signals_and_die_with_parent()
    settings = Settings.model_validate(settings_data)
    logs.configure(settings.log.level, settings.log.format)
    os.nice(NICENESS)
    app = App(settings)
    app.use_rules(rules_text)
    pipeline = app.pipeline
    pipeline.message_timeout = 0  # the parent bounds each message from outside (see the module docstring)
    pipeline.read_ahead_timeout = settings.processing.message_timeout_seconds
    reader = ReadAhead(multiprocessing.get_context("spawn"), rules_text, str(settings.rules_file),
                       pipeline.mailer.tag_prefix, pipeline.mailer.secret, settings.data_dir,
                       settings.log.level, settings.log.format)
    reader.start()
    try:
        stopping = False
        seen_intake = -1.0
        last_look = 0.0
        outage = Backoff(*OUTAGE_SECONDS)
        retry_at = 0.0  # while the database is away: when to try again (new intake means it is back)
        while True:
            now = time.monotonic()
            intake = last_intake.value
            due = now >= retry_at or intake != seen_intake
            if due and (intake != seen_intake or now - last_look >= IDLE_RECHECK_SECONDS or stopping):
                busy = _busy(intake, now) and not stopping
                try:
                    done = (pipeline.process_some(BUSY_BATCH, watch.on, reader, ahead=BUSY_AHEAD) if busy
                            else pipeline.process_some(BATCH, watch.on, reader))
                except OperationalError as exc:  # the database is away: wait for it, the spool keeps the mail
                    if stopping:
                        return
                    delay = outage.next()
                    log.error("database unavailable: %s; filing again in %.1f s", describe(exc), delay)
                    retry_at, seen_intake, done = now + delay, intake, 0
                else:
                    outage.reset()
                    retry_at = 0.0
                    last_look = now
                    if not done:
                        seen_intake = intake
                    elif busy:
                        _after_next_commit(last_intake, YIELD_SECONDS)
            else:
                done = 0
            timeout = 0.0 if done or stopping else WAKE_CHECK_SECONDS
            if conn.poll(timeout):
                try:
                    command = conn.recv()
                except EOFError:  # the parent is gone: whatever is pending waits for the next start
                    return
                if command == "stop":
                    stopping = True
                elif isinstance(command, tuple) and command[0] == "reload":
                    _reload(app, command[1])
                    reader.reload(app.rules_text)
            if stopping and not done:
                return
    finally:  # however it ends: a reader left behind would keep this process from exiting
        reader.stop()


def _busy(last_intake: float, now: float) -> bool:
    """Intake committed within ``INTAKE_QUIET_SECONDS`` (``time.monotonic()`` both)."""
    return now - last_intake < INTAKE_QUIET_SECONDS


def _after_next_commit(last_intake: Synchronized, longest: float) -> None:
    """While intake is busy: wait for its next commit (or ``longest`` seconds), then file at
    once, in the gap before the one after, so that intake seldom waits for the database."""
    mark, until = last_intake.value, time.monotonic() + longest
    while last_intake.value == mark and time.monotonic() < until:
        time.sleep(COMMIT_POLL_SECONDS)


def ignore_signals_and_die_with_parent(sigterm: bool = False) -> None:
    """For the processor and its reader: the parent decides when they stop (the reader also
    ends at SIGTERM, which is how multiprocessing stops it when the processor exits)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL if sigterm else signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: the kernel kills this child when the daemon dies (SIGKILL, OOM). Otherwise a child
    stuck on a message would run on for hours with no one to stop it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the pipe's EOF still ends an idle child
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before the request took effect
        os._exit(1)


def _reload(app: App, rules_text: str) -> None:
    """The rules the parent validated, and the templates (checked by the parent too)."""
    try:
        app.reload_rules(rules_text)
    except (RulesError, TemplatesError) as exc:
        for error in exc.errors:
            log.error("rules and templates not reloaded: %s", error)


class Processor:
    """The parent's handle on the child: start, wake, reload, stop, restart if it died; a
    watchdog thread replaces it when it is stuck on one message (see the module docstring)."""

    def __init__(self, settings: Settings, rules_text: str) -> None:
        self.settings_data = settings.model_dump()
        self.database_url = settings.database_url
        self.timeout = settings.processing.message_timeout_seconds
        self.rules_text = rules_text
        self._context = multiprocessing.get_context("spawn")
        self.last_intake = self._context.Value("d", 0.0, lock=False)  # time.monotonic() of the last commit
        self.watch = Watch(self._context)
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.RLock()  # the watchdog and the event loop both start children
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._engine: sa.Engine | None = None
        self._replacing = False  # a stuck child is being replaced: not dead for restart_if_dead

    def start(self) -> None:
        with self._lock:
            self._start_child()
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name="maild-processor-watchdog", daemon=True)
            self._watchdog.start()

    def _start_child(self) -> None:
        parent, child = self._context.Pipe()
        self.watch.clear()
        self._process = self._context.Process(
            target=serve, args=(self.settings_data, self.rules_text, child, self.last_intake, self.watch),
            name="maild-processor")
        self._process.start()
        child.close()
        self._conn = parent

    def _ensure_running(self) -> None:
        with self._lock:
            if self._process is None or not self._process.is_alive():
                log.error("spool processor exited (code %s); restarting it", self._process and self._process.exitcode)
                self._start_child()

    def _send(self, command: object) -> None:
        with self._lock:
            self._ensure_running()
            assert self._conn is not None
            try:
                self._conn.send(command)
            except (BrokenPipeError, OSError):
                log.error("spool processor unreachable; restarting it")
                self._start_child()

    def wake(self) -> None:
        """New mail is in the spool (and intake is busy): the child sees it within 0.1 s.
        Never waits: a dead child is for the daemon's supervision to restart (``restart_if_dead``)."""
        self.last_intake.value = time.monotonic()

    def intake_busy(self) -> bool:
        """Mail arrived within ``INTAKE_QUIET_SECONDS``."""
        return _busy(self.last_intake.value, time.monotonic())

    def reload(self, rules_text: str) -> None:
        self.rules_text = rules_text  # also what a restarted processor starts with
        self._send(("reload", rules_text))

    def stop(self, timeout: float) -> int | None:
        """Ask the child to finish pending messages and exit; return its exit code."""
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join()
        if self._process is None:
            return None
        if self._process.is_alive() and self._conn is not None:
            try:  # not _send: a child that has just died is not started again to be stopped
                self._conn.send("stop")
            except (BrokenPipeError, OSError):
                pass
            self._process.join(timeout)
            if self._process.is_alive():
                # it ignores SIGTERM (the parent decides when it stops): SIGKILL; the message it
                # was on stays pending, its attempt counted
                log.error("spool processor did not finish in %.0f s; killing it", timeout)
                self._process.kill()
                self._process.join()
        return self._process.exitcode

    def restart_if_dead(self) -> int | None:
        """Start the child again if it has exited (the daemon's watch: no wake may come for a
        while); returns the exit code it had, None while it runs or is being replaced."""
        process = self._process
        if self._replacing or (process is not None and process.is_alive()):
            return None
        on = self.watch.current()
        if on:
            log.error("spool processor died while on inbound message %s", on)
        self._ensure_running()
        return process.exitcode if process is not None else None

    def _watch(self) -> None:
        """The watchdog: every WATCH_SECONDS, a child stuck on one message is replaced."""
        while not self._stopping.wait(WATCH_SECONDS):
            stuck = self.watch.overdue(self.timeout)
            if stuck is not None:
                try:
                    self._replace_stuck(stuck)
                except Exception:  # the database may be away for a moment: the message comes up again
                    log.exception("spool processor watchdog")

    def _replace_stuck(self, inbound_id: int) -> None:
        """Kill the child stuck on ``inbound_id``, quarantine that message, start a new child.
        The lock is not held while the database is written: the event loop may want it."""
        with self._lock:
            process = self._process
            if process is None or self.watch.overdue(self.timeout) != inbound_id:
                return  # it moved on meanwhile
            log.error("message %s took over %g s; killing the spool processor and quarantining it",
                      inbound_id, self.timeout)
            self._replacing = True
            process.kill()
            process.join()
            self.watch.clear()
        try:
            outcome = quarantine_error(self._database(), inbound_id, f"took over {self.timeout:g} s")
            log.info("message %s: %s", inbound_id, outcome)
        finally:
            with self._lock:
                self._replacing = False
                self._start_child()

    def _database(self) -> sa.Engine:
        if self._engine is None:
            self._engine = db.make_engine(self.database_url)
        return self._engine
