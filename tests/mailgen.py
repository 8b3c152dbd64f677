"""Build test messages the way mail clients do (stdlib email, real headers)."""

from __future__ import annotations

import email.utils
import uuid
from email.message import EmailMessage


def mail(
    subject: str = "Osoitteenmuutos",
    body: str = "Hei,\n\nosoitteeni on muuttunut.\n\nTerveisin\nMatti",
    sender: str = "Matti Meikäläinen <matti@example.fi>",
    to: str = "jasenpalvelu@liitto.fi",
    cc: str | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    date: str | None = "Tue, 24 Nov 2026 10:00:00 +0200",
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    if date:
        msg["Date"] = date
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@example.fi>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return bytes(msg)


def message_id_of(raw: bytes) -> str:
    return email.message_from_bytes(raw)["Message-ID"]
