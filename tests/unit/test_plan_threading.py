"""What a read message becomes, by what threading and the rules found (``core.plan.plan``).
One row per case, as in h11's state tables; no database."""

from __future__ import annotations

import pytest

from maild.core import threader
from maild.core.kinds import MessageKind, Outcome, QuarantineKind
from maild.core.plan import CreateTicket, Lookups, NoteOnSpool, Quarantine, Spooled, StoreMessage, TicketFacts, plan
from maild.core.reading import Unreadable
from maild.mail import Envelope

from tests.unit._plan import MEMBER, NOW, POLICY, found_ticket, parsed, ticket, to_file

SPOOLED = Spooled(3, NOW)


def outcome_of(reading, lookups):  # type: ignore[no-untyped-def]
    result = plan(reading, lookups, POLICY, SPOOLED, NOW)
    stored = [e.kind for e in result.effects if isinstance(e, StoreMessage)]
    return result.outcome, stored[0] if stored else None, result


# (case, reading, lookups) -> (outcome, kind of the stored message)
TABLE = [
    ("nothing found: new ticket", to_file(), Lookups(), Outcome.NEW, MessageKind.MEMBER),
    ("machine mail opens a ticket as auto_reply", to_file(machine="auto_reply"), Lookups(), Outcome.NEW,
     MessageKind.AUTO_REPLY),
    ("tag of an open ticket", to_file(), found_ticket(ticket()), Outcome.FOLLOW_UP, MessageKind.MEMBER),
    ("token of an open ticket", to_file(), found_ticket(ticket(), "token"), Outcome.FOLLOW_UP, MessageKind.MEMBER),
    ("tag, from someone else: third party", to_file(parsed(sender="muu@example.fi")), found_ticket(ticket()),
     Outcome.FOLLOW_UP, MessageKind.THIRD_PARTY),
    ("references, from someone else: member side", to_file(parsed(sender="muu@example.fi")),
     found_ticket(ticket(), "references"), Outcome.FOLLOW_UP, MessageKind.MEMBER),
    ("machine follow-up", to_file(machine="auto_reply"), found_ticket(ticket()), Outcome.FOLLOW_UP,
     MessageKind.AUTO_REPLY),
    ("closed ticket: a new one", to_file(), Lookups(found=threader.Found(tag_tickets=(ticket(status="closed").ref(),))),
     Outcome.NEW, MessageKind.MEMBER),
    ("dropped by a rule", to_file(parsed(subject="viagra")), Lookups(), Outcome.QUARANTINED, None),
    ("a follow-up is never dropped", to_file(parsed(subject="viagra")), found_ticket(ticket()), Outcome.FOLLOW_UP,
     MessageKind.MEMBER),
]


@pytest.mark.parametrize(("case", "reading", "lookups", "outcome", "kind"), TABLE, ids=[row[0] for row in TABLE])
def test_what_a_message_becomes(case, reading, lookups, outcome, kind) -> None:  # type: ignore[no-untyped-def]
    assert outcome_of(reading, lookups)[:2] == (outcome, kind)


def test_a_closed_ticket_is_linked_from_the_new_one() -> None:
    lookups = Lookups(found=threader.Found(tag_tickets=(ticket(status="closed").ref(),)))
    create = [e for e in outcome_of(to_file(), lookups)[2].effects if isinstance(e, CreateTicket)]
    assert create[0].linked_to == 12


def test_a_duplicate_is_recorded_on_the_first_copys_ticket() -> None:
    reading = to_file()
    lookups = Lookups(found=threader.Found(same_message_id=(reading.keys.fingerprint,)),
                      ticket=TicketFacts(ticket()), first_copy=41)
    outcome, stored, result = outcome_of(reading, lookups)
    assert (outcome, stored) == (Outcome.DUPLICATE, None)
    assert result.ticket == ticket()
    assert NoteOnSpool("duplicate of message 41 on [JP#12]") in result.effects


def test_a_reused_message_id_with_other_content_is_a_collision() -> None:
    lookups = Lookups(found=threader.Found(same_message_id=("v2:other",)))
    assert "message_id_collision" in [str(getattr(e, "kind", "")) for e in outcome_of(to_file(), lookups)[2].effects]


@pytest.mark.parametrize("kind", [QuarantineKind.UNPARSEABLE])
def test_unreadable_goes_to_the_quarantine(kind: QuarantineKind) -> None:
    result = plan(Unreadable(Envelope("smtp"), kind, "no sender address", ""), Lookups(), POLICY, SPOOLED, NOW)
    assert result.effects == (Quarantine(kind, "no sender address", ""),)


def test_drop_names_the_rule() -> None:
    result = outcome_of(to_file(parsed(subject="viagra", sender=MEMBER)), Lookups())[2]
    assert result.effects == (Quarantine(QuarantineKind.DROPPED, "dropped by rule: Roskaposti", MEMBER, "viagra"),)
