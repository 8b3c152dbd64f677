"""Raw message -> ``Parsed`` with the stdlib's parser (mail-parser's reading of dates). No I/O
but reading the raw message, when it is given as a file.

Whatever can be read is kept; what cannot be read at all raises ``ParseError`` and the
message goes to the quarantine. Strings are made safe for every database (no NUL bytes,
no lone surrogates from undecodable bytes).
"""

from __future__ import annotations

import binascii
import email.errors
import email.header
import email.message
import email.parser
import hashlib
import mimetypes
import os
import re
from datetime import datetime, timezone
from collections.abc import Callable, Iterator
from typing import Any

from mailparser.dates import parse_mail_date

from maild.core import tnef
from maild.core.addresses import CONTROL, Mailbox, is_message_id, mailboxes
from maild.core.html_text import html_to_text
from maild.core.elide import CHUNK as _CHUNK, ELIDE_AT, Raw, Skeleton, decode_base64
from maild.mail import Attachment, Parsed

_MSGID = re.compile(r"<([^<>]*)>")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
# Written on the way (docs/mail.md#threading): the same mail fetched by IMAP and received by SMTP differs here.
TRACE_HEADERS = frozenset({
    "received", "return-path", "delivered-to", "x-original-to", "authentication-results", "dkim-signature",
})
_TRACE_BYTES = frozenset(name.encode("ascii") for name in TRACE_HEADERS)
# Beside the contract's trace headers: what each receiving hop prepends to a mail of its own
# accord (Microsoft 365's and Google's filtering and routing stamps, ARC sets, spam and virus
# verdicts). The same mail fetched from two hosted mailboxes carries different ones, and
# two mails alike in all else are the same mail to the member.
_HOP_PREFIXES = (b"received-spf", b"arc-", b"x-received", b"x-ms-exchange-", b"x-ms-office365-",
                 b"x-ms-publictraffictype", b"x-ms-traffictypediagnostic", b"x-microsoft-antispam",
                 b"x-forefront-antispam", b"x-eopattributedmessage", b"x-eoptenantattributedmessage",
                 b"x-spam-", b"x-virus-", b"x-gm-", b"x-google-smtp-source", b"x-original-authentication-results")
MAX_DECODED_HEADER = 16384
FINGERPRINT_PREFIX = "v2:"  # fingerprints stored before it were of sender, date and body text only
_ID_HEADERS = ("message-id", "in-reply-to", "references")
# Headers where RFC 2047 allows no encoded words: kept as sent, so that an encoded word never
# turns into an identifier, a trace address or a line break.
_RAW_HEADERS = TRACE_HEADERS | frozenset(_ID_HEADERS) | {"resent-message-id"}
_ADDRESS_HEADERS = ("from", "to", "cc", "reply-to")


class ParseError(Exception):
    """The message cannot be read at all."""


