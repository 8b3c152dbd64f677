"""Which ticket a message belongs to (docs/mail.md#threading). Pure: no I/O.

Threading is split in two: ``keys`` says what to look up, the store looks it up, and
``choose`` says what the lookups mean. Order of precedence: reply token, subject tag,
In-Reply-To/References; otherwise a new ticket.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from maild.mail import Envelope, Parsed

# Re:, RE:, Re[2]:, VS:, Vs:, SV:, AW:, WG:, Fwd:, Fw:, VL:, repeated or nested.
_PREFIX = re.compile(r"^\s*(?:(?:re|vs|sv|aw|wg|fwd?|vl|vb|tr|antw)(?:\s*\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def strip_prefixes(subject: str) -> str:
    """The subject without reply/forward prefixes, however many and however nested."""
    previous = None
    while previous != subject:
        previous = subject
        subject = _PREFIX.sub("", subject)
    return subject.strip()


def tag_pattern(prefix: str) -> re.Pattern[str]:
    """``[PREFIX#123]``, case-insensitive, glued to text or not; not ``[XPREFIX#1]``."""
    return re.compile(rf"\[\s*{re.escape(prefix)}\s*#\s*(\d{{1,12}})\s*\]", re.IGNORECASE)


def format_tag(prefix: str, number: int) -> str:
    return f"[{prefix}#{number}]"


def subject_tags(subject: str, prefix: str) -> tuple[int, ...]:
    """Ticket numbers tagged in a subject, in order of appearance."""
    return tuple(dict.fromkeys(int(n) for n in tag_pattern(prefix).findall(subject) if int(n) > 0))


def plus_tokens(recipients: tuple[str, ...], queue_addresses: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """(queue address, TOKEN) of ``queue+TOKEN@domain`` recipients, for queue addresses we own."""
    found = []
    for address in recipients:
        local, _, domain = address.lower().rpartition("@")
        base, plus, token = local.partition("+")
        if plus and token and f"{base}@{domain}" in queue_addresses:
            found.append((f"{base}@{domain}", token))
    return tuple(dict.fromkeys(found))


def reply_tokens(recipients: tuple[str, ...], queue_addresses: frozenset[str]) -> tuple[str, ...]:
    """TOKENs of ``queue+TOKEN@domain`` recipients, for queue addresses we own."""
    return tuple(dict.fromkeys(token for _, token in plus_tokens(recipients, queue_addresses)))


def fingerprint(parsed: Parsed) -> str:
    """Identity of a message's content (docs/mail.md#threading dedup): the whole message below its trace
    headers, computed from the raw bytes when it was parsed (``parse.content_fingerprint``)."""
    return parsed.fingerprint


def legacy_fingerprint(parsed: Parsed) -> str:
    """The fingerprint that messages stored before the ``v2:`` ones carry: sender, date and body
    text only. It still matches an old row with the same Message-ID (what the contract counted
    as the same message then), never a message without one: that rule dropped different mails."""
    return _legacy(_legacy_material(parsed))


def _legacy_material(parsed: Parsed) -> tuple[str, str, str]:
    return parsed.from_addr, parsed.date.isoformat() if parsed.date else "", parsed.text or parsed.html or ""


def _legacy(material: tuple[str, str, str]) -> str:
    from_addr, date, text = material
    body = unicodedata.normalize("NFC", " ".join(text.split()))
    return hashlib.sha256("\x1f".join((from_addr, date, body)).encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ThreadKeys:
    """What the store has to look up for one message."""

    message_id: str | None
    fingerprint: str
    tokens: tuple[str, ...]
    tags: tuple[int, ...]
    referenced: tuple[str, ...]  # In-Reply-To first, then References newest first
    legacy_material: tuple[str, str, str] = ("", "", "")  # what ``legacy_fingerprint`` is made of

    @property
    def legacy_fingerprint(self) -> str:
        """For rows stored before the ``v2:`` fingerprints, with a Message-ID only: made when
        asked (a Message-ID already stored), not for every message."""
        return _legacy(self.legacy_material)


def keys(parsed: Parsed, envelope: Envelope, prefix: str, queue_addresses: frozenset[str]) -> ThreadKeys:
    recipients = tuple(dict.fromkeys(envelope.recipients + parsed.to + parsed.cc))
    referenced = tuple(dict.fromkeys(parsed.in_reply_to + tuple(reversed(parsed.references))))
    return ThreadKeys(
        message_id=parsed.message_id,
        fingerprint=fingerprint(parsed),
        legacy_material=_legacy_material(parsed),
        tokens=reply_tokens(recipients, queue_addresses),
        tags=subject_tags(parsed.subject, prefix),
        referenced=referenced,
    )


@dataclass(frozen=True)
class TicketRef:
    """What threading needs to know of a ticket the lookups found."""

    number: int
    status: str
    requester: str
    cc: tuple[str, ...] = ()


@dataclass(frozen=True)
class Found:
    """The store's answers to ``ThreadKeys``."""

    same_message_id: tuple[str, ...] = ()  # fingerprints of stored messages with this Message-ID
    token_ticket: TicketRef | None = None
    token_staff: str | None = None  # the staff member whose secret reply address it was
    tag_tickets: tuple[TicketRef, ...] = ()  # in the order of ThreadKeys.tags, existing only
    reference_ticket: TicketRef | None = None


Via = Literal["token", "tag", "references"]


@dataclass(frozen=True)
class Choice:
    action: Literal["duplicate", "follow_up", "new"]
    ticket: TicketRef | None = None
    via: Via | None = None
    collision: bool = False  # a reused Message-ID with other content
    linked_to: int | None = None  # a new ticket continuing a closed one
    notes: tuple[str, ...] = field(default=())


def choose(found_keys: ThreadKeys, found: Found) -> Choice:
    """What the lookups mean: a duplicate, a follow-up (and by what), or a new ticket."""
    if found.same_message_id and (found_keys.fingerprint in found.same_message_id or (
        found_keys.message_id and found_keys.legacy_fingerprint in found.same_message_id
    )):
        return Choice("duplicate")
    collision = bool(found.same_message_id)
    for via, ticket in (
        ("token", found.token_ticket),
        ("tag", found.tag_tickets[0] if found.tag_tickets else None),
        ("references", found.reference_ticket),
    ):
        if ticket is None:
            continue
        if ticket.status == "closed":
            return Choice("new", collision=collision, linked_to=ticket.number)
        return Choice("follow_up", ticket=ticket, via=via, collision=collision)  # type: ignore[arg-type]
    return Choice("new", collision=collision)


FollowUpKind = Literal["member", "third_party", "auto_reply"]


def follow_up_kind(
    sender: str, ticket: TicketRef, via: Via, staff: frozenset[str], is_machine: bool
) -> FollowUpKind:
    """Who wrote a follow-up, as far as threading can tell (docs/mail.md#threading, 4.3).

    Machine mail is ``auto_reply``. The requester and the ticket's CCs are members. A staff
    From address proves nothing by itself (docs/mail.md#staff), so until the staff module proves
    it, staff mail is third-party. Anyone else is third-party when only the subject tag
    tied the message to the ticket; a reply token or References means they answered mail
    of this ticket, so they count as the member side.
    """
    if is_machine:
        return "auto_reply"
    if sender == ticket.requester or sender in ticket.cc:
        return "member"
    if sender in staff or via == "tag":
        return "third_party"
    return "member"
