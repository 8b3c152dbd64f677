"""The pieces of a message in wire form, written directly: header fields, MIME text parts and
files (base64, RFC 2231 names), in multipart/alternative, /related and /mixed.

Pure: no I/O (a file's bytes come in as chunks from the caller). The stdlib's ``email``
package builds the same thing through generic objects and folds every header through a
policy; for the few shapes of mail maild writes, that was most of the cost of filing a ticket
(``bench/compose.py``). What is written here is checked against the stdlib's parser in the
tests: encoded words (RFC 2047) that never split a character, folding only at spaces that were
already there, CRLF line ends, nothing from a value that could end a line, and files that read
back as written (tests/property/test_compose_properties.py).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from email.utils import formataddr
from pathlib import Path

LINE = 78  # RFC 5322's "SHOULD": longer only when one word is longer
_WORD_ROOM = 75 - len("=?utf-8?q??=")  # RFC 2047: an encoded word is at most 75 characters
_Q_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/")
_Q_CACHE: dict[str, str] = {" ": "_"}
_NOT_7BIT = re.compile(r"[^\t\n\x20-\x7e]|[^\n]{999}")  # a control, a non-ASCII, a line too long
_BREAKS = re.compile(r"\r\n?")  # CRLF or a lone CR; LF stays


def _q(char: str) -> str:
    """One character in RFC 2047 Q form (safe in a phrase as in unstructured text)."""
    piece = _Q_CACHE.get(char)
    if piece is None:
        if char in _Q_SAFE:
            piece = char
        else:
            piece = "".join(f"={byte:02X}" for byte in char.encode("utf-8", "replace"))
        if len(_Q_CACHE) < 4096:
            _Q_CACHE[char] = piece
    return piece


def encoded_words(text: str, first: int = 75) -> list[str]:
    """``text`` as UTF-8 Q encoded words of at most 75 characters (the first at most
    ``first``), each holding whole characters; decoders join adjacent words and drop the
    spaces between them."""
    words: list[str] = []
    pieces: list[str] = []
    used = 0
    room = min(max(first, 20), 75) - (75 - _WORD_ROOM)
    for char in text:
        piece = _q(char)
        if used + len(piece) > room and pieces:
            room = _WORD_ROOM
            words.append("=?utf-8?q?" + "".join(pieces) + "?=")
            pieces, used = [], 0
        pieces.append(piece)
        used += len(piece)
    if pieces or not words:
        words.append("=?utf-8?q?" + "".join(pieces) + "?=")
    return words


@lru_cache(maxsize=256)  # a notice's subject and threading headers repeat for each recipient
def field(name: str, value: str) -> str:
    """One header field with its CRLF: ASCII as it is, anything else as encoded words; folded
    at spaces to lines of :data:`LINE` characters where the words allow. ``value`` must be one
    line already (the callers pass it through ``header_safe`` or build it from checked parts)."""
    words = value.split(" ") if value.isascii() else encoded_words(value, LINE - len(name) - 2)
    return _fold(name, words)


def address_field(name: str, addresses: list[tuple[str, str]]) -> str:
    """``To``, ``From`` and their kind: ``(display name, ASCII address)`` pairs, comma-separated;
    a name that is not ASCII goes as encoded words, an ASCII one quoted where it must be."""
    words: list[str] = []
    for index, (display, addr) in enumerate(addresses):
        mailbox = list(_mailbox(display, addr))
        if index < len(addresses) - 1:
            mailbox[-1] += ","
        words += mailbox
    return _fold(name, words)


@lru_cache(maxsize=1024)  # the queue's name and address are in every mail
def _mailbox(display: str, addr: str) -> tuple[str, ...]:
    if not display:
        return (addr,)
    if display.isascii():
        return tuple(formataddr((display, addr)).split(" "))
    # one word: parsers join split words in a phrase with a space between
    return ("=?utf-8?q?" + "".join(_q(char) for char in display) + "?=", f"<{addr}>")


def _fold(name: str, words: list[str]) -> str:
    lines: list[str] = []
    line = f"{name}:"
    for word in words:
        if len(line) + 1 + len(word) > LINE and len(line) > len(name) + 1:
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def text_part(content: str, subtype: str) -> tuple[str, bytes]:
    """The MIME headers and body of one text part: 7bit when it is short-lined printable ASCII,
    else UTF-8 quoted-printable (readable in a client's source view, unlike base64). Every line
    break becomes CRLF; a lone CR never reaches the wire."""
    text = _BREAKS.sub("\n", content) if "\r" in content else content
    if not _NOT_7BIT.search(text):
        headers = f'Content-Type: text/{subtype}; charset="us-ascii"\r\nContent-Transfer-Encoding: 7bit\r\n'
        return headers, text.replace("\n", "\r\n").encode("ascii")
    # given LF line ends, b2a_qp writes LF for hard and soft breaks alike; then all become CRLF
    body = binascii.b2a_qp(text.encode("utf-8", "replace"), istext=True).replace(b"\n", b"\r\n")
    headers = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
    return headers, body


@dataclass(frozen=True)
class Attached:
    """A file that goes with an outgoing mail: its bytes, or the path of a file holding them
    (read a chunk at a time when the mail is written). ``content_id``: an inline part, shown
    where the HTML part refers to ``cid:CONTENT_ID``; the filename and type are cleaned when
    written (:func:`safe_filename`, :func:`safe_content_type`), so values from mail may come as
    they are."""

    filename: str
    content_type: str
    content: bytes | Path = b""
    size: int = 0
    content_id: str | None = None


Part = tuple[str, bytes | list[bytes]]  # MIME headers (CRLF-ended) and the body (pieces to join)


def mime_body(text: str, html: str | None, files: Sequence[Attached] = (),
              encoded: Sequence[list[bytes]] | None = None) -> bytes:
    """:func:`mime_pieces` joined."""
    return b"".join(mime_pieces(text, html, files, encoded))


def mime_pieces(text: str, html: str | None, files: Sequence[Attached] = (),
                encoded: Sequence[list[bytes]] | None = None) -> list[bytes]:
    """Everything from ``MIME-Version`` on, as pieces to join (a caller that puts a head of its
    own before them joins once: no copy of a big body in between). One text part, or text and
    HTML as alternatives; with files, those in multipart/mixed around it, and inline ones (a
    ``content_id``, and an HTML part to show them) in multipart/related beside the HTML, the
    shape mail clients write:

    mixed( alternative( plain, related( html, inline... ) ), attachment... )

    The same for every recipient of a notice, so callers build it once per notice.
    ``encoded``: each file's content as :func:`base64_lines` already (callers that read files
    from disk, or share them between bodies); else the files' contents must be bytes."""
    if encoded is None:
        encoded = [base64_lines([item.content if isinstance(item.content, bytes) else b""]) for item in files]
    inline: list[Part] = []
    attached: list[Part] = []
    for item, lines in zip(files, encoded):
        if html is not None and safe_content_id(item.content_id or ""):
            inline.append(file_part(item, lines, inline=True))
        else:
            attached.append(file_part(item, lines, inline=False))
    plain = text_part(text, "plain")
    body: Part = plain
    if html is not None:
        html_body: Part = text_part(html, "html")
        if inline:
            html_body = _multipart("related", [html_body, *inline], 'type="text/html"; ')
        body = _multipart("alternative", [plain, html_body])
    if attached:
        body = _multipart("mixed", [body, *attached])
    headers, pieces = body
    return [b"MIME-Version: 1.0\r\n", headers.encode("ascii"), b"\r\n",
            *(pieces if isinstance(pieces, list) else [pieces])]


