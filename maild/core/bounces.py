"""What a bounce says: who could not be reached, why, and which of our messages bounced.

Pure: no I/O. RFC 3464 delivery status notifications are read first; for the many MTAs that
send free-form text instead, flufl.bounce's heuristic detectors are the fallback. VERP
addresses (``bounces+TOKEN@domain``) name the outgoing message a bounce belongs to even when
the bounce itself names nothing useful.
"""

from __future__ import annotations

import dataclasses
import email.message
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import HeaderParser
from typing import Literal

from flufl.bounce import all_failures

from maild.core.addresses import parse_address
from maild.core.parse import content_charset

_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_ATTACHED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_HEADER_ONLY_TYPES = frozenset({"text/rfc822-headers", "message/rfc822-headers"})

# An RFC 3463 enhanced status code, not part of a longer dotted number (IP, version).
_STATUS = re.compile(r"(?<![\w.])([245]\.\d{1,3}\.\d{1,3})(?![\w.])")
# The same code right after an SMTP reply code ("550 5.1.1"): more trustworthy in free text.
_SMTP_STATUS = re.compile(r"\b[45]\d\d[ -]([245]\.\d{1,3}\.\d{1,3})(?![\w.])")
_SMTP_REPLY_LINE = re.compile(r"^.*\b[45]\d\d[ -]\S.*$", re.MULTILINE)
_MESSAGE_ID_LINE = re.compile(r"^[ \t>]*Message-ID:[ \t]*<([^<>\s]+)>", re.IGNORECASE | re.MULTILINE)
_DIAGNOSTIC_TYPE = re.compile(r"^\s*[a-z][\w-]*\s*;", re.IGNORECASE)  # "smtp;", "X-Postfix;"
_VERP_TOKEN = re.compile(r"[A-Za-z0-9._=-]+")
_DIAGNOSTIC_LIMIT = 500
UNDELIVERABLE_FOR = timedelta(days=30)  # how long a bounce's mark holds (docs/mail.md#bounces)

Action = Literal["failed", "delayed"]


@dataclass(frozen=True)
class Bounce:
    """One bounce, reduced to what the ticket needs.

    ``permanent`` means retrying will not help: the MTA gave up (``Action: failed``) and the
    status, when given, is a 5.x.x. A full mailbox that made the MTA give up (``failed`` with
    4.x.x) is not permanent: the address itself is fine.
    """

    recipients: tuple[str, ...]  # lower-case addresses that failed (or are delayed)
    status: str | None  # enhanced status code such as "5.1.1"
    action: Action
    permanent: bool
    diagnostic: str  # the remote server's words, "" when the bounce gives none
    original_message_id: str | None  # the bounced message's Message-ID, without <>


def parse_bounce(message: email.message.Message) -> Bounce | None:
    """Read a bounce: RFC 3464 first, flufl.bounce heuristics second; None if neither finds a recipient."""
    bounce = _from_delivery_status(message) or _from_heuristics(message)
    if bounce is None:
        return None
    return dataclasses.replace(bounce, original_message_id=original_message_id(message))


def undeliverable(since: datetime | None, now: datetime) -> bool:
    """Whether an address marked undeliverable at ``since`` still counts as such at ``now``:
    the mark lapses after ``UNDELIVERABLE_FOR``, so a mailbox that works again (or one that a
    forged bounce got marked) gets mail again."""
    return since is not None and now - since < UNDELIVERABLE_FOR


def verp_token(address: str, local_prefix: str = "bounces") -> str | None:
    """TOKEN from ``bounces+TOKEN@domain`` (the prefix is matched case-insensitively), else None."""
    local, at, _domain = address.strip().strip("<>").rpartition("@")
    prefix = f"{local_prefix.lower()}+"
    if not at or not local.lower().startswith(prefix):
        return None
    return local[len(prefix) :] or None


def verp_address(token: str, domain: str, local_prefix: str = "bounces") -> str:
    """``bounces+TOKEN@domain``: the envelope sender that routes a bounce back to its message."""
    if not _VERP_TOKEN.fullmatch(token):
        raise ValueError(f"a VERP token must match {_VERP_TOKEN.pattern}: {token!r}")
    return f"{local_prefix}+{token}@{domain}"


def is_delivery_report(message: email.message.Message) -> bool:
    """True for an RFC 3464 delivery status notification, also a mislabelled one.

    Some MTAs send ``multipart/mixed`` with a ``message/delivery-status`` part inside; attached
    messages are not searched, so a person forwarding a bounce does not write one.
    """
    if message.get_content_type() == "multipart/report":
        report_type = str(message.get_param("report-type", "", header="content-type")).lower()
        if report_type in ("delivery-status", "global-delivery-status"):
            return True
    return any(part.get_content_type() in _STATUS_TYPES for part in top_level_parts(message))


def heuristic_failures(message: email.message.Message) -> tuple[frozenset[str], frozenset[str]]:
    """(temporary, permanent) failed addresses that flufl.bounce's detectors find, lower-case.

    The detectors are heuristics written for mail in the wild; one that trips over a broken
    message must not take the whole classification down, so any error counts as "found nothing".
    """
    try:
        temporary, permanent = all_failures(message)
    except Exception:
        return frozenset(), frozenset()
    return _decoded(temporary), _decoded(permanent)


def top_level_parts(message: email.message.Message) -> Iterator[email.message.Message]:
    """Every MIME part, depth first, without descending into attached messages."""
    stack = [message]
    while stack:
        part = stack.pop()
        yield part
        if part.get_content_maintype() == "multipart":
            stack.extend(reversed(_subparts(part)))


