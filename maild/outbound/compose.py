"""Outgoing mail as bytes (contract 4.2). Pure: no I/O.

Every mail maild writes is From the queue, carries the ticket's tag, maild's own
Message-ID and threading headers; mail that no person wrote is marked so that other
systems do not answer it, and carries our loop marker so that we never answer ourselves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime
from typing import Literal

from maild.core.classify import LOOP_HEADER
from maild.outbound.templates import header_safe

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


def _address(addr: str, name: str = "") -> Address:
    local, _, domain = addr.rpartition("@")
    return Address(display_name=header_safe(name), username=local, domain=domain)


def build(mail: Outgoing) -> bytes:
    """The message in wire form (CRLF line ends; SMTPUTF8 only where an address needs it)."""
    msg = EmailMessage()
    msg["From"] = _address(mail.from_addr, mail.from_name)
    msg["To"] = [_address(a) for a in mail.to]
    if mail.cc:
        msg["Cc"] = [_address(a) for a in mail.cc]
    if mail.reply_to:
        msg["Reply-To"] = _address(mail.reply_to, mail.from_name)
    msg["Subject"] = header_safe(mail.subject, 500)
    msg["Date"] = format_datetime(mail.date or datetime.now(timezone.utc))
    msg["Message-ID"] = f"<{mail.message_id}>"
    if mail.in_reply_to:
        msg["In-Reply-To"] = f"<{mail.in_reply_to}>"
    if mail.references:
        msg["References"] = " ".join(f"<{ref}>" for ref in mail.references[-20:])
    if mail.auto:
        msg["Auto-Submitted"] = mail.auto
        msg["X-Auto-Response-Suppress"] = "All"
    msg[LOOP_HEADER] = mail.from_addr
    msg.set_content(mail.text)
    if mail.html:
        msg.add_alternative(mail.html, subtype="html")
    needs_utf8 = not all(a.isascii() for a in (mail.from_addr, *mail.to, *mail.cc))
    return msg.as_bytes(policy=SMTPUTF8 if needs_utf8 else SMTP)
