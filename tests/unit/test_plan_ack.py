"""The acknowledgement policy (docs/mail.md#machines) and what a new ticket queues. No database."""

from __future__ import annotations

import pytest

from maild.core.kinds import MessageKind
from maild.core.plan import Lookups, Spooled, UpdateTicket, BumpCounter, new_ticket, no_ack_reason, plan
from maild.core import threader
from maild.mail import Verdict

from tests.unit._plan import NOW, POLICY, events, mails, parsed, to_file

DECISION = to_file().decision
SILENT = to_file(parsed(subject="hiljaa")).decision

# (verdict kind, decision, requester bounces, acks in the last hour) -> reason, None: acknowledge
ACK = [
    ("normal", DECISION, False, 0, None),
    ("normal", DECISION, False, 2, None),
    ("normal", DECISION, False, 3, "3 acknowledgements to this sender in the last hour"),
    ("normal", DECISION, True, 0, "the requester's address bounces"),
    ("normal", SILENT, False, 0, "turned off by a rule"),
    ("normal", SILENT, True, 9, "turned off by a rule"),
    ("auto_reply", DECISION, False, 0, "auto_reply: because"),
    ("list", DECISION, True, 9, "list: because"),
]


@pytest.mark.parametrize(("kind", "decision", "bounces", "acks", "reason"), ACK)
def test_no_ack_reason(kind, decision, bounces, acks, reason) -> None:  # type: ignore[no-untyped-def]
    verdict = Verdict(kind, "" if kind == "normal" else "because")
    assert no_ack_reason(verdict, decision, bounces, acks, 3) == reason


# (reading, lookups) -> events, mails of a new ticket
NEW = [
    (to_file(), Lookups(), ["created"], [("ack", "acknowledgement"), ("notification", "staff_new")]),
    (to_file(machine="auto_reply"), Lookups(), ["created", "ack_skipped"], []),
    (to_file(), Lookups(sender_undeliverable=True), ["created", "ack_skipped"], [("notification", "staff_new")]),
    (to_file(), Lookups(acks_last_hour=3), ["created", "ack_skipped"], [("notification", "staff_new")]),
    (to_file(parsed(subject="lasku")), Lookups(assign_turn=1), ["created", "assigned"],
     [("ack", "acknowledgement"), ("notification", "staff_new")]),
]


@pytest.mark.parametrize(("reading", "lookups", "kinds", "queued"), NEW)
def test_a_new_ticket(reading, lookups, kinds, queued) -> None:  # type: ignore[no-untyped-def]
    result = plan(reading, lookups, POLICY, Spooled(1), NOW)
    assert events(result.effects) == kinds
    assert mails(result.effects) == queued


def test_round_robin_takes_the_turn_and_bumps_it() -> None:
    reading = to_file(parsed(subject="lasku"))
    effects = new_ticket(reading, threader.Choice("new"), Lookups(assign_turn=3), POLICY, NOW).effects
    assert BumpCounter("round-robin:laskutus") in effects
    assert UpdateTicket({"assignee": "liisa@liitto.fi"}) in effects  # turn 3 of two staff: the second


def test_a_rules_ack_template_is_used() -> None:
    from dataclasses import replace
    reading = to_file()
    reading = replace(reading, decision=replace(reading.decision, ack="ack_special"))
    acks = [e for e in plan(reading, Lookups(), POLICY, Spooled(1), NOW).effects if getattr(e, "kind", None) == MessageKind.ACK]
    assert acks[0].args["template"] == "ack_special"


def test_staff_new_lists_other_open_tickets_visibly_only_within_the_queue() -> None:
    from maild.core.plan import OtherTicket
    lookups = Lookups(other_open=(OtherTicket(3, "Vanha", "open", "jasenasiat", False),
                                  OtherTicket(4, "Salainen", "open", "laki", True)))
    notice = [e for e in plan(to_file(), lookups, POLICY, Spooled(1), NOW).effects
              if getattr(e, "notice", "") == "staff_new"][0]
    assert [(o["tag"], o["visible"]) for o in notice.args["other_open"]] == [("[JP#3]", True), ("[JP#4]", False)]
    assert notice.args["recipients"] == ("maija@liitto.fi", "pekka@liitto.fi")
