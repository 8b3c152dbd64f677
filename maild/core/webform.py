"""The web form channel's decisions, without I/O: what a submission must hold, the mail it
becomes, and the one-use token that keeps a resubmitted form from being stored twice.

A submission becomes an ordinary RFC 5322 message, so it takes the same path as mail: the
durable spool, threading, rules, the acknowledgement. Its Message-ID comes from the form's
token: the same form posted twice is the same message (docs/mail.md#threading: a duplicate, visible).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timezone

from maild.core.addresses import CONTROL, parse_address

FIELDS = ("name", "email", "subject", "message")
HONEYPOT = "website"  # hidden from people; a bot that fills it is thanked and nothing is stored
TOKEN = "token"
LIMITS = {"name": 200, "email": 320, "subject": 200, "message": 20_000}
TOKEN_MAX_AGE_SECONDS = 24 * 3600
# A ticket's tag (``[JP#12]``, any prefix, as ``threader.tag_pattern`` finds one): the form
# proves no one's address, so a post with a member's address and their ticket's tag would be
# filed as that member's own follow-up. Its brackets become parentheses: a post opens a ticket.
_TAG = re.compile(r"\[([^\[\]]*#\s*\d+\s*)\]")


@dataclass(frozen=True)
class Submission:
    name: str
    email: str
    subject: str
    message: str
    token: str


def _one_line(value: str) -> str:
    return " ".join(CONTROL.sub(" ", value).split())


def read(form: dict[str, str]) -> tuple[Submission | None, dict[str, str]]:
    """The submission, or None and an error code for each field that is wrong
    (``missing``, ``too_long``, ``invalid``); the page words them in the member's language."""
    errors: dict[str, str] = {}
    values = {key: (form.get(key) or "").strip() for key in FIELDS}
    for key in FIELDS:
        if key != "name" and not values[key]:
            errors[key] = "missing"
        elif len(values[key]) > LIMITS[key]:
            errors[key] = "too_long"
    address = parse_address(values["email"]) if "email" not in errors else None
    if "email" not in errors and (address is None or "." not in address.rpartition("@")[2]
                                  or address != values["email"].lower()):
        errors["email"] = "invalid"
    if errors:
        return None, errors
    text = values["message"].replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or not CONTROL.match(ch))
    return Submission(_one_line(values["name"]), address or "", _TAG.sub(r"(\1)", _one_line(values["subject"])), text,
                      form.get(TOKEN, "")), {}


def new_token(secret: bytes, now: float | None = None) -> str:
    """A token for one form page: when it was made, a random part, and their HMAC."""
    stamp = str(int(now if now is not None else time.time()))
    nonce = secrets.token_hex(12)
    return f"{stamp}.{nonce}.{_mac(secret, stamp, nonce)}"


def token_nonce(secret: bytes, token: str, now: float | None = None) -> str | None:
    """The token's random part when the token is ours and fresh, else None."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    stamp, nonce, mac = parts
    if not hmac.compare_digest(mac, _mac(secret, stamp, nonce)):
        return None
    age = (now if now is not None else time.time()) - int(stamp)
    return nonce if 0 <= age <= TOKEN_MAX_AGE_SECONDS else None


def token_written(token: str) -> datetime:
    """When a (checked) token's form page was made: the Date of the mail a post of it becomes,
    so that posting one page twice (a reload after a restart, two instances behind one proxy)
    makes the same message, which is stored once (docs/mail.md#duplicates)."""
    return datetime.fromtimestamp(int(token.split(".", 1)[0]), timezone.utc)


def _mac(secret: bytes, stamp: str, nonce: str) -> str:
    return hmac.new(secret, f"web-form:{stamp}:{nonce}".encode(), hashlib.sha256).hexdigest()[:32]


def to_mail(submission: Submission, nonce: str, to: str, hostname: str, client: str, written: datetime,
            now: datetime | None = None) -> bytes:
    """The message a submission becomes: the same bytes for the same page and text but its trace
    header, which holds ``client`` (the sender's IP) and when it came (``now``); ``written``
    (``token_written``) is its Date."""
    now = now or datetime.now(timezone.utc)
    msg = EmailMessage()
    msg["Received"] = f"from [{_one_line(client) or 'unknown'}] by {hostname} with HTTP (maild web form); {format_datetime(now)}"
    local, _, domain = submission.email.rpartition("@")
    msg["From"] = Address(display_name=submission.name, username=local, domain=domain)
    msg["To"] = to
    msg["Subject"] = submission.subject
    msg["Date"] = format_datetime(written)
    msg["Message-ID"] = f"<web.{nonce}@{hostname}>"
    msg.set_content(submission.message, cte="quoted-printable")
    return bytes(msg)
