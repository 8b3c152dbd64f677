"""Outgoing mail as bytes (docs/mail.md#what-maild-sends). No I/O but reading the files of
attachments given by path (docs/mail.md#attachments).

Every mail maild writes is From the queue, carries the ticket's tag, maild's own
Message-ID and threading headers; mail that no person wrote is marked so that other
systems do not answer it, and carries our loop marker so that we never answer ourselves.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTPUTF8
from email.utils import format_datetime
from typing import Callable, Iterator, Literal

from maild.core.addresses import is_address, is_message_id
from maild.core.classify import LOOP_HEADER
from maild.outbound import wire
from maild.outbound.templates import header_safe
from maild.outbound.wire import Attached

__all__ = ["Attached", "Outgoing", "Wire", "build", "build_many", "build_parts", "checked", "new_message_id"]

AutoKind = Literal["auto-replied", "auto-generated"]


def new_message_id(hostname: str) -> str:
    """A Message-ID of ours, without angle brackets (as Parsed and the database keep them)."""
    return f"{uuid.uuid4().hex}@{hostname}"


@dataclass(frozen=True)
class Outgoing:
    from_name: str
    from_addr: str
    to: tuple[str, ...]
    subject: str
    text: str
    message_id: str
    cc: tuple[str, ...] = ()
    html: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    reply_to: str | None = None
    auto: AutoKind | None = None  # None: a person wrote it (a relayed staff reply)
    date: datetime | None = None
    attachments: tuple[Attached, ...] = ()  # inline ones (a content_id) are shown by ``html``


def checked(mail: Outgoing) -> tuple[Outgoing, tuple[str, ...]]:
    """``mail`` without the values taken from mail that cannot go into a header (a recipient or
    Message-ID with control characters or whitespace), and what was left out (docs/mail.md#recipients).

    A bad value never stops the mail: it goes to the recipients that remain, without the bad
    threading reference; the caller records the notes on the ticket.
    """
    notes: list[str] = []

    def keep(header: str, values: tuple[str, ...], valid: Callable[[str], bool]) -> tuple[str, ...]:
        kept = tuple(value for value in values if valid(value))
        if len(kept) < len(values):  # repr shows controls
            notes.extend(f"{header}: left out {value[:200]!r}" for value in values if value not in kept)
        return kept

    to, cc = keep("To", mail.to, is_address), keep("Cc", mail.cc, is_address)
    in_reply_to = keep("In-Reply-To", (mail.in_reply_to,) if mail.in_reply_to else (), is_message_id)
    references = keep("References", mail.references, is_message_id)
    if not notes and mail.in_reply_to != "":
        return mail, ()  # nearly always: nothing to leave out, and nothing to copy
    fixed = dataclasses.replace(mail, to=to, cc=cc, in_reply_to=(in_reply_to or (None,))[0], references=references)
    return fixed, tuple(notes)


def _headers(mail: Outgoing) -> list[tuple[str, str]]:
    """Every header but the addresses and MIME structure, as unencoded text."""
    headers = [
        ("Subject", header_safe(mail.subject, 500)),
        ("Date", format_datetime(mail.date or datetime.now(timezone.utc))),
        ("Message-ID", f"<{mail.message_id}>"),
    ]
    if mail.in_reply_to:
        headers.append(("In-Reply-To", f"<{mail.in_reply_to}>"))
    if mail.references:
        headers.append(("References", " ".join(f"<{ref}>" for ref in mail.references[-20:])))
    if mail.auto:
        headers += [("Auto-Submitted", mail.auto), ("X-Auto-Response-Suppress", "All")]
    headers.append((LOOP_HEADER, mail.from_addr))
    return headers


def build(mail: Outgoing) -> bytes:
    """The message in wire form (CRLF line ends)."""
    return build_many([mail])[0]


Wire = tuple[bytes, tuple[bytes, ...]]  # a mail's header block and the pieces of its MIME body


def build_many(mails: list[Outgoing]) -> list[bytes]:
    """Each mail in wire form (``build_parts``, joined)."""
    return [b"".join([head, *body]) for head, body in build_parts(mails)]


def build_parts(mails: list[Outgoing]) -> list[Wire]:
    """Each mail in wire form, as its header block and its body's pieces. Mails with the same
    text, HTML and attachments (one notice to several staff members) share one encoded MIME
    body, the same pieces; only their headers are written per recipient: the files are read
    and encoded once for them all, and held once until each mail is written out.

    Written directly (``wire.py``) rather than through the stdlib's MIME classes, which re-fold
    every header through a policy: that was most of the CPU of filing a ticket. Only an address
    that is not ASCII (RFC 6532, sent with SMTPUTF8) takes the stdlib's modern API.
    """
    bodies: dict[tuple[str, str | None, tuple[Attached, ...]], tuple[bytes, ...]] = {}
    wires: list[Wire] = []
    for mail in mails:
        key = (mail.text, mail.html or None, mail.attachments)
        body = bodies.get(key)
        if body is None:
            lines = [wire.base64_lines(_chunks(item)) for item in mail.attachments]
            body = bodies[key] = tuple(wire.mime_pieces(mail.text, mail.html or None, mail.attachments, lines))
        if all(a.isascii() for a in (mail.from_addr, *mail.to, *mail.cc, *((mail.reply_to,) if mail.reply_to else ()))):
            head = _head(mail).encode("ascii")
        else:
            head = _head_utf8(mail)
        wires.append((head, body))
    return wires


_READ = 1 << 20


def _chunks(item: Attached) -> Iterator[bytes]:
    """An attachment's bytes, from a file a megabyte at a time."""
    if isinstance(item.content, bytes):
        yield item.content
        return
    with open(item.content, "rb") as source:
        while chunk := source.read(_READ):
            yield chunk


def _head(mail: Outgoing) -> str:
    """The header fields of ``mail`` above its MIME ones: ASCII, folded, CRLF-ended."""
    name = header_safe(mail.from_name)
    head = [wire.address_field("From", [(name, mail.from_addr)]), wire.address_field("To", [("", a) for a in mail.to])]
    if mail.cc:
        head.append(wire.address_field("Cc", [("", a) for a in mail.cc]))
    if mail.reply_to:
        head.append(wire.address_field("Reply-To", [(name, mail.reply_to)]))
    head += [wire.field(header, value) for header, value in _headers(mail)]
    return "".join(head)


def _head_utf8(mail: Outgoing) -> bytes:
    """The header fields for an address that is not ASCII (RFC 6532), by the stdlib's modern
    API; the MIME body is the shared one."""
    msg = EmailMessage()
    msg["From"] = Address(header_safe(mail.from_name), *mail.from_addr.rsplit("@", 1))
    msg["To"] = [Address("", *a.rsplit("@", 1)) for a in mail.to]
    if mail.cc:
        msg["Cc"] = [Address("", *a.rsplit("@", 1)) for a in mail.cc]
    if mail.reply_to:
        msg["Reply-To"] = Address(header_safe(mail.from_name), *mail.reply_to.rsplit("@", 1))
    for name, value in _headers(mail):
        msg[name] = value
    return msg.as_bytes(policy=SMTPUTF8).removesuffix(b"\r\n")  # the blank line is the body's
