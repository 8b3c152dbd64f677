"""The CLI's terminal output (rich): every string may come from mail (docs/guarantees.md), so it is
shown as plain, escaped text, never as rich markup. Imported only by commands that print to
a terminal (``maild.cli`` makes its consoles on first use)."""

from __future__ import annotations

from typing import Any

from rich.console import Console as _RichConsole
from rich.table import Table as _RichTable
from rich.text import Text

from maild.terminal import terminal_safe


def shown(value: Any) -> Any:
    """A string as plain text (never rich markup: a subject "[link=...]" stays text), escaped."""
    return Text(terminal_safe(value)) if isinstance(value, str) else value


class Console(_RichConsole):
    """The one way the CLI writes text."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().print(*map(shown, objects), **kwargs)

    def rule(self, title: Any = "", **kwargs: Any) -> None:  # type: ignore[override]
        super().rule(shown(title), **kwargs)


class Table(_RichTable):
    """A table whose cells are plain, escaped text."""

    def add_row(self, *cells: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().add_row(*map(shown, cells), **kwargs)