def _multipart(subtype: str, parts: list[Part], parameters: str = "") -> Part:
    """Parts in one multipart: its headers, and its body as pieces (big ones are not copied
    before the whole message is joined)."""
    boundary = _boundary([piece for _, body in parts for piece in (body if isinstance(body, list) else [body])])
    out: list[bytes] = []
    for headers, body in parts:
        out.append(f"--{boundary}\r\n{headers}\r\n".encode("ascii"))
        out += body if isinstance(body, list) else [body]
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return f'Content-Type: multipart/{subtype}; {parameters}boundary="{boundary}"\r\n', out


def _boundary(bodies: list[bytes]) -> str:
    """A boundary no part contains: ``=_`` never occurs in quoted-printable nor base64, and a
    7bit part (also inside a nested multipart) is searched."""
    while True:
        boundary = f"=_{uuid.uuid4().hex}"
        if not any(boundary.encode("ascii") in body for body in bodies):
            return boundary


_B64_CHUNK = 57 * 16384  # whole base64 lines of 76 characters, about 900 KB at a time


def file_part(item: Attached, lines: list[bytes], inline: bool) -> Part:
    """One file as a MIME part with its cleaned type and name (RFC 2231 where it is not plain
    ASCII); ``lines``: its content as :func:`base64_lines`. An inline one carries its Content-ID."""
    content_type = safe_content_type(item.content_type)
    name = safe_filename(item.filename, item.content_type)
    content_id = safe_content_id(item.content_id or "") if inline else None
    headers = (_parameters(f"Content-Type: {content_type}", "name", name)
               + _parameters(f"Content-Disposition: {'inline' if content_id else 'attachment'}", "filename", name)
               + "Content-Transfer-Encoding: base64\r\n"
               + (f"Content-ID: <{content_id}>\r\n" if content_id else ""))
    return headers, lines


