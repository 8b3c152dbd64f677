"""Raw bytes -> ``Parsed`` with the stdlib's parser (mail-parser's reading of dates). Pure: no I/O.

Whatever can be read is kept; what cannot be read at all raises ``ParseError`` and the
message goes to the quarantine. Strings are made safe for every database (no NUL bytes,
no lone surrogates from undecodable bytes).
"""

from __future__ import annotations

import binascii
import email.header
import email.message
import email.parser
import email.utils
import hashlib
import io
import re
from datetime import datetime, timezone
from collections.abc import Iterator
from typing import Any

from mailparser.dates import parse_mail_date

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


def _undecoded(message: email.message.Message, name: str) -> tuple[str, ...]:
    """A header's values as written, unfolded: no RFC 2047 decoding, which could put a ``;``
    or a ``)`` into a structured header (the parser would then read a result that is not there)."""
    return tuple(clean(re.sub(r"\r?\n(?=[ \t])", "", _eight_bit(str(value)))).strip()
                 for key, value in message.raw_items() if key.lower() == name)


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
    if part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), list):
        for child in part.get_payload():
            yield from _leaves(child)
    else:
        yield part


def _is_attachment(part: email.message.Message) -> bool:
    if part.get_content_disposition() == "attachment" or part.get_filename():
        return True
    return part.get_content_type() not in ("text/plain", "text/html")


def _attachment(part: email.message.Message) -> Attachment:
    if part.get_content_maintype() == "message":
        inner = part.get_payload()
        data = inner[0].as_bytes() if isinstance(inner, list) and inner else part.as_bytes()
        default_name = "message.eml"
    else:
        data = _content(part)
        default_name = "attachment"
    return Attachment(
        filename=clean(_decode_header(part.get_filename() or default_name)),
        content_type=part.get_content_type(),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
    )


def _content(part: email.message.Message) -> bytes:
    """A leaf's content, decoded. Base64 straight from the parsed text: ``get_payload(decode=True)``
    makes four copies of it on the way (25 MB of attachment cost 100 MB more); it is still the
    way for bad padding and everything else, as it is tolerant of bad base64."""
    text = part.get_payload()
    if isinstance(text, str) and text.isascii() and part.get("content-transfer-encoding", "").strip().lower() == "base64":
        try:
            return binascii.a2b_base64(text)  # skips line breaks and other non-alphabet bytes, as the stdlib does
        except binascii.Error:
            pass
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


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
        except (LookupError, UnicodeDecodeError):
            continue
    return clean(payload.decode("windows-1252", "replace"))


def _body_and_attachments(message: email.message.Message) -> tuple[list[str], list[str], list[Attachment]]:
    """Inline text/plain and text/html parts, decoded, and everything else as attachments."""
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
        # from a stream: message_from_bytes copies the whole message into a StringIO, 4 bytes a character
        message = email.parser.BytesParser().parse(io.BytesIO(raw))
    except Exception as exc:  # RecursionError on absurd nesting, among others
        raise ParseError(f"parser failed: {type(exc).__name__}: {exc}") from exc
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
        date=_date(parse_mail_date(next((v for n, v in message.raw_items() if n.lower() == "date"), None)).value),
        headers=headers,
        text=text,
        html=html,
        attachments=tuple(attachments),
        defects=tuple(sorted({type(defect).__name__ for part in message.walk() for defect in part.defects})),
        authentication_results=_undecoded(message, "authentication-results"),
    )
    return parsed, message
