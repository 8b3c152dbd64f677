"""Addresses (and identifiers) out of mail headers, read before any RFC 2047 decoding
(docs/mail.md#recipients). Pure: no I/O.

An address header is parsed from its raw value with the standard library's RFC 5322 parser
(the one behind ``email.headerregistry``, whose public classes refuse display names with line
breaks instead of reading past them). Only the structure decides what an address is; encoded
words are decoded afterwards, and only in display names. A mailbox that the parser cannot read,
or whose address is not a plain ``local@domain``, yields nothing: an address is never guessed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email import _header_value_parser as rfc5322  # what email.headerregistry uses

# C0 controls (CR, LF and TAB among them), DEL and C1 controls: never part of a value we keep.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NOT_IN_ID = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")  # \s: what str.isspace() finds, U+2028 and NBSP too
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[^?\s]+\?[^?\s]*\?=")
_ATEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~.")
_DOMAIN_ASCII = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
MAX_ADDRESS = 254  # RFC 5321: a path is at most 256 octets with its angle brackets
MAX_NAME = 200
MAX_MESSAGE_ID = 500
MAX_MAILBOXES = 1000  # read of one header
MAX_PIECE = 10_000  # one mailbox, or one group, with its display name and comments


@dataclass(frozen=True)
class Mailbox:
    name: str  # the display name, decoded and on one line ("" when none)
    address: str  # lower-case local@domain


def single_line(text: str, limit: int | None = None) -> str:
    """``text`` without control characters: each run of them (and the spaces around it) is one space."""
    line = " ".join(CONTROL.sub(" ", _SURROGATES.sub("\ufffd", text)).split())
    return line[:limit] if limit else line


def _printable_beyond_ascii(char: str) -> bool:
    return ord(char) >= 0xA0 and char.isprintable()


def valid_address(local: str | None, domain: str | None) -> str | None:
    """``local@domain`` lower-cased when both parts are plain (dot-atom, RFC 6532 UTF-8 allowed),
    else None: no whitespace, control characters, quotes, second ``@`` or domain literal."""
    if not local or not domain or len(local) + len(domain) + 1 > MAX_ADDRESS:
        return None
    if not all(c in _ATEXT or _printable_beyond_ascii(c) for c in local):
        return None
    if not all(c in _DOMAIN_ASCII or _printable_beyond_ascii(c) for c in domain):
        return None
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        return None
    return f"{local}@{domain}".lower()


def is_message_id(text: str) -> bool:
    """A Message-ID (without its angle brackets) that can go back out in a header: not empty,
    not too long, no whitespace, no control characters."""
    return 0 < len(text) <= MAX_MESSAGE_ID and not _NOT_IN_ID.search(text)


@functools.lru_cache(maxsize=4096)  # the queue's staff are recipients of nearly every mail maild makes
def is_address(text: str) -> bool:
    """A stored address that can go out as a recipient: exactly what ``valid_address`` gives."""
    local, _, domain = text.rpartition("@")
    return valid_address(local, domain) == text.lower()


def parse_address(text: str) -> str | None:
    """One bare or bracketed address (``a@b``, ``<a@b>``), as in Return-Path or a DSN field."""
    found = mailboxes([text])
    return found[0].address if len(found) == 1 else None


def mailboxes(raw_values: Iterable[str]) -> tuple[Mailbox, ...]:
    """The mailboxes of raw (undecoded) address header values, in order, without repeats.

    Groups are flattened. A mailbox is kept only when the parser read it as one, or when only
    its display name is malformed (``. <a@b>``) and the angle-bracketed address is clean.
    """
    found: dict[str, Mailbox] = {}
    for value in raw_values:
        for mailbox in _parse_value(value):
            found.setdefault(mailbox.address, mailbox)
    return tuple(found.values())


def _parse_value(value: str) -> tuple[Mailbox, ...]:
    """One raw header value's mailboxes. The short values that come again and again (the
    queue's own address in To:, a member's From: in each of their mails) are remembered."""
    return _remembered(value) if len(value) <= _REMEMBER_UP_TO else _unfolded(value)


def _unfolded(value: str) -> tuple[Mailbox, ...]:
    return _parse(_FOLD.sub("", _SURROGATES.sub("\ufffd", value)))


_REMEMBER_UP_TO = 1000
_remembered = functools.lru_cache(maxsize=4096)(_unfolded)


def _parse(value: str) -> tuple[Mailbox, ...]:
    """The clean mailboxes of one header value. A header with anything the parser could not
    read as a mailbox yields none at all (``a@b)<c@d>``, ``x <a@b> <c@d>``): an address that
    only parses with a guess is no address. A well-formed mailbox whose address is not
    acceptable (control characters, quotes) is left out alone."""
    found: list[Mailbox] = []
    for piece in _pieces(value)[:MAX_MAILBOXES]:  # who needs more is no person's mail
        if len(piece) > MAX_PIECE:
            return ()
        try:
            address_list, rest = rfc5322.get_address_list(piece)
            tokens = address_list.all_mailboxes
            mailboxes = [_mailbox(token) for token in tokens]
        except Exception:  # noqa: BLE001 - the private parser gives up in many ways
            return ()
        if rest.strip() or any(m is None and t.token_type == "invalid-mailbox" for t, m in zip(tokens, mailboxes)):
            return ()
        found.extend(mailbox for mailbox in mailboxes if mailbox is not None)
    return tuple(found)


def _pieces(value: str) -> list[str]:
    """``value`` cut at its top-level commas: about one mailbox a piece, found in linear time.

    The stdlib parser takes time quadratic in what it is given (10,000 addresses in one To:
    took it 45 s), so it gets one piece at a time. Quoted strings and comments (with their
    backslash escapes), angle brackets and encoded words stay whole, as the parser reads them.
    A value with a group (a top-level ``:`` or ``;``) is one piece: a group is parsed whole.
    """
    cuts = [-1]
    at = depth = 0
    quoted = angle = False
    while at < len(value):
        char = value[at]
        if (quoted or depth) and char == "\\":
            at += 1  # the escaped character, whatever it is
        elif quoted:
            quoted = char != '"'
        elif char == "(":
            depth += 1
        elif depth:
            depth -= char == ")"
        elif char == '"':
            quoted = True
        elif char in "<>":
            angle = char == "<"
        elif char == "=" and (word := _ENCODED_WORD.match(value, at)):
            at = word.end() - 1
        elif not angle and char in ":;":
            return [value]
        elif not angle and char == ",":
            cuts.append(at)
        at += 1
    cuts.append(len(value))
    return [value[a + 1 : b] for a, b in zip(cuts, cuts[1:]) if value[a + 1 : b].strip(" \t")]  # RFC whitespace only


def _mailbox(token: rfc5322.TokenList) -> Mailbox | None:
    if token.token_type == "mailbox":
        address_part = token[0] if token[0].token_type == "addr-spec" else _child(token[0], "angle-addr")
    elif token.token_type == "invalid-mailbox" and len(token) == 1 and token[0].token_type == "name-addr":
        address_part = _child(token[0], "angle-addr")  # a broken display name, a clean <address>, nothing else
        if address_part is None or address_part.all_defects:
            return None
    else:
        return None
    if address_part is None or any(t.token_type == "encoded-word" for t in _walk(address_part)):
        return None  # RFC 2047 forbids encoded words in an address; they never become one
    address = valid_address(token.local_part, token.domain)
    if address is None:
        return None
    return Mailbox(single_line(_display_name(token), MAX_NAME), address)


def _display_name(token: rfc5322.TokenList) -> str:
    try:
        return token.display_name or ""
    except Exception:  # noqa: BLE001 - a malformed name (". <a@b>") crashes the property
        return ""


def _child(token: rfc5322.TokenList, token_type: str) -> rfc5322.TokenList | None:
    return next((t for t in token if isinstance(t, rfc5322.TokenList) and t.token_type == token_type), None)


def _walk(token: rfc5322.TokenList) -> Iterator[rfc5322.TokenList]:
    yield token
    for child in token:
        if isinstance(child, rfc5322.TokenList):
            yield from _walk(child)
