"""Tickets that staff open for a member (docs/mail.md#for): ``#for`` mail and ``maild tickets open``,
decided by the planner. No database."""

from __future__ import annotations

import pytest

from maild.core.kinds import MessageKind
from maild.core.plan import (
    AddNote, CreateTicket, EnsureContact, Lookups, Policy, Quarantine, QueueMail, Spooled, StoreMessage, open_from_shell,
    plan,
)
from maild.rules.loader import parse_rules

from tests.unit._plan import NOW, RULES, RULESET, changes, events, mails, parsed, to_file

MAIJA = "maija@liitto.fi"
OPENER = ("jasenasiat", MAIJA)  # what the lookup found: the mail went to Maija's opening address
AUTHRES = ("mx.liitto.fi; dmarc=pass header.from=liitto.fi; dkim=pass header.d=liitto.fi",)
NOTES = "#for Matti Meikäläinen <Matti@Example.fi>\n#channel visit\n\nKävi toimistolla, kysyi jäsenmaksusta."


def policy(proof: str = "token", rules: str = RULES) -> Policy:
    return Policy(parse_rules(rules, "rules.yaml") if rules != RULES else RULESET, "JP", 3, proof,
                  frozenset({"mx.liitto.fi"}))


def mail(text: str = NOTES, sender: str = MAIJA, to: str = "jasenpalvelu+nabcdefghij@liitto.fi", machine: str = "normal",
         authres: tuple[str, ...] = (), subject: str = "Käynti"):  # type: ignore[no-untyped-def]
    return to_file(parsed(subject=subject, sender=sender, text=text, to=(to,), authentication_results=authres),
                   machine=machine)


def create(result) -> CreateTicket:  # type: ignore[no-untyped-def]
    (found,) = [e for e in result.effects if isinstance(e, CreateTicket)]
    return found


def refused(result) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    (told,) = [e for e in result.effects if isinstance(e, QueueMail) and e.notice == "opening_refused"]
    assert told.args["writer"] == result.effects[-1].sender
    assert [type(e) for e in result.effects] == [QueueMail, Quarantine] and result.effects[-1].kind == "dropped"
    return told.args["errors"]


# (proof, the mail, the opener lookup) -> outcome; for a refusal, a piece of the first reason
TABLE = [
    ("token", mail(), OPENER, "new", None),
    ("token", mail(to="jasenpalvelu@liitto.fi"), None, "quarantined", "not proven to be from maija@liitto.fi"),
    ("token", mail(sender="pekka@liitto.fi"), OPENER, "quarantined", "not proven to be from pekka@liitto.fi"),
    ("token", mail(sender="lasse@liitto.fi"), None, "quarantined", "lasse@liitto.fi is not staff of queue jasenasiat"),
    ("authres", mail(authres=AUTHRES), None, "new", None),
    ("authres", mail(), None, "quarantined", "no trusted Authentication-Results"),
    ("none", mail(to="jasenpalvelu@liitto.fi"), None, "new", None),
    ("token", mail(text="#for matti@\nSoitti."), OPENER, "quarantined", "'matti@' is not one email address"),
    ("token", mail(text="#for jasenpalvelu@liitto.fi\nSoitti."), OPENER, "quarantined", "cannot be a ticket's member"),
    ("token", mail(text="#for matti@example.fi\n#queue laskutus\nSoitti."), OPENER, "quarantined",
     "#queue: cannot go with #for"),
    ("token", mail(text="#for matti@example.fi\n#channel fax\nSoitti."), OPENER, "quarantined", "channel must be one of"),
    ("token", mail(text="#for matti@example.fi\n#answer jasenmaksu"), OPENER, "quarantined", "#answer: cannot go with #for"),
]


