"""The pieces of a message in wire form, written directly: header fields and MIME text parts.

Pure: no I/O. The stdlib's ``email`` package builds the same thing through generic objects and
folds every header through a policy; for the few shapes of mail maild writes, that was most of
the cost of filing a ticket (``bench/compose.py``). What is written here is checked against the
stdlib's parser in the tests: encoded words (RFC 2047) that never split a character, folding only
at spaces that were already there, CRLF line ends, and nothing from a value that could end a line.
"""

from __future__ import annotations

import binascii
import re
import uuid
from functools import lru_cache
from email.utils import formataddr

LINE = 78  # RFC 5322's "SHOULD": longer only when one word is longer
_WORD_ROOM = 75 - len("=?utf-8?q??=")  # RFC 2047: an encoded word is at most 75 characters
_Q_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/")
_Q_CACHE: dict[str, str] = {" ": "_"}
_NOT_7BIT = re.compile(r"[^\t\n\x20-\x7e]|[^\n]{999}")  # a control, a non-ASCII, a line too long
_BREAKS = re.compile(r"\r\n?|\n")


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
    text = _BREAKS.sub("\n", content)
    if not _NOT_7BIT.search(text):
        headers = f'Content-Type: text/{subtype}; charset="us-ascii"\r\nContent-Transfer-Encoding: 7bit\r\n'
        return headers, text.replace("\n", "\r\n").encode("ascii")
    # given LF line ends, b2a_qp writes LF for hard and soft breaks alike; then all become CRLF
    body = binascii.b2a_qp(text.encode("utf-8", "replace"), istext=True).replace(b"\n", b"\r\n")
    headers = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
    return headers, body


def mime_body(text: str, html: str | None) -> bytes:
    """Everything from ``MIME-Version`` on: one text part, or text and HTML as alternatives.
    The same for every recipient of a notice, so callers build it once per notice."""
    headers, body = text_part(text, "plain")
    if html is None:
        return b"MIME-Version: 1.0\r\n" + headers.encode("ascii") + b"\r\n" + body
    parts = [(headers, body), text_part(html, "html")]
    boundary = _boundary([body for _, body in parts])
    out = [f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode("ascii")]
    for part_headers, part_body in parts:
        out += [f"--{boundary}\r\n{part_headers}\r\n".encode("ascii"), part_body, b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


def _boundary(bodies: list[bytes]) -> str:
    """A boundary no part contains: ``=_`` never occurs in quoted-printable, and a 7bit part
    is searched."""
    while True:
        boundary = f"=_{uuid.uuid4().hex}"
        if not any(boundary.encode("ascii") in body for body in bodies):
            return boundary
