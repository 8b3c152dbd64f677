"""HTML-to-text and quote cutting finish in time linear in their input (docs/guarantees.md: no one
message holds up the others).

Each example repeats a hostile pattern to about ``SIZE`` characters and must finish within a
CPU-time budget that a linear pass meets many times over, while a quadratic one (the 30 KB
``<a <a <a`` that took 20 s) overruns it by far. CPU time, not wall time, so that a busy
machine does not fail the test; over budget, the work is interrupted (SIGPROF), so a
regression fails in seconds rather than hanging. No shrinking: each try would cost a budget.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from maild.core.html_text import html_to_text
from maild.core.reply_text import answer_text
from tests.hostile import HTML_BITS, examples, mail_text

SIZE = 40_000
BUDGET_SECONDS = 1.0 + SIZE * 40e-6  # 2.6 s of CPU for 40 KB; a linear pass takes well under 1 s

QUOTE_BITS = ["To: x\n", "From: a\n", "> ", ">\n", "\n", "On Mon, 1 Dec 2026 Matti wrote:\n", "-- \n",
              "-----Original Message-----\n", "Lähettäjä: a\n", "_____\n", "x" * 50 + "\n", " ", "Sent from my iPhone\n"]


class OverBudget(BaseException):  # not an Exception: the code under test may catch those
    pass


@contextmanager
def cpu_budget(seconds: float) -> Iterator[None]:
    """Raise OverBudget in the work when it has used ``seconds`` of CPU (not pytest-timeout's SIGALRM)."""
    def stop(signum: int, frame: object) -> None:
        raise OverBudget(f"over {seconds:.1f} s of CPU")

    previous = signal.signal(signal.SIGPROF, stop)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def repeated(pieces: list[str], filler: str) -> str:
    unit = "".join(pieces) or "x"
    return (unit * (SIZE // len(unit) + 1))[:SIZE] + filler


def check_linear(work: Callable[[str], str], text: str) -> None:
    start = time.process_time()
    with cpu_budget(BUDGET_SECONDS):
        work(text)
    assert time.process_time() - start < BUDGET_SECONDS


timed = settings(max_examples=examples(8), phases=[Phase.explicit, Phase.reuse, Phase.generate])


@timed
@given(st.lists(st.sampled_from([b.decode() for b in HTML_BITS]) | mail_text, min_size=1, max_size=6), mail_text)
@example(["<a "], "")
def test_html_to_text_is_linear(pieces: list[str], filler: str) -> None:
    check_linear(html_to_text, repeated(pieces, filler))


@timed
@given(st.lists(st.sampled_from(QUOTE_BITS) | mail_text, min_size=1, max_size=6), mail_text)
@example(["To: x\n"], "")
def test_quote_cutting_is_linear(pieces: list[str], filler: str) -> None:
    check_linear(answer_text, repeated(pieces, filler))
