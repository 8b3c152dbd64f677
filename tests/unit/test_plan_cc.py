"""Who gets a ticket's mail (docs/mail.md#recipients): the first message's CCs, and the addresses the
staff are told do not get it. No database."""

from __future__ import annotations

import pytest

from maild.core.plan import CreateTicket, Lookups, Spooled, not_recipients, plan

from tests.unit._plan import MEMBER, NOW, POLICY, RULESET, parsed, ticket, to_file

# (subject, Cc of the first message) -> the new ticket's CCs
FIRST = [
    ("Kysymys", ("puoliso@example.fi",), ("puoliso@example.fi",)),
    ("Kysymys", (MEMBER, "puoliso@example.fi"), ("puoliso@example.fi",)),  # not the requester
    ("Kysymys", ("laskutus@liitto.fi", "a@example.fi"), ("a@example.fi",)),  # not maild's own
    ("Kysymys", ("a@example.fi", "a@example.fi"), ("a@example.fi",)),
    ("irtisanominen", ("puoliso@example.fi",), ()),  # a confidential ticket starts without
]


@pytest.mark.parametrize(("subject", "cc", "kept"), FIRST)
def test_the_first_messages_ccs(subject, cc, kept) -> None:  # type: ignore[no-untyped-def]
    result = plan(to_file(parsed(subject=subject, cc=cc)), Lookups(), POLICY, Spooled(1), NOW)
    assert [e.cc for e in result.effects if isinstance(e, CreateTicket)] == [kept]


# (ticket CCs, From, To, Cc) -> addresses in the mail that do not get the ticket's mail
NOT = [
    ((), MEMBER, ("jasenpalvelu@liitto.fi",), (), ()),
    ((), MEMBER, ("jasenpalvelu@liitto.fi",), ("x@example.fi",), ("x@example.fi",)),
    (("x@example.fi",), MEMBER, ("jasenpalvelu@liitto.fi",), ("x@example.fi",), ()),
    ((), "muu@example.fi", ("maija@liitto.fi",), (), ("muu@example.fi",)),  # staff get it anyway
]


@pytest.mark.parametrize(("cc", "sender", "to", "mail_cc", "left"), NOT)
def test_not_recipients(cc, sender, to, mail_cc, left) -> None:  # type: ignore[no-untyped-def]
    assert not_recipients(ticket(cc=cc), parsed(sender=sender, to=to, cc=mail_cc), RULESET) == left
