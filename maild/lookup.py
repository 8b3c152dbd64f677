"""``[members] lookup_command``: ask a register with an API who an address is (docs/coming.md#member-register).

The command is run without a shell, with the sender's address as its last argument, and
prints the member as one JSON object, or nothing (``null`` and ``{}`` too) for "not a
member". It gets ``lookup_timeout_seconds``; its answers, members and non-members alike, are
cached per address for ``lookup_cache_seconds`` in this process. A command that fails (exit
status, timeout, output that is not a JSON object) never stops intake: the answer is a
failure, the mail is filed unlinked, and the caller logs and counts it. Failures are not
cached, so the next mail from the address asks again.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from maild.core.members import Member, from_lookup

log = logging.getLogger("maild.members")

MAX_OUTPUT_BYTES = 1_000_000


@dataclass(frozen=True)
class Answer:
    member: Member | None
    error: str | None = None  # why the lookup failed; the mail is filed unlinked


class LookupCommand:
    """Runs the configured program, with a per-address cache."""

    def __init__(self, command: str, timeout: float = 5, cache_seconds: float = 3600,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.argv = shlex.split(command)
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: dict[str, tuple[float, Member | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, address: str) -> Answer:
        address = address.strip().lower()
        if not address or address.startswith("-"):  # never an option to the program
            return Answer(None)
        now = self.clock()
        with self._lock:
            cached = self._cache.get(address)
        if cached is not None and cached[0] > now:
            return Answer(cached[1])
        answer = self._run(address)
        if answer.error is None and self.cache_seconds > 0:
            with self._lock:
                if len(self._cache) > 100_000:
                    self._cache = {a: v for a, v in self._cache.items() if v[0] > now}
                self._cache[address] = (now + self.cache_seconds, answer.member)
        return answer

    def _run(self, address: str) -> Answer:
        try:
            proc = subprocess.Popen([*self.argv, address], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            return Answer(None, f"cannot run {self.argv[0]}: {exc.strerror or exc}")
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return Answer(None, f"no answer in {self.timeout:g} s")
        except BaseException:  # a message timeout: leave no child behind
            _kill(proc)
            raise
        if proc.returncode != 0:
            detail = err.decode("utf-8", "replace").strip().splitlines()
            return Answer(None, f"exit status {proc.returncode}" + (f": {detail[-1][:200]}" if detail else ""))
        if len(out) > MAX_OUTPUT_BYTES:
            return Answer(None, f"more than {MAX_OUTPUT_BYTES} bytes of output")
        text = out.decode("utf-8", "replace").strip()
        if not text:
            return Answer(None)
        try:
            return Answer(from_lookup(json.loads(text), address))
        except ValueError as exc:  # json.JSONDecodeError is one
            return Answer(None, f"not a JSON object: {exc}")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Stop the command and whatever it started (its own session), and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.communicate()
