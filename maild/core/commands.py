"""Staff mail: command lines at the top, and the text worth relaying (contract 4.5). Pure.

Commands are lines starting with ``#`` and a word, before anything else in the message (blank
lines may come between them). The text below them is the answer, without the quotation of
the notification answered (``reply_text``), so nothing internal ever reaches the member.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from maild.core.reply_text import answer_text
from maild.rules.model import PRIORITIES

# '#' and at once a word: "#close", "#bogus". "# Heading", "### Heading" or "#123" are text.
_COMMAND_LINE = re.compile(r"^\s*#[^\W\d_]")
ARGUMENTS = {"note": False, "take": False, "close": False, "pending": False, "open": False,
             "assign": True, "priority": True, "queue": True, "category": True}


@dataclass(frozen=True)
class Command:
    name: str
    argument: str = ""


@dataclass(frozen=True)
class StaffText:
    commands: tuple[Command, ...]
    errors: tuple[str, ...]
    answer: str  # what the staff member wrote for the member, quotation cut off


def parse_staff_text(text: str, queues: frozenset[str], staff: frozenset[str]) -> StaffText:
    lines = text.replace("\r\n", "\n").split("\n")
    commands: list[Command] = []
    errors: list[str] = []
    index = 0
    while index < len(lines) and (not lines[index].strip() or _COMMAND_LINE.match(lines[index])):
        line = lines[index].strip()
        if line:
            command, error = _command(line, queues, staff)
            if command:
                commands.append(command)
            if error:
                errors.append(error)
        index += 1
    return StaffText(tuple(commands), tuple(errors), answer_text("\n".join(lines[index:])))


def _command(line: str, queues: frozenset[str], staff: frozenset[str]) -> tuple[Command | None, str | None]:
    name, _, argument = line[1:].strip().partition(" ")
    name, argument = name.lower(), argument.strip()
    if name not in ARGUMENTS:
        return None, f"{line}: unknown command (known: {', '.join('#' + n for n in ARGUMENTS)})"
    if ARGUMENTS[name] and not argument:
        return None, f"{line}: #{name} needs a value"
    if not ARGUMENTS[name] and argument:
        return None, f"{line}: #{name} takes no value"
    if name == "assign" and argument.lower() not in staff:
        return None, f"{line}: {argument} is not staff of this queue"
    if name == "priority" and argument.lower() not in PRIORITIES:
        return None, f"{line}: priority must be one of {', '.join(PRIORITIES)}"
    if name == "queue" and argument not in queues:
        return None, f"{line}: no queue {argument!r}"
    return Command(name, argument.lower() if name in ("assign", "priority") else argument), None
