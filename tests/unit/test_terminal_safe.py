"""What the CLI and the daemon's log print of text from mail (contract 6)."""

from __future__ import annotations

import io
import logging

import pytest

from maild.cli import _LogFormatter, terminal_safe


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("\x1b[2J\u009b31m", "\\x1b[2J\\x9b31m"),
        ("a\x00b\x7fc\rd", "a\\x00b\\x7fc\\x0dd"),
        ("rivi\n\tsisennetty ääkköset €", "rivi\n\tsisennetty ääkköset €"),
    ],
)
def test_controls_are_shown_escaped_newline_and_tab_kept(text: str, shown: str) -> None:
    assert terminal_safe(text) == shown


def test_the_daemon_log_escapes_values_from_mail() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_LogFormatter("%(message)s"))
    logger = logging.getLogger("maild.test_terminal_safe")
    logger.addHandler(handler)
    try:
        logger.warning("reminder: [JP#1] %s", "Otsikko\x1b]8;;http://evil.example\x07linkki")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == "reminder: [JP#1] Otsikko\\x1b]8;;http://evil.example\\x07linkki\n"
