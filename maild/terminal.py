"""Text from mail on an operator's terminal (docs/guarantees.md): never raw control characters."""

from __future__ import annotations

import re

# C0 controls but newline and tab, DEL and C1 controls: ESC, CSI and OSC sequences drive a terminal.
_TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """``text`` with every control character that could drive a terminal shown as ``\\xNN``."""
    return _TERMINAL_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