@pytest.mark.parametrize(("proof", "reading", "opener", "outcome", "why"), TABLE)
def test_who_may_open_a_ticket(proof, reading, opener, outcome, why) -> None:  # type: ignore[no-untyped-def]
    result = plan(reading, Lookups(opener=opener), policy(proof), Spooled(1), NOW)
    assert result.outcome == outcome
    if why:
        assert why in refused(result)[0] + " ".join(refused(result)[1:])


def test_an_opened_ticket() -> None:
    result = plan(mail(), Lookups(opener=OPENER), policy(), Spooled(1), NOW)
    ticket = create(result)
    assert (ticket.queue, ticket.requester, ticket.channel, ticket.subject) == (
        "jasenasiat", "matti@example.fi", "visit", "Käynti")
    assert [e for e in result.effects if isinstance(e, EnsureContact)] == [
        EnsureContact("matti@example.fi", "Matti Meikäläinen")]
    (stored,) = [e for e in result.effects if isinstance(e, StoreMessage)]
    assert (stored.kind, stored.text) == (MessageKind.STAFF, "Kävi toimistolla, kysyi jäsenmaksusta.")
    assert events(result.effects) == ["created", "assigned", "status"]
    assert changes(result.effects) == {"assignee": MAIJA, "status": "open", "status_changed_at": NOW}
    assert mails(result.effects) == [("ack", "acknowledgement"), ("notification", "staff_new")]
    ack, staff_new = [e for e in result.effects if isinstance(e, QueueMail)]
    # the member's acknowledgement reads none of the staff notes, and answers no mail of theirs
    assert ack.args["parsed"].text == "" and ack.args["parsed"].message_id is None
    assert ack.args["parsed"].from_name == "Matti Meikäläinen"
    assert staff_new.args["recipients"] == ("pekka@liitto.fi",)  # not the writer, who owns it
    assert staff_new.args["parsed"].text == "Kävi toimistolla, kysyi jäsenmaksusta."


def test_without_channel_it_is_a_phone_call() -> None:
    result = plan(mail(text="#for matti@example.fi\nSoitti."), Lookups(opener=OPENER), policy(), Spooled(1), NOW)
    assert create(result).channel == "phone"


def test_rules_see_the_member_and_the_channel() -> None:
    rules = RULES + """\
  - name: Käynnit
    if: {channel: visit}
    then: {priority: high, category: käynti}
  - name: Jäsenmaksu
    if: {body: {contains: jäsenmaksu}}
    then: {tags: [maksu]}
"""
    result = plan(mail(), Lookups(opener=OPENER), policy(rules=rules), Spooled(1), NOW)
    ticket = create(result)
    assert (ticket.priority, ticket.category, ticket.tags, ticket.queue) == ("high", "käynti", ("maksu",), "jasenasiat")


# (further commands, lookups about the member) -> events, mails
FURTHER = [
    ("#close\n", Lookups(opener=OPENER), ["created", "assigned", "status", "status"],
     [("ack", "acknowledgement"), ("resolved", "resolved"), ("notification", "staff_new")]),
    ("#assign pekka@liitto.fi\n#priority urgent\n", Lookups(opener=OPENER),
     ["created", "assigned", "status", "assigned", "priority"],
     [("ack", "acknowledgement"), ("notification", "staff_new")]),
    ("", Lookups(opener=OPENER, acks_last_hour=3), ["created", "assigned", "status", "ack_skipped"],
     [("notification", "staff_new")]),
    ("", Lookups(opener=OPENER, sender_undeliverable=True), ["created", "assigned", "status", "ack_skipped"],
     [("notification", "staff_new")]),
]


@pytest.mark.parametrize(("commands", "lookups", "kinds", "queued"), FURTHER)
def test_further_commands_and_the_acknowledgement(commands, lookups, kinds, queued) -> None:  # type: ignore[no-untyped-def]
    result = plan(mail(text=f"#for matti@example.fi\n{commands}Soitti."), lookups, policy(), Spooled(1), NOW)
    assert events(result.effects) == kinds
    assert mails(result.effects) == queued


