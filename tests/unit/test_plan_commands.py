"""Staff commands (``#take``, ``#queue``, ``#cc``...) and the CC policy (docs/mail.md#recipients), from
mail and from the shell alike. No database."""

from __future__ import annotations

import pytest

from maild.core.commands import Command
from maild.core.plan import AddNote, act, move, obey

from tests.unit._plan import MEMBER, NOW, POLICY, RULESET, changes, events, facts, ticket

W = "maija@liitto.fi"

# (command, ticket fields) -> events, changed fields, status set
OBEY = [
    (Command("take"), {}, ["assigned"], {"assignee": W}, False),
    (Command("assign", "pekka@liitto.fi"), {}, ["assigned"], {"assignee": "pekka@liitto.fi"}, False),
    (Command("priority", "high"), {}, ["priority"], {"priority": "high"}, False),
    (Command("category", "jäsenmaksu"), {}, ["category"], {"category": "jäsenmaksu"}, False),
    (Command("cc", "toinen@example.fi"), {}, ["cc_added"], {"cc": ["toinen@example.fi"]}, False),
    (Command("cc", "toinen@example.fi"), {"cc": ("toinen@example.fi",)}, [], {}, False),  # already there
    (Command("cc", MEMBER), {}, [], {}, False),  # the requester is never a CC
    (Command("uncc", "toinen@example.fi"), {"cc": ("toinen@example.fi",)}, ["cc_removed"], {"cc": []}, False),
    (Command("uncc", "toinen@example.fi"), {}, [], {}, False),
    (Command("close"), {"status": "open"}, ["status"], {"status": "resolved"}, True),
    (Command("close"), {"status": "closed"}, [], {}, True),
    (Command("pending"), {"status": "open"}, ["status"], {"status": "pending"}, True),
    (Command("open"), {"status": "pending"}, ["status"], {"status": "open"}, True),
    (Command("queue", "jasenasiat"), {}, [], {}, False),  # already there
    (Command("queue", "laskutus"), {"assignee": W}, ["queue", "unassigned"], {"queue": "laskutus", "assignee": None},
     False),
    (Command("queue", "laki"), {"cc": ("a@example.fi", "b@example.fi")},
     ["queue", "confidential", "cc_removed", "cc_removed"], {"queue": "laki", "confidential": True, "cc": []}, False),
]


@pytest.mark.parametrize(("command", "fields", "kinds", "changed", "status_set"), OBEY)
def test_obey(command, fields, kinds, changed, status_set) -> None:  # type: ignore[no-untyped-def]
    _, effects, was_set = obey(facts(**fields), command, W, POLICY, NOW)
    assert events(effects) == kinds
    got = changes(effects)
    for volatile in ("status_changed_at", "resolved_at", "closed_at"):
        got.pop(volatile, None)
    assert got == changed
    assert was_set == status_set


def test_move_keeps_staff_of_the_new_queue() -> None:
    moved, effects = move(ticket(assignee="lasse@liitto.fi"), RULESET.queues["laskutus"], W)
    assert moved.assignee == "lasse@liitto.fi" and events(effects) == ["queue"]


# (command from the shell) -> error (None: done)
ACT = [
    (Command("assign", "lasse@liitto.fi"), "ticket 12 (queue jasenasiat): lasse@liitto.fi is not staff of this queue"),
    (Command("queue", "nowhere"), "ticket 12 (queue jasenasiat): no queue 'nowhere' (queues: jasenasiat, laki, laskutus)"),
    (Command("bogus"), "ticket 12 (queue jasenasiat): unknown command (known: #note, #take, #close, #pending, "
                       "#open, #assign, #priority, #queue, #category, #cc, #uncc, #answer, #for, #channel)"),
    (Command("assign", "pekka@liitto.fi"), None),
]


@pytest.mark.parametrize(("command", "error"), ACT)
def test_act_checks_as_mail_does(command, error) -> None:  # type: ignore[no-untyped-def]
    result = act(facts(), command, "admin", "", POLICY, NOW)
    assert (result if isinstance(result, str) else None) == error


def test_a_note_from_the_shell() -> None:
    result = act(facts(), Command("note"), "admin", "Soitin jäsenelle.", POLICY, NOW)
    assert not isinstance(result, str)
    assert AddNote("admin", "Soitin jäsenelle.", "[JP#12] Kysymys") in result.effects
    assert events(result.effects) == ["note"]
