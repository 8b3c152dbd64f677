"""Staff mail (docs/mail.md#staff): who is proven staff, and what their reply does. No database."""

from __future__ import annotations

import pytest

from maild.core.kinds import MessageKind
from maild.core.plan import Lookups, Policy, Spooled, StoreMessage, plan, proven_staff

from tests.unit._plan import NOW, POLICY, RULESET, changes, events, facts, mails, parsed, ticket, to_file

STAFF = "maija@liitto.fi"
AUTHRES = ("mx.liitto.fi; dmarc=pass header.from=liitto.fi; dkim=pass header.d=liitto.fi",)

# (proof setting, via, token's staff, sender, Authentication-Results) -> proven writer
PROOF = [
    ("token", "token", STAFF, STAFF, (), STAFF),
    ("token", "token", "pekka@liitto.fi", STAFF, (), None),  # someone else's secret address
    ("token", "tag", None, STAFF, (), None),
    ("token", "token", "lasse@liitto.fi", "lasse@liitto.fi", (), None),  # staff, but of another queue
    ("authres", "tag", None, STAFF, AUTHRES, STAFF),
    ("authres", "tag", None, STAFF, (), None),
    ("none", "tag", None, STAFF, (), STAFF),
    ("none", "tag", None, "jasen@example.fi", (), None),
]


@pytest.mark.parametrize(("proof", "via", "token_staff", "sender", "authres", "writer"), PROOF)
def test_proven_staff(proof, via, token_staff, sender, authres, writer) -> None:  # type: ignore[no-untyped-def]
    policy = Policy(RULESET, "JP", 3, proof, frozenset({"mx.liitto.fi"}))
    message = parsed(sender=sender, authentication_results=authres)
    assert proven_staff(policy, ticket(), via, token_staff, sender, message) == writer


NONE = Policy(RULESET, "JP", 3, "none")

# (reply text, ticket status) -> stored kind, events, mails in the order queued, changed fields
REPLIES = [
    ("Vastaus jäsenelle.", "open", MessageKind.STAFF, ["status", "assigned"],
     [("staff", "relayed_answer")], {"status": "pending", "assignee": STAFF}),
    ("#note\nSisäinen huomio.", "open", MessageKind.NOTE, ["assigned"], [], {"assignee": STAFF}),
    ("#close\nKiitos, asia on hoidettu.", "open", MessageKind.STAFF, ["status", "assigned"],
     [("staff", "relayed_answer"), ("resolved", "resolved")], {"status": "resolved", "assignee": STAFF}),
    ("#bogus\nVastaus.", "open", MessageKind.NOTE, ["commands_rejected"], [("notification", "command_errors")], {}),
    ("> lainattu vain", "open", MessageKind.NOTE, ["nothing_relayed"], [("notification", "nothing_relayed")], {}),
    ("#pending", "new", MessageKind.NOTE, ["status", "assigned"], [], {"status": "pending", "assignee": STAFF}),
    ("#priority high\nVastaus.", "open", MessageKind.STAFF, ["priority", "status", "assigned"],
     [("staff", "relayed_answer")], {"priority": "high", "status": "pending", "assignee": STAFF}),
    ("#channel phone", "open", MessageKind.NOTE, ["channel", "assigned"], [], {"channel": "phone", "assignee": STAFF}),
    ("#channel email", "open", MessageKind.NOTE, ["assigned"], [], {"assignee": STAFF}),  # already its channel
]


@pytest.mark.parametrize(("text", "status", "kind", "kinds", "queued", "changed"), REPLIES)
def test_a_staff_reply(text, status, kind, kinds, queued, changed) -> None:  # type: ignore[no-untyped-def]
    state = ticket(status=status)
    lookups = Lookups(found=found(state), ticket=facts(status=status))
    result = plan(to_file(parsed(sender=STAFF, text=text), policy=NONE), lookups, NONE, Spooled(1), NOW)
    stored = [e.kind for e in result.effects if isinstance(e, StoreMessage)]
    assert stored == [kind]
    assert events(result.effects) == kinds
    assert mails(result.effects) == queued  # in order: the member reads the answer before "resolved"
    changed_now = changes(result.effects)
    changed_now.pop("status_changed_at", None), changed_now.pop("resolved_at", None), changed_now.pop("first_response_at", None)
    assert changed_now == changed


def found(state):  # type: ignore[no-untyped-def]
    from maild.core import threader
    return threader.Found(tag_tickets=(state.ref(),))


def test_an_unproven_staff_from_is_third_party_and_recorded() -> None:
    state = ticket()
    result = plan(to_file(parsed(sender=STAFF, text="#close")), Lookups(found=found(state), ticket=facts()),
                  POLICY, Spooled(1), NOW)
    assert [e.kind for e in result.effects if isinstance(e, StoreMessage)] == [MessageKind.THIRD_PARTY]
    assert events(result.effects) == ["message", "staff_unproven"]
    assert changes(result.effects) == {}


def test_the_first_answer_is_recorded_once() -> None:
    lookups = Lookups(found=found(ticket()), ticket=facts(answered=True))
    result = plan(to_file(parsed(sender=STAFF, text="Vastaus."), policy=NONE), lookups, NONE, Spooled(1), NOW)
    assert "first_response_at" not in changes(result.effects)


def test_the_answer_goes_out_from_the_queue_it_was_moved_to() -> None:
    lookups = Lookups(found=found(ticket()), ticket=facts(last_member_message=("m0@example.fi", ("r@x",))))
    result = plan(to_file(parsed(sender=STAFF, text="#queue laskutus\nVastaus."), policy=NONE), lookups, NONE,
                  Spooled(1), NOW)
    relay = [e for e in result.effects if getattr(e, "notice", "") == "relayed_answer"][0]
    assert relay.args["queue"].id == "laskutus" and relay.args["in_reply_to"] == "m0@example.fi"
    assert relay.relayed_by == STAFF
    assert "assignee" not in changes(result.effects)  # maija is not staff of laskutus: she does not take it
