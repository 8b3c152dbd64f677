"""Read a raw message into a ``Reading``: parse, classify, threading keys, rules. No database.

This is the part of filing that costs CPU and needs no lock, so it runs before the write
transaction (``maild.ingest``), and ``maild rules test`` reads a file the same way.
"""

from __future__ import annotations

import os

from maild.core import threader
from maild.core.addresses import parse_address
from maild.core.bounces import parse_bounce, verp_token
from maild.core.classify import classify
from maild.core.kinds import QuarantineKind, channel_of
from maild.core.parse import ParseError, parse_message
from maild.core.reading import Reading, Returned, ToFile, Unreadable
from maild.core.tokens import read_bounce_token, read_outbox_token
from maild.mail import Envelope
from maild.rules.engine import decide, facts_from
from maild.rules.model import RuleSet

BOUNCE_PREFIX = "bounces"  # the local part of maild's VERP return paths (``outbound.outbox``)


def read(raw: bytes | os.PathLike[str], envelope: Envelope, rules: RuleSet, tag_prefix: str, secret: bytes) -> Reading:
    """What ``raw`` (the message, or the path of its file) is, as far as it can be told without
    the database."""
    try:
        parsed, message = parse_message(raw)
    except ParseError as exc:
        return Unreadable(envelope, QuarantineKind.UNPARSEABLE, str(exc), envelope.mail_from or "")
    sender = parsed.from_addr or parse_address(envelope.mail_from or "") or ""  # MAIL FROM is read alike
    verdict = classify(parsed, envelope, message, rules.addresses())
    if verdict.kind == "bounce":
        outbox_id, outbox_token = verp_outbox(envelope.recipients + parsed.to, secret)
        return Returned(envelope, parsed, verdict, sender, parse_bounce(message), outbox_id, outbox_token)
    if not sender:
        return Unreadable(envelope, QuarantineKind.UNPARSEABLE, "no sender address", sender, parsed.subject)
    keys = threader.keys(parsed, envelope, tag_prefix, rules.addresses())
    facts = facts_from(parsed, envelope.recipients, channel_of(envelope.source))
    return ToFile(envelope, parsed, verdict, sender, keys, decide(facts, rules))


def verp_outbox(recipients: tuple[str, ...], secret: bytes) -> tuple[int | None, str | None]:
    """The outbox row whose VERP return path a bounce came back to, if its token is genuine:
    (None, its token) for a token stored on the row, (its id, None) for an old token that
    names the row id, (None, None) when none is ours."""
    for address in recipients:
        token = verp_token(address, BOUNCE_PREFIX)
        if not token:
            continue
        if stored := read_bounce_token(secret, token):
            return None, stored
        if outbox_id := read_outbox_token(secret, token):
            return outbox_id, None
    return None, None
