"""What the CLI and the daemon's log print of text from mail (docs/guarantees.md)."""

from __future__ import annotations

import io
import logging

import pytest

from maild.logs import JsonFormatter, TextFormatter
from maild.terminal import terminal_safe


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


@pytest.mark.parametrize("formatter", [TextFormatter(timestamps=False), JsonFormatter()], ids=["text", "json"])
def test_the_daemon_log_escapes_values_from_mail(formatter: logging.Formatter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("maild.test_terminal_safe")
    logger.addHandler(handler)
    try:
        logger.warning("reminder: [JP#1] %s", "Otsikko\x1b]8;;http://evil.example\x07linkki")
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert "\x1b" not in line and "\x07" not in line
    assert "reminder: [JP#1] Otsikko" in line and "]8;;http://evil.example" in line
