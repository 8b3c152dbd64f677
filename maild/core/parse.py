"""Raw bytes -> ``Parsed`` with mail-parser. Pure: no I/O.

Whatever can be read is kept; what cannot be read at all raises ``ParseError`` and the
message goes to the quarantine. Strings are made safe for every database (no NUL bytes,
no lone surrogates from undecodable bytes).
"""

from __future__ import annotations

import email.errors
import email.header
import email.message
import email.utils
import hashlib
import re
from datetime import datetime, timezone
from collections.abc import Iterator
from typing import Any

import mailparser

from maild.core.html_text import html_to_text
from maild.mail import Attachment, Parsed

_MSGID = re.compile(r"<([^<>\s]+)>")
_SURROGATES = re.compile(r"[\ud800-\udfff]")


class ParseError(Exception):
    """The message cannot be read at all."""


def clean(value: Any) -> str:
    """A string that every database stores: no NUL, no lone surrogates."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return _SURROGATES.sub("\ufffd", text.replace("\x00", ""))


def message_ids(value: str | None) -> tuple[str, ...]:
    """The Message-IDs named in a header value, in order, without angle brackets."""
    if not value:
        return ()
    found = _MSGID.findall(value)
    if not found and value.strip() and " " not in value.strip():
        found = [value.strip()]  # some clients omit the brackets
    return tuple(dict.fromkeys(clean(item) for item in found))


def _addresses(values: list[str]) -> tuple[str, ...]:
    pairs = email.utils.getaddresses([clean(v) for v in values])
    return tuple(dict.fromkeys(addr.strip().lower() for _, addr in pairs if "@" in addr))


def _headers(message: email.message.Message) -> dict[str, tuple[str, ...]]:
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items() if hasattr(message, "raw_items") else message.items():
        headers.setdefault(name.lower(), []).append(_decode_header(value))
    return {name: tuple(values) for name, values in headers.items()}


def _eight_bit(value: str) -> str:
    """Raw 8-bit header bytes (kept by the parser as surrogates) as text: UTF-8 (RFC 6532),
    else Windows-1252, which is what old clients in Finland send."""
    if not _SURROGATES.search(value):
        return value
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("windows-1252", "replace")


def _decode_header(value: Any) -> str:
    """A header value with RFC 2047 words decoded, whatever their charset."""
    value = _eight_bit(str(value))
    try:
        decoded = str(email.header.make_header(email.header.decode_header(value)))
    except Exception:  # bad charset names, broken encoded words: keep the raw text
        decoded = str(value)
    return clean(re.sub(r"\r?\n[ \t]+", " ", decoded)).strip()


def _date(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _leaves(part: email.message.Message) -> Iterator[email.message.Message]:
    """The non-multipart parts, in order; an attached message is one leaf, not descended into
    (its text is not the member's text)."""
    # is_multipart(), not get_payload(): that decodes a text payload with the charset parameter,
    # and fails (TypeError) when the parameter is RFC 2231-encoded (charset*=...).
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        for child in part.get_payload():
            yield from _leaves(child)
    else:
        yield part


def _is_attachment(part: email.message.Message) -> bool:
    if part.get_content_disposition() == "attachment" or part.get_filename():
        return True
    return part.get_content_type() not in ("text/plain", "text/html")


def _flatten(message: email.message.Message) -> bytes:
    """A parsed message as bytes again. The stdlib generator cannot write back everything it
    has read (8-bit text in a nested part, a header with a VT, a charset it cannot encode to);
    then the message is written back as read, by ``_as_read``."""
    try:
        return message.as_bytes()
    except (ValueError, LookupError, email.errors.MessageError):
        return _as_read(message).encode("utf-8", "surrogateescape")


def _as_read(message: email.message.Message) -> str:
    """Headers and payloads as the parser kept them (raw 8-bit bytes as surrogates), with no
    re-encoding or refolding, so nothing here can fail."""
    head = "".join(f"{name}: {value}\n" for name, value in message.raw_items())
    payload = message.get_payload()
    if not isinstance(payload, list):
        return f"{head}\n{payload}"
    if message.get_content_maintype() != "multipart":  # message/rfc822: one message inside
        return head + "\n" + "".join(_as_read(part) for part in payload)
    boundary = message.get_boundary() or ""
    parts = "".join(f"--{boundary}\n{_as_read(part)}\n" for part in payload)
    return f"{head}\n{parts}--{boundary}--\n"


def _attachment(part: email.message.Message) -> Attachment:
    if part.get_content_maintype() == "message":
        inner = part.get_payload() if part.is_multipart() else None
        data = _flatten(inner[0] if inner else part)
        default_name = "message.eml"
    else:
        payload = part.get_payload(decode=True)  # tolerant of bad base64 and padding
        data = payload if isinstance(payload, bytes) else b""
        default_name = "attachment"
    return Attachment(
        filename=clean(_decode_header(part.get_filename() or default_name)),
        content_type=clean(part.get_content_type()),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
    )


def decode_payload(part: email.message.Message) -> str:
    """A text part's content as str: its declared charset, else UTF-8, else Windows-1252."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return clean(part.get_payload())
    for charset in (part.get_content_charset(), "utf-8"):
        if not charset:
            continue
        try:
            return clean(payload.decode(charset))
        except (LookupError, ValueError):  # unknown or unusable charset name (a NUL in it), bad bytes
            continue
    return clean(payload.decode("windows-1252", "replace"))


def _body_and_attachments(message: email.message.Message) -> tuple[list[str], list[str], list[Attachment]]:
    """Inline text/plain and text/html parts, decoded, and everything else as attachments.

    mail-parser leaves 7-bit charsets such as ISO-2022-JP undecoded and its attachment
    decoding is strict about base64 padding, so both are done here with the stdlib.
    """
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    for part in _leaves(message):
        if _is_attachment(part):
            attachments.append(_attachment(part))
        elif part.get_content_type() == "text/plain":
            plain.append(decode_payload(part))
        else:
            html.append(decode_payload(part))
    return plain, html, attachments


def parse_message(raw: bytes) -> tuple[Parsed, email.message.Message]:
    """Parse one raw message; raise ParseError when nothing useful can be read."""
    if not raw.strip():
        raise ParseError("empty message")
    try:
        mail = mailparser.parse_from_bytes(raw)
    except Exception as exc:
        raise ParseError(f"mail-parser failed: {type(exc).__name__}: {exc}") from exc
    message = mail.message
    headers = _headers(message)
    if not headers:
        raise ParseError("no headers")
    from_values = list(headers.get("from", ()))
    from_pairs = email.utils.getaddresses(from_values)
    from_name, from_addr = next(((n, a) for n, a in from_pairs if "@" in a), ("", ""))
    plain_parts, html_parts, attachments = _body_and_attachments(message)
    html = "\n".join(html_parts) or None
    text = "\n".join(plain_parts).strip()
    if not text and html:
        text = html_to_text(html)
    subject = headers.get("subject", ("",))[0]
    parsed = Parsed(
        message_id=(message_ids(headers.get("message-id", ("",))[0]) or (None,))[0],
        in_reply_to=message_ids(headers.get("in-reply-to", ("",))[0]),
        references=message_ids(" ".join(headers.get("references", ()))),
        subject=subject,
        from_addr=clean(from_addr).strip().lower(),
        from_name=clean(from_name).strip(),
        to=_addresses(list(headers.get("to", ()))),
        cc=_addresses(list(headers.get("cc", ()))),
        reply_to=_addresses(list(headers.get("reply-to", ()))),
        date=_date(mail.date),
        headers=headers,
        text=text,
        html=html,
        attachments=tuple(attachments),
        defects=tuple(clean(d) for d in (mail.defects_categories or [])),
    )
    return parsed, message
