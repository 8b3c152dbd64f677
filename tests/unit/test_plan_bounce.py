"""Bounces of maild's own mail (docs/mail.md#bounces): what they mark, and what is not ours. No database."""

from __future__ import annotations

import pytest

from maild.core.bounces import Bounce
from maild.core.kinds import Outcome, QuarantineKind
from maild.core.plan import Lookups, MarkUndeliverable, Quarantine, Spooled, TicketFacts, plan
from maild.core.reading import Returned
from maild.mail import Envelope, Verdict

from tests.unit._plan import MEMBER, NOW, POLICY, events, parsed, ticket


def returned(bounce: Bounce | None) -> Returned:
    return Returned(Envelope("smtp", ""), parsed(sender="mailer-daemon@example.fi", subject="Undelivered"),
                    Verdict("bounce", "DSN"), "mailer-daemon@example.fi", bounce, None)


def dsn(permanent: bool, recipients: tuple[str, ...] = (MEMBER,)) -> Bounce:
    return Bounce(recipients, "5.1.1" if permanent else "4.2.2", "failed", permanent, "no such user", None)


# (bounce, failed addresses of maild's mail) -> marked, events
TABLE = [
    (dsn(True), (MEMBER,), (MEMBER,), ["bounce", "requester_undeliverable"]),
    (dsn(False), (MEMBER,), (), ["bounce"]),
    (dsn(True, ("staff@liitto.fi",)), ("staff@liitto.fi",), ("staff@liitto.fi",), ["bounce"]),
    (None, (MEMBER,), (MEMBER,), ["bounce", "requester_undeliverable"]),  # our VERP address, unreadable DSN
    (dsn(True), (), (), ["bounce"]),  # names no address our mail went to: marks nothing
]


@pytest.mark.parametrize(("bounce", "failed", "marked", "kinds"), TABLE)
def test_a_bounce_of_our_mail(bounce, failed, marked, kinds) -> None:  # type: ignore[no-untyped-def]
    result = plan(returned(bounce), Lookups(ticket=TicketFacts(ticket()), bounced_failed=failed), POLICY, Spooled(1), NOW)
    assert result.outcome == Outcome.BOUNCE
    assert tuple(e.address for e in result.effects if isinstance(e, MarkUndeliverable)) == marked
    assert events(result.effects) == kinds


def test_a_bounce_of_anything_else_is_quarantined() -> None:
    result = plan(returned(dsn(True)), Lookups(), POLICY, Spooled(1), NOW)
    assert result.effects == (Quarantine(QuarantineKind.BOUNCE, "DSN", "mailer-daemon@example.fi", "Undelivered"),)
