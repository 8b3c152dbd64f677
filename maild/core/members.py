"""The member register in decisions: which member a mail is from (docs/coming.md#member-register). Pure.

A ticket's requester is matched to a member by the sender's address, or by a member number
written in the subject or text ("jäsennumero 12345", "jäsennro 12345", "medlemsnummer
12345"). The address is the stronger proof: a number alone never overrides the member that
the sender's address belongs to. When the two disagree, the ticket keeps the address's member
and the conflict is recorded for staff (anyone can type a number; only the member reads their
mailbox). A number links only a sender whose address the register does not know, which is
how a member who writes from their work address still finds their tickets together.

Field names are matched case-insensitively and trimmed (``Maksettu``, `` maksettu ``); values
are the register's raw strings.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

LinkedBy = Literal["address", "number"]

# The words that introduce a member number, in Finnish, Swedish and English, with an optional
# "on"/"är"/"is", colon or number sign between word and number; the number is 1-12 digits.
_NUMBER = re.compile(
    r"\b(?:jäsen(?:numero|nro|no)(?:ni|mme)?|jäsen[ -]?(?:numero|nro)|medlems(?:nummer|nr)|"
    r"membership[ -]?(?:number|no)|member[ -]?(?:number|no))"
    r"(?:\s+(?:on|är|is))?\s*[:#.]?\s*(\d{1,12})\b",
    re.IGNORECASE,
)
NUMBER_TEXT_CHARS = 20_000  # a number is near the top; a long quoted thread is not searched
# Every match of _NUMBER holds one of these, casefolded: nearly all mail names no member number
# and is never run through the regex, which is slow on a long text. Exact because each of their
# characters is matched by IGNORECASE only to characters that casefold to it (a test checks
# every code point).
NUMBER_WORDS = ("jäsenn", "jäsen n", "jäsen-n", "medlemsn", "membersh", "membern", "member n", "member-n")


@dataclass(frozen=True)
class Member:
    """One member: their number, address and the register's other columns (raw strings)."""

    member_number: str | None
    email: str | None
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    id: int | None = None  # the register row, when stored
    source: str = "register"  # register | lookup

    def field(self, name: str) -> str | None:
        """The value of a field, its name matched case-insensitively and trimmed."""
        wanted = field_key(name)
        for key, value in self.fields.items():
            if field_key(key) == wanted:
                return value
        if wanted in ("member_number", "jäsennumero"):
            return self.member_number
        return None

    def to_json(self) -> dict[str, object]:
        """As ``tickets show --json`` and ``members show --json`` give it."""
        return {"member_number": self.member_number, "fields": dict(self.fields)}


@dataclass(frozen=True)
class Link:
    """A ticket's member, how it was found, and a member number in the mail that named someone
    else (``conflict``): recorded for staff, never followed."""

    member: Member | None
    linked_by: LinkedBy | None = None
    conflict: str | None = None  # the other member's number

    @property
    def linked(self) -> bool:
        return self.member is not None


NO_LINK = Link(None)


def field_key(name: str) -> str:
    """How field names compare: NFC, casefolded, trimmed."""
    return unicodedata.normalize("NFC", name).strip().casefold()


def member_numbers(subject: str, text: str) -> tuple[str, ...]:
    """The member numbers written in the subject, then the text, each once, in order."""
    return _numbers(subject, text[:NUMBER_TEXT_CHARS])


def _numbers(subject: str, head: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_found(subject) + _found(head)))


def _found(text: str) -> list[str]:
    folded = text.casefold()
    if not any(word in folded for word in NUMBER_WORDS):
        return []
    return _NUMBER.findall(text)


def link(by_address: Member | None, numbers: Iterable[str], by_number: Mapping[str, Member]) -> Link:
    """The member a mail is from.

    ``by_address``: the member the sender's address belongs to (register or lookup);
    ``numbers``: the member numbers the mail mentions, in order; ``by_number``: the register's
    members among them. The address wins; the first mentioned number that the register knows
    links a sender it does not know; a number of another member is a conflict.
    """
    known = [by_number[number] for number in numbers if number in by_number]
    if by_address is not None:
        other = next((m for m in known if not _same(m, by_address)), None)
        return Link(by_address, "address", other.member_number if other is not None else None)
    if known:
        return Link(known[0], "number")
    return NO_LINK


def _same(one: Member, other: Member) -> bool:
    if one.id is not None and other.id is not None:
        return one.id == other.id
    return one.member_number is not None and one.member_number == other.member_number


def shown_fields(member: Member, names: Iterable[str]) -> list[tuple[str, str]]:
    """The fields named in ``[members] show_fields`` that the member has, in that order."""
    shown = []
    for name in names:
        value = member.field(name)
        if value is not None and value.strip():
            shown.append((name, value))
    return shown


def template_member(found: Link, show: Iterable[str]) -> dict[str, object] | None:
    """What staff notifications get as ``member`` (None: no member, nothing shown)."""
    if found.member is None:
        return None
    return {
        "member_number": found.member.member_number,
        "fields": shown_fields(found.member, show),
        "linked_by": found.linked_by,
        "conflict": found.conflict,
    }


def from_lookup(answer: object, address: str) -> Member | None:
    """A member from a lookup command's JSON object (None for null or an empty object).

    ``member_number`` (or ``jäsennumero``) is the number; ``email`` is ignored (the address
    asked about is the member's); every other key is a field, its value as a string.
    Raises ValueError for anything but an object or null.
    """
    if answer is None:
        return None
    if not isinstance(answer, dict):
        raise ValueError(f"expected a JSON object, got {type(answer).__name__}")
    if not answer:
        return None
    number: str | None = None
    fields: dict[str, str] = {}
    for key, value in answer.items():
        text = value if isinstance(value, str) else ("" if value is None else _json_text(value))
        name = field_key(str(key))
        if name in ("member_number", "jäsennumero"):
            number = text.strip() or None
        elif name not in ("email", "sähköposti"):
            fields[str(key)] = text
    return Member(number, address, MappingProxyType(fields), source="lookup")


def _json_text(value: object) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