def clean(value: Any) -> str:
    """A string that every database stores: no NUL, no lone surrogates."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return _SURROGATES.sub("\ufffd", text.replace("\x00", ""))


def content_fingerprint(raw: bytes | Raw) -> str:
    """The identity of a message's content (docs/mail.md#threading): every header but the trace headers
    (and the stamps receiving hops add), and the whole body with every part and attachment, as sent.

    Line ends are made alike (SMTP gives CRLF, an IMAP server or a file may give LF), header
    names lower-case and each header value unfolded with its whitespace runs made one space, so
    the same mail by SMTP and by IMAP has one fingerprint, and two mails that differ in any
    subject, body or attachment byte have two. The body is hashed in chunks: no copy of a big
    message is made, and a message in a file is read a chunk at a time.
    """
    source = raw if isinstance(raw, Raw) else Raw.of(raw)
    head_end, separator = _head_end(source)
    digest = hashlib.sha256(b"maild content v2\n")
    head = source.read(0, head_end).replace(b"\r\n", b"\n").replace(b"\r", b"\n").rstrip(b"\n")
    for field in re.split(rb"\n(?![ \t])", head):
        name, colon, value = field.partition(b":")
        key = name.strip().lower()
        if colon and (key in _TRACE_BYTES or key.startswith(_HOP_PREFIXES)):
            continue
        digest.update(name.strip().lower() + colon + b" ".join(value.split()) + b"\n")
    digest.update(b"\n")
    _hash_body(digest, source, head_end + separator)
    return FINGERPRINT_PREFIX + digest.hexdigest()[: 64 - len(FINGERPRINT_PREFIX)]


def _head_end(source: Raw) -> tuple[int, int]:
    """Where the header block ends (the first blank line, CRLF or LF) and the separator's length;
    (size, 0) when there is none."""
    if source.data is not None:
        raw = source.data
        ends = [(at, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (at := raw.find(sep)) >= 0]
        return min(ends) if ends else (source.size, 0)
    seen = b""
    for chunk in source.chunks():
        start = max(0, len(seen) - 3)  # a separator may straddle two chunks
        seen += chunk
        ends = [(at, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (at := seen.find(sep, start)) >= 0]
        if ends:
            return min(ends)
    return source.size, 0


def _hash_body(digest: Any, source: Raw, start: int) -> None:
    """The body (from ``start``) into ``digest`` with line ends made LF and the line ends at its very end left out."""
    end = source.size
    while end > start:  # the line ends at the very end, looked for backwards a little at a time
        tail = source.read(max(start, end - 4096), end)
        kept = len(tail.rstrip(b"\r\n"))
        end -= len(tail) - kept
        if kept:
            break
    carry = b""
    for chunk in source.chunks(start, end):
        piece = carry + chunk
        piece, carry = (piece[:-1], b"\r") if piece.endswith(b"\r") else (piece, b"")  # CRLF may straddle chunks
        digest.update(piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
    digest.update(carry.replace(b"\r", b"\n"))


def message_ids(value: str | None) -> tuple[str, ...]:
    """The Message-IDs named in a raw header value, in order, without angle brackets.

    An identifier with whitespace or control characters in it is left out."""
    if not value:
        return ()
    found = _MSGID.findall(value)
    if not found and value.strip():
        found = [value.strip()]  # some clients omit the brackets
    return tuple(dict.fromkeys(item for item in found if is_message_id(item)))


def _raw_headers(message: email.message.Message) -> dict[str, tuple[str, ...]]:
    """Every header as sent (8-bit bytes read as text), unfolded, by lower-case name."""
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items() if hasattr(message, "raw_items") else message.items():
        headers.setdefault(name.lower(), []).append(_FOLD.sub("", _eight_bit(str(value))).strip())
    return {name: tuple(values) for name, values in headers.items()}


def _headers(raw: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Header values for reading: encoded words decoded, except where RFC 2047 allows none."""
    return {
        name: tuple(clean(v) if name in _RAW_HEADERS else _decode_header(v) for v in values)
        for name, values in raw.items()
    }


