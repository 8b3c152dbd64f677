"""``time_limit``: the in-process bound of `maild ingest` and `maild quarantine replay` (docs/guarantees.md)."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from maild.ingest import MessageTimeout, time_limit


@pytest.fixture
def no_alarm() -> Iterator[None]:
    """Whatever alarm pytest-timeout had set is put back after the test."""
    handler = signal.getsignal(signal.SIGALRM)
    delay, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    yield
    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, delay, interval)


def test_a_regex_stuck_backtracking_is_stopped(no_alarm: None) -> None:
    started = time.monotonic()
    with pytest.raises(MessageTimeout, match="took over 0.3 s"), time_limit(0.3):
        re.search(r"(a|aa)+b", "a" * 60)  # hours of work
    assert time.monotonic() - started < 5


def test_an_outer_alarm_is_kept(no_alarm: None) -> None:
    fired: list[float] = []
    signal.signal(signal.SIGALRM, lambda *_: fired.append(time.monotonic()))
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    with time_limit(30):
        pass
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 0.5 < remaining <= 1.0
    with time_limit(30):
        time.sleep(1.5)  # the outer alarm is due first: it fires, and no MessageTimeout
    assert len(fired) == 1


def test_no_limit_outside_the_main_thread(no_alarm: None) -> None:
    """Signals reach the main thread only: elsewhere the block runs unbounded, and no alarm is set."""
    seen: list[float] = []

    def work() -> None:
        with time_limit(0.1):
            seen.append(signal.getitimer(signal.ITIMER_REAL)[0])

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [0.0]