def part_text(part: email.message.Message) -> str:
    """A leaf part's content as text: its charset, else UTF-8 with replacement characters."""
    payload = part.get_payload(decode=True)  # None for a multipart or an attached message
    if not isinstance(payload, bytes):
        return ""
    try:
        return payload.decode(content_charset(part) or "utf-8", "replace")
    except LookupError:  # an unknown charset name
        return payload.decode("utf-8", "replace")


def has_returned_copy(message: email.message.Message) -> bool:
    """True if the message carries another message, or its headers, as a part."""
    copy_types = _ATTACHED_MESSAGE_TYPES | _HEADER_ONLY_TYPES
    return any(part.get_content_type() in copy_types for part in top_level_parts(message))


def original_message_id(message: email.message.Message) -> str | None:
    """The bounced message's Message-ID: from an attached copy, its headers, or a quoted header line."""
    for part in top_level_parts(message):
        content_type = part.get_content_type()
        if content_type in _ATTACHED_MESSAGE_TYPES | _HEADER_ONLY_TYPES:
            found = _message_id_of_copy(part)
            if found:
                return found
    for part in top_level_parts(message):
        if part.get_content_type() == "text/plain":
            match = _MESSAGE_ID_LINE.search(part_text(part))
            if match:
                return match.group(1)
    return None


def _message_id_of_copy(part: email.message.Message) -> str | None:
    copies = _subparts(part) or [HeaderParser().parsestr(part_text(part))]
    value = str(copies[0].get("message-id", ""))
    match = re.search(r"<([^<>\s]+)>", value)
    return match.group(1) if match else (value.strip() or None)


@dataclass(frozen=True)
class _Recipient:
    address: str
    action: Action
    status: str | None
    diagnostic: str


def _from_delivery_status(message: email.message.Message) -> Bounce | None:
    blocks = [
        block
        for part in top_level_parts(message)
        if part.get_content_type() in _STATUS_TYPES
        for block in _status_blocks(part)
    ]
    recipients = [r for r in map(_recipient, blocks) if r is not None]
    failed = [r for r in recipients if r.action == "failed"]
    chosen = failed or recipients
    if not chosen:
        return None
    first = chosen[0]
    return Bounce(
        recipients=tuple(dict.fromkeys(r.address for r in chosen)),
        status=first.status,
        action=first.action,
        permanent=first.action == "failed" and (first.status is None or first.status.startswith("5")),
        diagnostic=first.diagnostic,
        original_message_id=None,
    )


def _status_blocks(part: email.message.Message) -> list[email.message.Message]:
    """The header blocks of a delivery-status part (the parser usually splits them already)."""
    return _subparts(part) or [
        HeaderParser().parsestr(block) for block in re.split(r"\r?\n\s*\r?\n", part_text(part))
    ]


def _subparts(part: email.message.Message) -> list[email.message.Message]:
    """What the parser split a part into: sub-parts, an attached message, or header blocks."""
    if not part.is_multipart():  # a leaf: get_payload() would decode its text, and can fail on a bad charset
        return []
    return [p for p in part.get_payload() if isinstance(p, email.message.Message)]


def _recipient(block: email.message.Message) -> _Recipient | None:
    """The failed or delayed recipient a per-recipient block names; None for any other block."""
    declared = str(block.get("action", "")).strip().lower()
    action: Action
    if declared.startswith(("failed", "failure", "error")):  # opensmtpd writes "error"
        action = "failed"
    elif declared.startswith("delayed"):
        action = "delayed"
    else:
        return None
    address = _dsn_address(block.get("original-recipient")) or _dsn_address(block.get("final-recipient"))
    if not address:
        return None
    status = _STATUS.search(str(block.get("status", "")))
    return _Recipient(address, action, status.group(1) if status else None, _diagnostic(block))


def _dsn_address(value: object) -> str | None:
    """``rfc822; user@example.com`` (address type optional, angle brackets allowed) -> address."""
    if value is None:
        return None
    return parse_address(str(value).rsplit(";", 1)[-1].strip())


def _diagnostic(block: email.message.Message) -> str:
    """``Diagnostic-Code: smtp; 550 ...`` -> ``550 ...``, unfolded."""
    value = _DIAGNOSTIC_TYPE.sub("", str(block.get("diagnostic-code", "")))
    return " ".join(value.split())[:_DIAGNOSTIC_LIMIT]


def _from_heuristics(message: email.message.Message) -> Bounce | None:
    temporary, permanent = heuristic_failures(message)
    if not temporary and not permanent:
        return None
    text = "\n".join(part_text(p) for p in top_level_parts(message) if p.get_content_type() == "text/plain")
    match = _SMTP_STATUS.search(text) or _STATUS.search(text)
    status = match.group(1) if match else None
    reply = _SMTP_REPLY_LINE.search(text)
    return Bounce(
        recipients=tuple(sorted(permanent or temporary)),
        status=status,
        action="failed" if permanent else "delayed",
        permanent=bool(permanent) and not (status or "5").startswith("4"),
        diagnostic=" ".join(reply.group(0).split())[:_DIAGNOSTIC_LIMIT] if reply else "",
        original_message_id=None,
    )


def _decoded(addresses: frozenset[bytes]) -> frozenset[str]:
    return frozenset(a.decode("ascii", "replace").strip().lower() for a in addresses)