def _cleaning_notes(raw: dict[str, tuple[str, ...]], decoded: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """What parsing left out or cleaned because of control characters (docs/mail.md#recipients), for the record."""
    def has_control(values: tuple[str, ...]) -> bool:
        return any(CONTROL.search(v.replace("\t", " ")) for v in values)  # a tab is header whitespace

    notes = []
    for name in _ADDRESS_HEADERS:
        if has_control(decoded.get(name, ())):
            notes.append(f"{name}: control characters; names were cleaned, addresses with them left out")
    for name in _ID_HEADERS:
        if has_control(raw.get(name, ())):
            notes.append(f"{name}: control characters; identifiers with them left out")
    return tuple(notes)


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


def _decode_header(value: str) -> str:
    """A header value with RFC 2047 words decoded, whatever their charset. Only its first
    ``MAX_DECODED_HEADER`` characters: the stdlib's decoder takes time quadratic in the number
    of encoded words (4 MB of them: a minute), and no header a person reads is that long."""
    value = value[:MAX_DECODED_HEADER]
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
    payload = message._payload  # as stored: get_payload() decodes 8-bit text with the charset parameter, and can fail
    if not isinstance(payload, list):
        return f"{head}\n{payload}"
    if message.get_content_maintype() != "multipart":  # message/rfc822: one message inside
        return head + "\n" + "".join(_as_read(part) for part in payload)
    boundary = message.get_boundary() or ""
    parts = "".join(f"--{boundary}\n{_as_read(part)}\n" for part in payload)
    return f"{head}\n{parts}--{boundary}--\n"


def _attachment(part: email.message.Message, skeleton: Skeleton) -> Attachment:
    content_id = _content_id(part)
    if part.get_content_maintype() == "message":
        inner = part.get_payload() if part.is_multipart() else None
        data = _flatten(inner[0] if inner else part)
        default_name = "message.eml"
    else:
        streamed = _streamed(part, skeleton)
        if streamed is not None:
            return Attachment(_filename(part, "attachment"), clean(part.get_content_type()), *streamed, content_id)
        data = _content(part)
        default_name = "attachment"
    return Attachment(
        filename=_filename(part, default_name),
        content_type=clean(part.get_content_type()),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content=data,
        content_id=content_id,
    )


# controls and the marks that reorder text (U+202E shows "gpj.exe" as "exe.jpg"): a name shown
# to staff or written on a member's mail must read as it is stored
_NOT_IN_NAMES = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def attachment_name(name: str, default: str = "attachment") -> str:
    """A file name to store and show: no controls or direction marks, no directory part (a
    name is never a path: "../../x" and "C:\\x" become "x"), at most 255 characters."""
    text = _NOT_IN_NAMES.sub("", clean(name))
    text = text.replace("\\", "/").rsplit("/", 1)[-1].strip(" .")
    return text[:255] or default


def _content_id(part: email.message.Message) -> str:
    """The part's Content-ID without its angle brackets, "" when it has none or a bad one."""
    value = part.get("content-id")
    if not isinstance(value, str):
        return ""
    found = message_ids(clean(value))
    return found[0] if found and len(found[0]) <= 250 else ""


def _filename(part: email.message.Message, default: str) -> str:
    return attachment_name(_decode_header(_eight_bit(part.get_filename() or default)), default)


def _base64_text(part: email.message.Message) -> str | None:
    """The base64 text of a part to decode with a2b_base64, or None for the stdlib's decoding."""
    if str(part.get("content-transfer-encoding", "")).strip().lower() != "base64":
        return None
    try:
        text = part.get_payload()
    except (TypeError, LookupError, ValueError):  # 8-bit bytes and a charset the stdlib cannot decode with (a NUL in it)
        return None
    return text if isinstance(text, str) and text.isascii() else None


def _streamed(part: email.message.Message, skeleton: Skeleton) -> tuple[int, str, Callable[[], Iterator[bytes]]] | None:
    """(size, sha256, content) of a base64 attachment with runs left out of the skeleton: decoded
    a chunk at a time, now to measure it and again whenever its content is read. None for any
    other part, and when its base64 is broken (then the runs are put back for the stdlib)."""
    text = _base64_text(part)
    if text is None or not skeleton.holds(text):
        return None

    def content() -> Iterator[bytes]:
        return decode_base64(skeleton.pieces(text))

    digest, size = hashlib.sha256(), 0
    try:
        for chunk in content():
            digest.update(chunk)
            size += len(chunk)
    except binascii.Error:
        part.set_payload(skeleton.expand(text))
        return None
    return size, digest.hexdigest(), content


def _unpacked(item: Attachment) -> list[Attachment]:
    """Outlook's winmail.dat as the files inside it (``core.tnef``); anything else as it is."""
    if not tnef.named(item.filename, item.content_type):
        return [item]
    inside = tnef.files(item.data)
    if inside is None:
        return [item]
    return [
        Attachment(
            filename=attachment_name(name),
            content_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content=data,
        )
        for name, data in inside
    ]


def _content(part: email.message.Message) -> bytes:
    """A leaf's content, decoded. Base64 straight from the parsed text: ``get_payload(decode=True)``
    makes four copies of it on the way (25 MB of attachment cost 100 MB more); it is still the
    way for bad padding and everything else, as it is tolerant of bad base64."""
    text = _base64_text(part)
    if text is not None:
        try:
            return binascii.a2b_base64(text)  # skips line breaks and other non-alphabet bytes, as the stdlib does
        except binascii.Error:
            pass
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def content_charset(part: email.message.Message) -> str | None:
    """The part's declared charset, or None when it has none or one that cannot be a name (the
    stdlib raises for an RFC 2231 ``charset*=`` whose own charset part holds a NUL)."""
    try:
        return part.get_content_charset()
    except (ValueError, LookupError, TypeError):
        return None


def decode_payload(part: email.message.Message) -> str:
    """A text part's content as str: its declared charset, else UTF-8, else Windows-1252."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return clean(part.get_payload())
    for charset in (content_charset(part), "utf-8"):
        if not charset:
            continue
        try:
            return clean(payload.decode(charset))
        except (LookupError, ValueError):  # unknown or unusable charset name (a NUL in it), bad bytes
            continue
    return clean(payload.decode("windows-1252", "replace"))


def _body_and_attachments(
    message: email.message.Message, skeleton: Skeleton,
) -> tuple[list[str], list[str], list[Attachment]]:
    """Inline text/plain and text/html parts, decoded, and everything else as attachments.

    Base64 attachments keep the skeleton's stand-ins (their content is decoded from the raw
    message when read); every other part gets its text back first."""
    leaves = [(part, _is_attachment(part)) for part in _leaves(message)]
    skeleton.expand_parts(message, keep=[part for part, attached in leaves
                                         if attached and part.get_content_maintype() != "message"
                                         and _base64_text(part) is not None])
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    for part, attached in leaves:
        if attached:
            attachments.extend(_unpacked(_attachment(part, skeleton)))
        elif part.get_content_type() == "text/plain":
            plain.append(decode_payload(part))
        else:
            html.append(decode_payload(part))
    return plain, html, attachments


def _mailboxes(raw_headers: dict[str, tuple[str, ...]], name: str) -> tuple[Mailbox, ...]:
    return mailboxes(clean(v) for v in raw_headers.get(name, ()))


def _addresses(raw_headers: dict[str, tuple[str, ...]], name: str) -> tuple[str, ...]:
    return tuple(m.address for m in _mailboxes(raw_headers, name))


def parse_message(raw: bytes | os.PathLike[str], *, elide_at: int = ELIDE_AT) -> tuple[Parsed, email.message.Message]:
    """Parse one raw message, given as bytes or as the path of a file holding it (a file is
    read a chunk at a time and never held whole); raise ParseError when nothing useful can be read.

    Runs of base64 lines of ``elide_at`` bytes or more never reach the stdlib parser (see
    ``maild.core.elide``): a base64 attachment's content is decoded from the raw message a
    chunk at a time when read (``Attachment.chunks``), so a message given as a path must stay
    where it is while its attachments are read. In the message returned, such an attachment's
    payload is a short stand-in: read attachments from ``Parsed.attachments``.
    """
    source = Raw.of(raw)
    if source.is_blank():
        raise ParseError("empty message")
    skeleton = Skeleton.of(source, elide_at)
    try:
        # from a stream: message_from_bytes copies the whole message into a StringIO, 4 bytes a character
        message = email.parser.BytesParser().parse(skeleton.stream())
    except Exception as exc:  # RecursionError on absurd nesting, among others
        raise ParseError(f"parser failed: {type(exc).__name__}: {exc}") from exc
    raw_headers = _raw_headers(message)
    if not raw_headers:
        raise ParseError("no headers")
    headers = _headers(raw_headers)
    sender = next(iter(_mailboxes(raw_headers, "from")), Mailbox("", ""))
    plain_parts, html_parts, attachments = _body_and_attachments(message, skeleton)
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
        from_addr=sender.address,
        from_name=sender.name,
        to=_addresses(raw_headers, "to"),
        cc=_addresses(raw_headers, "cc"),
        reply_to=_addresses(raw_headers, "reply-to"),
        date=_date(parse_mail_date(next((v for n, v in message.raw_items() if n.lower() == "date"), None)).value),
        headers=headers,
        text=text,
        html=html,
        attachments=tuple(attachments),
        defects=tuple(sorted({type(defect).__name__ for part in message.walk() for defect in part.defects})),
        authentication_results=headers.get("authentication-results", ()),  # a trace header: kept raw
        cleaned=_cleaning_notes(raw_headers, headers),
        fingerprint=content_fingerprint(source),
    )
    return parsed, message
