"""Staff mail: command lines at the top, and the text worth relaying (docs/mail.md#staff). Pure.

Commands are lines starting with ``#`` and a word, before anything else in the message (blank
lines may come between them). The text below them is the answer, without the quotation of
the notification answered (``reply_text``), so nothing internal ever reaches the member.

Commands are checked in order, as they will be carried out: after ``#queue ID`` an
``#assign`` or ``#take`` must name staff of the new queue, because moving a ticket drops an
assignee who is not (docs/mail.md#recipients), and an ``#answer`` must be in the new queue's
language. ``#cc ADDRESS`` and ``#uncc ADDRESS`` change who gets the ticket's mail, from the
answer in the same message on. ``#for ADDRESS`` opens a ticket for a member, only as the first
command line of a new mail (docs/mail.md#for); what may go with it is the planner's to say.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from maild.core.classify import machine_address
from maild.core.reply_text import answer_text
from maild.rules.model import PRIORITIES

# '#' and at once a word: "#close", "#bogus". "# Heading", "### Heading" or "#123" are text.
_COMMAND_LINE = re.compile(r"^\s*#[^\W\d_]")
ARGUMENTS = {"note": False, "take": False, "close": False, "pending": False, "open": False,
             "assign": True, "priority": True, "queue": True, "category": True, "cc": True, "uncc": True,
             "answer": True, "for": True, "channel": True}
CHANNELS = ("email", "phone", "visit", "letter", "web")

# An address as typed in a mail client: bare, in <>, as mailto:, or as Outlook's plain-text
# rendering of a link ("x@example.fi <mailto:x@example.fi>").
_TYPED_ADDRESS = re.compile(r"<?(?:mailto:)?([^\s<>]+?)>?(?:\s*<mailto:([^\s<>]+)>)?", re.IGNORECASE)
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class Command:
    name: str
    argument: str = ""
    label: str = ""  # #for: the member's name when typed as "Name <address>"


@dataclass(frozen=True)
class StaffText:
    commands: tuple[Command, ...]
    errors: tuple[str, ...]
    answer: str  # what the staff member wrote for the member, quotation cut off
    rest: str = ""  # everything below the command lines, as written (#for: the ticket's first message)


@dataclass(frozen=True)
class Context:
    """What some commands are checked against besides the queue ids and the queue's staff.

    ``writer``: who gives the commands ("" from the shell); ``requester``: the ticket's member;
    ``staff_of``: each queue's staff, for the commands after a ``#queue`` (None: unknown, the
    staff given stay); ``own_addresses``: maild's queue addresses, which are never a CC.
    """

    writer: str = ""
    requester: str = ""
    staff_of: Mapping[str, frozenset[str]] | None = None
    own_addresses: frozenset[str] = frozenset()
    answers: frozenset[str] | None = None  # canned answers in the queue's language (None: not checked)
    language: str = ""
    opening: bool = False  # a mail to a queue address, no ticket yet: only here #for opens one
    # each queue's (language, canned answers): after a ``#queue`` the answer goes out in that queue's language
    queue_answers: Mapping[str, tuple[str, frozenset[str]]] | None = None


def parse_staff_text(text: str, queues: frozenset[str], staff: frozenset[str], context: Context = Context()) -> StaffText:
    lines = text.replace("\r\n", "\n").split("\n")
    commands: list[Command] = []
    errors: list[str] = []
    index = 0
    while index < len(lines) and (not lines[index].strip() or _COMMAND_LINE.match(lines[index])):
        line = lines[index].strip()
        if line:
            command, error = _command(line, queues, staff, context)
            if command is not None and command.name == "for" and (commands or errors):
                command, error = None, f"{line}: #for must be the first command line"
            if command:
                commands.append(command)
                if command.name == "queue" and context.staff_of is not None:
                    staff = context.staff_of.get(command.argument, frozenset())
                if command.name == "queue" and context.queue_answers is not None:
                    language, names = context.queue_answers.get(command.argument, ("", frozenset()))
                    context = replace(context, language=language, answers=names)
            if error:
                errors.append(error)
        index += 1
    rest = "\n".join(lines[index:])
    return StaffText(tuple(commands), tuple(errors), answer_text(rest), rest.strip("\n"))


def _command(
    line: str, queues: frozenset[str], staff: frozenset[str], context: Context
) -> tuple[Command | None, str | None]:
    name, _, argument = line[1:].strip().partition(" ")
    command, error = check(Command(name.lower(), argument.strip()), queues, staff, context)
    return command, f"{line}: {error}" if error else None


def check(
    command: Command, queues: frozenset[str], staff: frozenset[str], context: Context = Context()
) -> tuple[Command | None, str | None]:
    """The command with its value in canonical form, or what is wrong with it."""
    name, argument = command.name, command.argument
    if name not in ARGUMENTS:
        return None, f"unknown command (known: {', '.join('#' + n for n in ARGUMENTS)})"
    if ARGUMENTS[name] and not argument:
        return None, f"#{name} needs a value"
    if not ARGUMENTS[name] and argument:
        return None, f"#{name} takes no value"
    if name == "assign" and argument.lower() not in staff:
        return None, f"{argument} is not staff of this queue"
    if name == "take" and context.writer and context.writer not in staff:
        return None, f"{context.writer} is not staff of this queue"
    if name == "priority" and argument.lower() not in PRIORITIES:
        return None, f"priority must be one of {', '.join(PRIORITIES)}"
    if name == "queue" and argument not in queues:
        return None, f"no queue {argument!r} (queues: {', '.join(sorted(queues))})"
    if name in ("cc", "uncc"):
        return _cc(name, argument, context)
    if name == "answer" and context.answers is not None and argument not in context.answers:
        known = ", ".join(sorted(context.answers)) or "none"
        return None, f"no canned answer {argument!r} in {context.language or 'this language'} (answers: {known})"
    if name == "channel" and argument.lower() not in CHANNELS:
        return None, f"channel must be one of {', '.join(CHANNELS)}"
    if name == "for":
        if not context.opening:
            return None, "#for opens a new ticket: write it in a new mail to a queue address, not in a reply"
        label, bracket, rest = argument.partition("<")
        found, error = _cc(name, bracket + rest if bracket and label.strip() else argument, context)
        if found is None or not bracket:
            return found, error
        return Command(name, found.argument, " ".join(label.strip().strip('"').split())), None
    return Command(name, argument.lower() if name in ("assign", "priority", "channel") else argument), None


def _cc(name: str, argument: str, context: Context) -> tuple[Command | None, str | None]:
    """``#cc``/``#uncc``/``#for``: one valid address; never one of maild's own or a machine's,
    and the member cannot be taken off their own ticket."""
    address = typed_address(argument)
    if address is None:
        return None, f"{argument!r} is not one email address"
    if name == "uncc" and address == context.requester:
        return None, f"{address} is the ticket's member, who always gets the answers (#note keeps one internal)"
    refused = machine_address(address, context.own_addresses) if name in ("cc", "for") else None
    if refused:
        what = "receive a ticket's mail" if name == "cc" else "be a ticket's member"
        return None, f"{address} cannot {what}: {refused}"
    return Command(name, address), None


def typed_address(text: str) -> str | None:
    """The lower-case address that ``text`` names, or None when it is not exactly one valid
    address: a dot-atom local part, a domain of two or more labels. An international domain
    is given in its ASCII form, which every mail server takes."""
    match = _TYPED_ADDRESS.fullmatch(text.strip())
    if match is None or (match.group(2) and match.group(2).lower() != match.group(1).lower()):
        return None
    address = match.group(1).lower()
    local, at, domain = address.rpartition("@")
    if not at or len(address) > 254 or len(local) > 64 or not _LOCAL_PART.fullmatch(local):
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        return None
    return f"{local}@{ascii_domain}"
