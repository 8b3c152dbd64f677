"""Running an atheris target, optionally without stopping at the first finding.

libFuzzer ends a run at the first uncaught exception. For long runs that is wasteful: a bug
that is already known stops the search for the next one. With ``MAILD_FUZZ_FINDINGS=DIR``
an exception is recorded instead (one input and traceback per distinct place it was raised,
``DIR/<signature>.eml`` and ``.txt``) and the run goes on; hangs and memory blow-ups still
end the run (``-timeout``, ``-rss_limit_mb``) and leave libFuzzer's own artifact.
"""

from __future__ import annotations

import hashlib
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import atheris

Target = Callable[[bytes], None]


def signature(exc: BaseException) -> str:
    """Where an exception came from: its type and the innermost frame, stable across inputs."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
    return hashlib.sha1(f"{type(exc).__name__}@{where}".encode()).hexdigest()[:12]


def recording(target: Target, findings: Path) -> Target:
    """``target`` that files every exception under ``findings`` instead of raising it."""
    findings.mkdir(parents=True, exist_ok=True)

    def run(data: bytes) -> None:
        try:
            target(data)
        except Exception as exc:
            name = signature(exc)
            report = findings / f"{name}.txt"
            if not report.exists():
                (findings / f"{name}.eml").write_bytes(data)
                report.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
                print(f"FINDING {name}: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr, flush=True)

    return run


def fuzz(target: Target) -> None:
    """Hand ``target`` to libFuzzer with the command-line arguments."""
    findings = os.environ.get("MAILD_FUZZ_FINDINGS")
    atheris.Setup(sys.argv, recording(target, Path(findings)) if findings else target)
    atheris.Fuzz()
