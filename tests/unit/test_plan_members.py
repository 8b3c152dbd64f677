"""The member register in the planner (docs/coming.md#member-register): linking, rules on member fields, the
lookup command's failures and what staff are shown. No database."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from maild.core.members import NO_LINK, Link, Member
from maild.core.plan import (
    LOOKUP_FAILURES, BumpCounter, CreateTicket, LinkMember, Lookups, Policy, QueueMail, Spooled, plan,
)
from maild.rules.loader import parse_rules

from tests.unit._plan import NOW, POLICY, RULES, events, facts, found_ticket, parsed, to_file

MATTI = Member("1001", "jasen@example.fi", MappingProxyType({"Osasto": "Tampereen osasto", "maksettu": "ei"}), id=5)
ANNA = Member("1002", "anna@example.fi", MappingProxyType({"Osasto": "Oulun osasto", "maksettu": "kyllä"}), id=6)

# the shared rules plus one that reads the register: unpaid members' mail goes to billing
MEMBER_RULES = parse_rules(RULES.replace("rules:\n", """rules:
  - name: Maksamatta
    if: {member: {maksettu: ei}}
    then: {queue: laskutus, tags: [maksamatta]}
""", 1), "rules.yaml")
MEMBER_POLICY = Policy(MEMBER_RULES, "JP", ack_limit_per_hour=3, show_fields=("Osasto", "puuttuu"))

# link -> events of the new ticket, whether a LinkMember effect is planned
LINKS = [
    (NO_LINK, ["created"], False),
    (Link(MATTI, "address"), ["created"], True),
    (Link(MATTI, "number"), ["created"], True),
    (Link(MATTI, "address", conflict="1002"), ["created"], True),  # the event is written when applied
]


@pytest.mark.parametrize(("link", "kinds", "linked"), LINKS)
def test_a_new_ticket_is_linked_to_its_member(link: Link, kinds: list[str], linked: bool) -> None:
    result = plan(to_file(), Lookups(member=link), POLICY, Spooled(1), NOW)
    assert events(result.effects)[:1] == kinds
    assert (LinkMember(link) in result.effects) is linked
    assert [e for e in result.effects if isinstance(e, LinkMember)] == ([LinkMember(link)] if linked else [])


def test_machine_mail_is_never_linked_nor_shown() -> None:
    # the lookup gives machine mail no member; a planner given none links nothing
    result = plan(to_file(machine="auto_reply"), Lookups(), POLICY, Spooled(1), NOW)
    assert not any(isinstance(e, LinkMember) for e in result.effects)


# (member, rules) -> queue and tags of the new ticket
ROUTING = [
    (NO_LINK, MEMBER_POLICY, "jasenasiat", ()),
    (Link(MATTI, "address"), MEMBER_POLICY, "laskutus", ("maksamatta",)),  # re-decided: the rule reads the register
    (Link(ANNA, "address"), MEMBER_POLICY, "jasenasiat", ()),  # paid
    (Link(MATTI, "address"), POLICY, "jasenasiat", ()),  # no rule reads the register: the reading's decision
]


@pytest.mark.parametrize(("link", "policy", "queue", "tags"), ROUTING)
def test_rules_are_re_decided_with_the_member(link: Link, policy: Policy, queue: str, tags: tuple[str, ...]) -> None:
    reading = to_file(policy=policy)
    result = plan(reading, Lookups(member=link), policy, Spooled(1), NOW)
    (create,) = [e for e in result.effects if isinstance(e, CreateTicket)]
    assert (create.queue, create.tags) == (queue, tags)


def test_a_failed_lookup_files_unlinked_with_an_event_and_a_count() -> None:
    result = plan(to_file(), Lookups(member_lookup_error="exit status 3"), POLICY, Spooled(1), NOW)
    assert "member_lookup_failed" in events(result.effects)
    assert BumpCounter(LOOKUP_FAILURES) in result.effects
    assert not any(isinstance(e, LinkMember) for e in result.effects)
    assert result.outcome == "new"


def test_a_failed_lookup_on_a_follow_up_is_counted_too() -> None:
    lookups = replace(found_ticket(facts().state), member_lookup_error="no answer in 1 s")
    result = plan(to_file(parsed(subject="Re: [JP#12] Kysymys")), lookups, POLICY, Spooled(1), NOW)
    assert result.outcome == "follow_up"
    assert BumpCounter(LOOKUP_FAILURES) in result.effects


def notice(effects: tuple[object, ...], name: str) -> QueueMail:
    (mail,) = [e for e in effects if isinstance(e, QueueMail) and e.notice == name]
    return mail


# link -> what staff_new shows as ``member`` with show_fields ("Osasto", "puuttuu")
SHOWN = [
    (NO_LINK, None),
    (Link(MATTI, "address"), {"member_number": "1001", "fields": [("Osasto", "Tampereen osasto")],
                              "linked_by": "address", "conflict": None}),
    (Link(ANNA, "number", None), {"member_number": "1002", "fields": [("Osasto", "Oulun osasto")],
                                  "linked_by": "number", "conflict": None}),
    (Link(MATTI, "address", "1002"), {"member_number": "1001", "fields": [("Osasto", "Tampereen osasto")],
                                      "linked_by": "address", "conflict": "1002"}),
]


@pytest.mark.parametrize(("link", "shown"), SHOWN)
def test_staff_new_shows_the_member(link: Link, shown: dict[str, object] | None) -> None:
    policy = replace(POLICY, show_fields=("Osasto", "puuttuu"))
    result = plan(to_file(), Lookups(member=link), policy, Spooled(1), NOW)
    assert notice(result.effects, "staff_new").args["member"] == shown


def test_staff_followup_shows_the_tickets_member() -> None:
    policy = replace(POLICY, show_fields=("maksettu",))
    lookups = replace(found_ticket(facts().state), ticket_member=Link(MATTI, "number"))
    result = plan(to_file(parsed(subject="Re: [JP#12] Kysymys")), lookups, policy, Spooled(1), NOW)
    assert notice(result.effects, "staff_followup").args["member"] == {
        "member_number": "1001", "fields": [("maksettu", "ei")], "linked_by": "number", "conflict": None}
