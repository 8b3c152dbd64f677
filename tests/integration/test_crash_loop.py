"""The crash test's quick variant: bench/crash_loop.py with a few SIGKILLs (the long run is
``python bench/crash_loop.py``, 100 kills)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO, maild_env
from tests.integration.dovecot import require_dovecot


def test_sigkills_lose_and_double_nothing() -> None:
    require_dovecot()  # IMAP is part of it: skipped without Dovecot, a failure on CI
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "crash_loop.py"), "--kills", "4", "--max-uptime", "1.5", "--rate", "4"],
        capture_output=True, text=True, timeout=300, env=maild_env(), cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("FIGURES "))
    figures = json.loads(line.removeprefix("FIGURES "))
    assert figures["kills"] == 4 and figures["smtp_accepted"] > 0 and figures["imap_appended"] > 0
    assert figures["ticket_messages"] > 0 and figures["quarantine_entries"] > 0 and figures["outbox_sent"] > 0
