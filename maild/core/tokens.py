"""Reply tokens: ``queue+TOKEN@domain`` addresses that tie a reply to its ticket.

A member token is ``<number>-<mac>``: the ticket number and an HMAC of it under the
instance's secret key, so a token cannot be guessed from a ticket number. Pure: no I/O.
"""

from __future__ import annotations

import base64
import hmac
import re

_TOKEN = re.compile(r"^(\d{1,12})-([a-z2-7]{10})$")


def _mac(secret: bytes, material: str) -> str:
    """The first 10 base32 characters of the HMAC-SHA256: they depend on its first 7 bytes
    only, so 10 bytes are encoded, not 32 (filing draws about a dozen tokens a message)."""
    digest = hmac.digest(secret, material.encode("utf-8"), "sha256")
    return base64.b32encode(digest[:10]).decode("ascii").lower()[:10]


def ticket_token(secret: bytes, number: int) -> str:
    return f"{number}-{_mac(secret, f'ticket:{number}')}"


def read_ticket_token(secret: bytes, token: str) -> int | None:
    """The ticket number a genuine member token names, else None."""
    match = _TOKEN.match(token.lower())
    if not match:
        return None
    number = int(match.group(1))
    return number if hmac.compare_digest(match.group(2), _mac(secret, f"ticket:{number}")) else None


def bounce_token(secret: bytes, nonce: str) -> str:
    """The VERP token of one outgoing mail, ``v<nonce>-<mac>``: ``nonce`` is random (drawn by
    the outbox), so the token is known before the row is written and is stored on it (indexed);
    the MAC lets a forged token be told without the database. Ties a bounce to the exact row."""
    return f"v{nonce}-{_mac(secret, f'bounce:{nonce}')}"


def read_bounce_token(secret: bytes, token: str) -> str | None:
    """The token as stored on its outbox row, when ``token`` is a genuine one, else None."""
    match = _BOUNCE.match(token.lower())
    if not match:
        return None
    return match.group(0) if hmac.compare_digest(match.group(2), _mac(secret, f"bounce:{match.group(1)}")) else None


_BOUNCE = re.compile(r"^v([a-z2-7]{16})-([a-z2-7]{10})$")


def outbox_token(secret: bytes, outbox_id: int) -> str:
    """The VERP token of mail queued before migration 0012, ``o<row id>-<mac>``: still read, so
    that a late bounce of such a mail finds its row by id."""
    return f"o{outbox_id}-{_mac(secret, f'outbox:{outbox_id}')}"


def read_outbox_token(secret: bytes, token: str) -> int | None:
    """The row id an old (``outbox_token``) token names, when it is genuine, else None."""
    match = re.match(r"^o(\d{1,12})-([a-z2-7]{10})$", token.lower())
    if not match:
        return None
    outbox_id = int(match.group(1))
    return outbox_id if hmac.compare_digest(match.group(2), _mac(secret, f"outbox:{outbox_id}")) else None


def staff_token(secret: bytes, number: int, staff: str) -> str:
    """A staff member's secret reply token for one ticket: not guessable, not transferable."""
    return f"{number}s{_mac(secret, f'staff:{number}:{staff.lower()}')}"


def read_staff_token(secret: bytes, token: str, staff: frozenset[str]) -> tuple[int, str] | None:
    """(ticket number, staff address) for a genuine staff token, else None."""
    match = re.match(r"^(\d{1,12})s([a-z2-7]{10})$", token.lower())
    if not match:
        return None
    number = int(match.group(1))
    for address in sorted(staff):
        if hmac.compare_digest(match.group(2), _mac(secret, f"staff:{number}:{address.lower()}")):
            return number, address
    return None


def opener_token(secret: bytes, queue: str, staff: str) -> str:
    """A staff member's secret token for opening tickets in one queue (``#for``): mail to
    ``queue+TOKEN@domain`` proves the writer as a staff reply token does for one ticket."""
    return f"n{_mac(secret, f'open:{queue}:{staff.lower()}')}"


def read_opener_token(secret: bytes, token: str, queue: str, staff: frozenset[str]) -> str | None:
    """The staff member whose opening token for ``queue`` this is, else None."""
    match = re.match(r"^n([a-z2-7]{10})$", token.lower())
    if not match:
        return None
    for address in sorted(staff):
        if hmac.compare_digest(match.group(1), _mac(secret, f"open:{queue}:{address.lower()}")):
            return address
    return None
