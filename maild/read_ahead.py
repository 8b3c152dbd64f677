"""Reading the next batch in a process of its own while the spool processor files this one.

Reading (``maild.read``: parse, classify, threading keys, rules) is about a third of the
processor's work and needs no database, so under a backlog it runs a batch ahead on the second
core. It is only a way to go faster, never a second path for a message's fate: whatever the
reader does not give back (it failed on a message, died, took longer than
``message_timeout_seconds`` for the batch, was given new rules meanwhile, or the message is
big) the processor reads itself, as it would without it; so a message that crashes or hangs
the reader meets the processor's own watch and attempt count (``maild.processor``).
"""

from __future__ import annotations

import copyreg
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import MappingProxyType
from typing import Any

from maild.core.reading import Reading
from maild.mail import Envelope

log = logging.getLogger("maild.read_ahead")

# Readings hold read-only mappings (a rule hit's actions); they cross to the processor as the
# same mapping, read-only again
def _read_only(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


copyreg.pickle(MappingProxyType, lambda mapping: (_read_only, (dict(mapping),)))

BIG = 256 * 1024  # a message at least this big is read by the processor (its files are not copied across)


@dataclass(frozen=True)
class ToRead:
    """One claimed message, as the reader needs it."""

    id: int
    raw_path: str
    envelope: Envelope


class ReadAhead:
    """The processor's handle on its reader process: ``submit`` a batch, ``take`` its readings."""

    def __init__(self, context: Any, rules_text: str, rules_path: str, tag_prefix: str, secret: bytes,
                 data_dir: Path, log_level: str, log_format: str) -> None:
        self._context = context
        self._args = (rules_text, rules_path, tag_prefix, secret, str(data_dir), log_level, log_format)
        self._process: Any = None
        self._conn: Connection | None = None
        self._waiting = 0  # the number of the batch being read (0: none)
        self._sent = 0
        self.given = 0  # readings handed over so far (the rest the processor read itself)

    def start(self) -> None:
        """Start the reader (its imports take a moment: before there is a backlog to read)."""
        if self._process is not None and self._process.is_alive():
            return
        self.stop()  # one that died: its pipe closed, its process reaped
        parent, child = self._context.Pipe()
        self._process = self._context.Process(target=serve, args=(child, *self._args), name="maild-reader", daemon=True)
        self._process.start()
        child.close()
        self._conn = parent

    def submit(self, batch: Sequence[ToRead]) -> None:
        """Begin reading ``batch``; what an earlier batch was not taken is dropped."""
        self._waiting = 0
        if not batch:
            return
        try:
            self.start()
            assert self._conn is not None
            self._sent += 1
            self._conn.send((self._sent, list(batch)))
        except (OSError, ValueError):  # it died: the processor reads this batch itself
            self.stop()
            return
        self._waiting = self._sent

    def take(self, timeout: float) -> dict[int, Reading]:
        """The readings of the submitted batch, waiting up to ``timeout`` seconds for them; the
        messages missing from the answer are for the processor to read. A reader that does not
        answer in time is stopped (the next ``submit`` starts another)."""
        waiting, self._waiting = self._waiting, 0
        if not waiting or self._conn is None:
            return {}
        deadline = time.monotonic() + timeout
        try:
            while self._conn.poll(max(deadline - time.monotonic(), 0)):
                number, readings = self._conn.recv()
                if number == waiting:  # an earlier batch's answer, never taken, is passed over
                    self.given += len(readings)
                    return readings
        except (EOFError, OSError):
            pass
        log.warning("the reader gave no answer in %.0f s; the processor reads the batch itself", timeout)
        self.stop()
        return {}

    def reload(self, rules_text: str) -> None:
        self._args = (rules_text, *self._args[1:])
        self.stop()

    def stop(self) -> None:
        self._waiting = 0
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.kill()
            self._process.join()
            self._process = None


def _portable(reading: Reading) -> bool:
    """Whether a reading can cross to the processor: a big attachment is read again from the
    raw message whenever it is needed (``Attachment.content`` is then a function), so that
    message is for the processor to read."""
    parsed = getattr(reading, "parsed", None)
    return parsed is None or all(isinstance(item.content, bytes) for item in parsed.attachments)


def serve(conn: Connection, rules_text: str, rules_path: str, tag_prefix: str, secret: bytes, data_dir: str,
          log_level: str, log_format: str) -> None:
    """The reader's loop: a batch in, the readings of the messages it could read out."""
    from maild import logs
    from maild.processor import ignore_signals_and_die_with_parent
    from maild.read import read
    from maild.rules.loader import parse_rules

    ignore_signals_and_die_with_parent(sigterm=True)
    logs.configure(log_level, log_format)
    rules = parse_rules(rules_text, rules_path)
    root = Path(data_dir)
    while True:
        try:
            number, batch = conn.recv()
        except (EOFError, OSError):  # the processor is gone
            return
        readings: dict[int, Reading] = {}
        for item in batch:
            try:
                reading = read(root / item.raw_path, item.envelope, rules, tag_prefix, secret)
            except Exception:  # the processor reads it again, and quarantines it with the reason
                continue
            if _portable(reading):
                readings[item.id] = reading
        try:
            conn.send((number, readings))
        except Exception:  # not picklable after all: the processor reads the batch itself
            log.exception("readings of a batch could not be handed over")
            conn.send((number, {}))
