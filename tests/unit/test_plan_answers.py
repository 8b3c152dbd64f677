"""Canned answers in the planner (docs/coming.md#staff-daily-work): a rule's `answer:` goes in place of the
acknowledgement, under the same no-machine rules and cap; `suggest:` reaches the staff. No database."""

from __future__ import annotations

from dataclasses import replace

import pytest

from maild.core.plan import Lookups, QueueMail, Spooled, plan
from maild.rules.loader import parse_rules

from tests.unit._plan import NOW, POLICY, RULES, events, mails, parsed, to_file

ANSWER_RULES = RULES + """\
  - name: Jäsenmaksu
    if: {subject: {contains: [jäsenmaksu]}}
    then: {answer: jasenmaksu, suggest: [jasenmaksu, yhteystiedot, puuttuu]}
"""
TITLES = {"fi": {"jasenmaksu": "Jäsenmaksu", "yhteystiedot": "Yhteystiedot"}, "sv": {"jasenmaksu": "Medlemsavgiften"}}
WITH_ANSWERS = replace(POLICY, rules=parse_rules(ANSWER_RULES, "rules.yaml"), answers=TITLES)
FEE = parsed(subject="Paljonko jäsenmaksu on?")

# (policy, verdict, lookups) -> events, mails
TABLE = [
    (WITH_ANSWERS, "normal", Lookups(), ["created", "answer_sent"],
     [("ack", "canned_answer"), ("notification", "staff_new")]),
    (replace(WITH_ANSWERS, answers={"sv": TITLES["sv"]}), "normal", Lookups(), ["created", "answer_missing"],
     [("ack", "acknowledgement"), ("notification", "staff_new")]),
    (WITH_ANSWERS, "auto_reply", Lookups(), ["created", "ack_skipped"], []),
    (WITH_ANSWERS, "normal", Lookups(acks_last_hour=3), ["created", "ack_skipped"], [("notification", "staff_new")]),
    (WITH_ANSWERS, "normal", Lookups(sender_undeliverable=True), ["created", "ack_skipped"],
     [("notification", "staff_new")]),
]


@pytest.mark.parametrize(("policy", "machine", "lookups", "kinds", "queued"), TABLE)
def test_a_rules_answer_replaces_the_acknowledgement(policy, machine, lookups, kinds, queued) -> None:  # type: ignore[no-untyped-def]
    result = plan(to_file(FEE, machine=machine, policy=policy), lookups, policy, Spooled(1), NOW)
    assert events(result.effects) == kinds
    assert mails(result.effects) == queued


def test_suggestions_are_the_answers_the_queues_language_has() -> None:
    result = plan(to_file(FEE, policy=WITH_ANSWERS), Lookups(), WITH_ANSWERS, Spooled(1), NOW)
    notice = next(e for e in result.effects if isinstance(e, QueueMail) and e.notice == "staff_new")
    assert notice.args["suggestions"] == [{"name": "jasenmaksu", "title": "Jäsenmaksu"},
                                          {"name": "yhteystiedot", "title": "Yhteystiedot"}]
    answer = next(e for e in result.effects if isinstance(e, QueueMail) and e.notice == "canned_answer")
    assert answer.args["answer"] == "jasenmaksu"


# --- #answer NAME in a staff reply (docs/mail.md#answer) ---------------------------------------------

STAFF = "maija@liitto.fi"
REPLYING = replace(WITH_ANSWERS, staff_proof="none")

# (reply text, answers that did not render) -> stored kind, events, mails, the relayed answer's (answers, text)
ANSWER_REPLIES = [
    ("#answer jasenmaksu\nLisäksi: maksu on vähennyskelpoinen.", (), "staff", ["status", "assigned"],
     [("staff", "relayed_answer")], (("jasenmaksu",), "Lisäksi: maksu on vähennyskelpoinen.")),
    ("#answer jasenmaksu", (), "staff", ["status", "assigned"], [("staff", "relayed_answer")], (("jasenmaksu",), "")),
    ("#answer jasenmaksu\n#answer yhteystiedot\nTerveisin Maija", (), "staff", ["status", "assigned"],
     [("staff", "relayed_answer")], (("jasenmaksu", "yhteystiedot"), "Terveisin Maija")),
    ("#answer puuttuu\nHei", (), "note", ["commands_rejected"], [("notification", "command_errors")], None),
    ("#answer jasenmaksu\nHei", ("#answer jasenmaksu: the canned answer cannot be made: UndefinedError",), "note",
     ["commands_rejected"], [("notification", "command_errors")], None),
    ("#note\n#answer jasenmaksu\nHei", (), "note", ["commands_rejected"], [("notification", "command_errors")], None),
]


@pytest.mark.parametrize(("text", "failures", "kind", "kinds", "queued", "relayed"), ANSWER_REPLIES)
def test_answer_in_a_staff_reply(text, failures, kind, kinds, queued, relayed) -> None:  # type: ignore[no-untyped-def]
    from maild.core.plan import StoreMessage

    from tests.unit._plan import facts, found_ticket, ticket

    lookups = replace(found_ticket(ticket()), ticket=facts(), answer_failures=failures)
    result = plan(to_file(parsed(sender=STAFF, text=text), policy=REPLYING), lookups, REPLYING, Spooled(1), NOW)
    assert [str(e.kind) for e in result.effects if isinstance(e, StoreMessage)] == [kind]
    assert events(result.effects) == kinds
    assert mails(result.effects) == queued
    relay = [e for e in result.effects if isinstance(e, QueueMail) and e.notice == "relayed_answer"]
    assert [(e.args["answers"], e.args["answer"]) for e in relay] == ([relayed] if relayed else [])
    rejected = [e for e in result.effects if isinstance(e, QueueMail) and e.notice == "command_errors"]
    if failures:  # the failure is told to the writer as it was given
        assert rejected[0].args["errors"] == failures


def test_a_missing_answer_is_named_with_the_queues_language() -> None:
    from tests.unit._plan import facts, found_ticket, ticket

    lookups = replace(found_ticket(ticket()), ticket=facts())
    result = plan(to_file(parsed(sender=STAFF, text="#answer puuttuu\nHei"), policy=REPLYING), lookups, REPLYING,
                  Spooled(1), NOW)
    (told,) = [e for e in result.effects if isinstance(e, QueueMail) and e.notice == "command_errors"]
    assert told.args["errors"] == (
        "#answer puuttuu: no canned answer 'puuttuu' in fi (answers: jasenmaksu, yhteystiedot)",)