def base64_lines(chunks: Iterable[bytes]) -> list[bytes]:
    """The bytes of ``chunks`` (pieces of any size) as base64 lines of 76 characters, CRLF-ended,
    in pieces to join; encoded about :data:`_B64_CHUNK` bytes at a time."""
    pieces: list[bytes] = []
    buffer = b""
    for chunk in chunks:
        buffer = buffer + chunk if buffer else chunk
        whole = len(buffer) - len(buffer) % 57
        if whole < _B64_CHUNK:
            continue
        view = memoryview(buffer)
        for start in range(0, whole, _B64_CHUNK):
            pieces.append(_lines(base64.b64encode(view[start:min(start + _B64_CHUNK, whole)])))
        buffer = bytes(view[whole:])
    if buffer:
        pieces.append(_lines(base64.b64encode(buffer)))
    return pieces


def _lines(encoded: bytes) -> bytes:
    """Base64 text as CRLF-ended lines of 76 characters (RFC 2045)."""
    return b"".join(encoded[i:i + 76] + b"\r\n" for i in range(0, len(encoded), 76))


_TOKEN = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,64}")
_ATTR_CHAR = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~")
_QUOTABLE = re.compile(r"[ !#-\[\]-~]{1,60}")  # printable ASCII but '"' and '\\': as a quoted-string
_MSG_ID_SAFE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,200}")
NAME_LIMIT = 200  # characters; file systems allow 255 bytes, the extension is kept


def safe_content_type(value: str) -> str:
    """A MIME type fit for the header, else ``application/octet-stream``. An attached message
    (``message/*``) goes as a file too: RFC 2046 allows no base64 for those, and a client
    would show it as part of our mail."""
    value = value.strip().lower()
    if not _TOKEN.fullmatch(value) or value.startswith(("message/", "multipart/")):
        return "application/octet-stream"
    return value


def safe_filename(name: str, content_type: str = "") -> str:
    """A name to save the file under: the last path component, no control or format
    characters, no leading dots or spaces, at most :data:`NAME_LIMIT` characters with its
    extension kept; ``attachment`` with the type's extension when nothing is left. An attached
    message's name ends in ``.eml`` (``message.eml`` when it has none), so that it opens as mail."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if unicodedata.category(char)[0] not in "CZ" or char == " ")
    name = name.strip(" .")
    if content_type.strip().lower().startswith("message/") and not name.lower().endswith(".eml"):
        name = f"{name}.eml" if name else ""
    if len(name) > NAME_LIMIT:
        _, dot, extension = name.rpartition(".")
        keep = dot + extension if dot and 0 < len(extension) <= 16 else ""
        name = name[:NAME_LIMIT - len(keep)].rstrip(" .") + keep
    if name:
        return name
    content_type = content_type.strip().lower()
    if content_type.startswith("message/"):
        return "message.eml"
    return "attachment" + (mimetypes.guess_extension(content_type) or "" if _TOKEN.fullmatch(content_type) else "")


def safe_content_id(value: str) -> str | None:
    """A Content-ID (without angle brackets) that can go into a header and an HTML attribute
    as it is, else None."""
    value = value.strip().strip("<>")
    return value if _MSG_ID_SAFE.fullmatch(value) else None


def _parameters(head: str, name: str, value: str) -> str:
    """``head`` with the parameter ``name=value`` on a line of its own: a quoted string when it
    is short printable ASCII that cannot be taken for an encoded word, else RFC 2231 UTF-8
    percent-encoding, in continuations of at most 50 characters so that no line grows long
    whatever the value. CRLF-ended."""
    if _QUOTABLE.fullmatch(value) and "=?" not in value:  # clients decode RFC 2047 in quoted names too
        return f'{head};\r\n {name}="{value}"\r\n'
    encoded = "".join(chr(byte) if byte in _ATTR_CHAR else f"%{byte:02X}" for byte in value.encode("utf-8"))
    if len(encoded) <= 50:
        return f"{head};\r\n {name}*=utf-8''{encoded}\r\n"
    sections: list[str] = []
    start = 0
    while start < len(encoded):
        end = min(start + 50, len(encoded))
        if "%" in encoded[end - 2:end] and end < len(encoded):  # never split a %XX
            end = encoded.rindex("%", start, end)
        sections.append(encoded[start:end])
        start = end
    lines = [f"{name}*{index}*={'utf-8' + chr(39) * 2 if index == 0 else ''}{section}"
             for index, section in enumerate(sections)]
    return head + ";\r\n " + ";\r\n ".join(lines) + "\r\n"