@pytest.mark.parametrize(("sender", "machine"), [("jasen@example.fi", "normal"), (MAIJA, "auto_reply")])
def test_for_from_no_staff_or_a_machine_is_filed_as_any_new_mail(sender: str, machine: str) -> None:
    """Never a mail to a From that is nobody's staff about #for: their mail is simply a new ticket."""
    result = plan(mail(sender=sender, machine=machine), Lookups(opener=OPENER), policy(), Spooled(1), NOW)
    assert result.outcome == "new" and create(result).requester == sender and create(result).channel == "email"
    assert "opening_refused" not in [notice for _, notice in mails(result.effects)]


def test_from_the_shell() -> None:
    result = open_from_shell("laskutus", "Matti@Example.fi", " Lasku  puhelimessa ", "Soitti laskusta.", "lasse@liitto.fi",
                             "phone", Lookups(sender_name="Matti"), policy(), NOW)
    assert not isinstance(result, str)
    ticket = create(result)
    assert (ticket.queue, ticket.requester, ticket.subject, ticket.channel) == (
        "laskutus", "matti@example.fi", "Lasku puhelimessa", "phone")
    assert [e for e in result.effects if isinstance(e, AddNote)] == [
        AddNote("lasse@liitto.fi", "Soitti laskusta.", "Lasku puhelimessa", MessageKind.STAFF)]
    assert changes(result.effects)["assignee"] == "lasse@liitto.fi"
    assert mails(result.effects) == [("ack", "acknowledgement"), ("notification", "staff_new")]
    # someone who is not the queue's staff (an operator) opens it unowned: every staff member hears of it
    unowned = open_from_shell("laskutus", "matti@example.fi", "Lasku", "", "root (shell)", "letter", Lookups(), policy(),
                              NOW)
    assert not isinstance(unowned, str) and "assignee" not in changes(unowned.effects)
    staff_new = [e for e in unowned.effects if isinstance(e, QueueMail) and e.notice == "staff_new"][0]
    assert staff_new.args["recipients"] == ("lasse@liitto.fi", "liisa@liitto.fi")


@pytest.mark.parametrize(("queue", "address", "channel", "error"), [
    ("eiole", "matti@example.fi", "phone", "no queue 'eiole'"),
    ("laskutus", "matti", "phone", "--for matti: 'matti' is not one email address"),
    ("laskutus", "noreply@example.fi", "phone", "cannot be a ticket's member"),
    ("laskutus", "matti@example.fi", "fax", "--channel fax: channel must be one of"),
])
def test_from_the_shell_refused(queue: str, address: str, channel: str, error: str) -> None:
    result = open_from_shell(queue, address, "Asia", "", "lasse@liitto.fi", channel, Lookups(), policy(), NOW)
    assert isinstance(result, str) and error in result


def test_a_for_line_below_text_opens_nothing() -> None:
    """#for must be the first line of the writer's own: below text it is text, and the mail is a new ticket."""
    result = plan(mail(text="Hei\n#for matti@example.fi"), Lookups(opener=OPENER), policy(), Spooled(1), NOW)
    assert result.outcome == "new" and create(result).requester == MAIJA


def test_a_writer_is_told_of_refusals_at_most_the_hourly_cap() -> None:
    """A forged staff From must not make maild mail the real staff member without end."""
    reading = mail(to="jasenpalvelu@liitto.fi")
    told = plan(reading, Lookups(refusals_last_hour=2), policy(), Spooled(1), NOW)
    assert mails(told.effects) == [("notification", "opening_refused")]
    quiet = plan(reading, Lookups(refusals_last_hour=3), policy(), Spooled(1), NOW)
    assert mails(quiet.effects) == [] and quiet.outcome == "quarantined"
    (kept,) = quiet.effects
    assert isinstance(kept, Quarantine) and kept.reason.endswith("(not told: 3 refused in the last hour)")
