"""The spool processor: a child process of ``maild run`` that turns spool rows into tickets.

Parsing and persisting cost far more CPU than receiving, so they run in their own process
(the second core, and no contention for the GIL with the listener) at a lower priority:
under a burst, intake wins and the durable spool absorbs the backlog, which is processed
as soon as there is time. The parent talks to it over a pipe: ``wake`` after each spool
commit, ``reload`` with the rules text the parent validated on SIGHUP (the child never
reads a rules file itself: it may have changed since), ``stop`` at shutdown (finish what is
pending, then exit).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from typing import Any

from maild.app import App, TemplatesError
from maild.config import Settings
from maild.rules.loader import RulesError

log = logging.getLogger("maild.processor")

BATCH = 16
IDLE_RECHECK_SECONDS = 2.0  # also picks up `maild quarantine replay` from another process
NICENESS = 5


def serve(settings_data: dict[str, Any], rules_text: str, conn: Connection) -> None:
    """The child's main loop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.nice(NICENESS)
    app = App(Settings.model_validate(settings_data))
    app.use_rules(rules_text)
    pipeline = app.pipeline
    stopping = False
    while True:
        done = pipeline.process_some(BATCH)
        timeout = 0.0 if done or stopping else IDLE_RECHECK_SECONDS
        while conn.poll(timeout):
            timeout = 0.0
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
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(target=serve, args=(self.settings_data, self.rules_text, child), name="maild-processor")
        self._process.start()
        child.close()
        self._conn = parent

    def _send(self, command: object) -> None:
        if self._process is None or not self._process.is_alive():
            log.error("spool processor exited (code %s); restarting it", self._process and self._process.exitcode)
            self.start()
        assert self._conn is not None
        try:
            self._conn.send(command)
        except (BrokenPipeError, OSError):
            log.error("spool processor unreachable; restarting it")
            self.start()

    def wake(self) -> None:
        self._send("wake")

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
