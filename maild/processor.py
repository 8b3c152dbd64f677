"""The spool processor: a child process of ``maild run`` that turns spool rows into tickets.

Parsing and persisting cost far more CPU than receiving, so they run in their own process
(the second core, and no contention for the GIL with the listener) at a lower priority:
under a burst, intake wins and the durable spool absorbs the backlog, which is processed
as soon as there is time. The parent marks each spool commit in a shared value (``wake``)
and talks to it over a pipe: ``reload`` with the rules text the parent validated on SIGHUP
(the child never reads a rules file itself: it may have changed since), ``stop`` at
shutdown (finish what is pending, then exit).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from maild.app import App, TemplatesError
from maild.config import Settings
from maild.rules.loader import RulesError

log = logging.getLogger("maild.processor")

BATCH = 16
IDLE_RECHECK_SECONDS = 2.0  # also picks up `maild quarantine replay` from another process
WAKE_CHECK_SECONDS = 0.1
INTAKE_QUIET_SECONDS = 0.25  # intake counts as busy this long after its last commit
YIELD_SECONDS = 0.05  # pause between messages while intake is busy
NICENESS = 5


def serve(settings_data: dict[str, Any], rules_text: str, conn: Connection, last_intake: Synchronized) -> None:
    """The child's main loop.

    Intake first: while mail is arriving (``last_intake`` is recent), process one message
    at a time with pauses, so that the listener's commits never wait long for the
    database; the durable spool holds the backlog, which goes at full speed afterwards.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.nice(NICENESS)
    app = App(Settings.model_validate(settings_data))
    app.use_rules(rules_text)
    pipeline = app.pipeline
    stopping = False
    seen_intake = -1.0
    last_look = 0.0
    while True:
        now = time.monotonic()
        intake = last_intake.value
        if intake != seen_intake or now - last_look >= IDLE_RECHECK_SECONDS or stopping:
            busy = now - intake < INTAKE_QUIET_SECONDS and not stopping
            done = pipeline.process_some(1 if busy else BATCH)
            last_look = now
            if not done:
                seen_intake = intake
            elif busy:
                time.sleep(YIELD_SECONDS)
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
        if stopping and not done:
            return


def _reload(app: App, rules_text: str) -> None:
    """The rules the parent validated, and the templates (checked by the parent too)."""
    try:
        app.reload_rules(rules_text)
    except (RulesError, TemplatesError) as exc:
        for error in exc.errors:
            log.error("rules and templates not reloaded: %s", error)


class Processor:
    """The parent's handle on the child: start, wake, reload, stop, restart if it died."""

    def __init__(self, settings: Settings, rules_text: str) -> None:
        self.settings_data = settings.model_dump()
        self.rules_text = rules_text
        self._context = multiprocessing.get_context("spawn")
        self.last_intake = self._context.Value("d", 0.0, lock=False)  # time.monotonic() of the last commit
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(target=serve, args=(self.settings_data, self.rules_text, child, self.last_intake), name="maild-processor")
        self._process.start()
        child.close()
        self._conn = parent

    def _ensure_running(self) -> None:
        if self._process is None or not self._process.is_alive():
            log.error("spool processor exited (code %s); restarting it", self._process and self._process.exitcode)
            self.start()

    def _send(self, command: object) -> None:
        self._ensure_running()
        assert self._conn is not None
        try:
            self._conn.send(command)
        except (BrokenPipeError, OSError):
            log.error("spool processor unreachable; restarting it")
            self.start()

    def wake(self) -> None:
        """New mail is in the spool (and intake is busy): the child sees it within 0.1 s."""
        self._ensure_running()
        self.last_intake.value = time.monotonic()

    def reload(self, rules_text: str) -> None:
        self.rules_text = rules_text  # also what a restarted processor starts with
        self._send(("reload", rules_text))

    def stop(self, timeout: float) -> int | None:
        """Ask the child to finish pending messages and exit; return its exit code."""
        if self._process is None:
            return None
        if self._process.is_alive():
            self._send("stop")
            self._process.join(timeout)
            if self._process.is_alive():
                log.error("spool processor did not finish in %.0f s; terminating it", timeout)
                self._process.terminate()
                self._process.join()
        return self._process.exitcode

    def restart_if_dead(self) -> int | None:
        """Start the child again if it has exited (the daemon's watch: no wake may come for a
        while); returns the exit code it had, None while it runs."""
        process = self._process
        if process is not None and process.is_alive():
            return None
        self._ensure_running()
        return process.exitcode if process is not None else None
