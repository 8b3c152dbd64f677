"""Threading decisions (docs/mail.md#threading), table-driven, no I/O."""

from __future__ import annotations

import pytest

from maild.core import threader
from maild.core.threader import Found, ThreadKeys, TicketRef
from maild.core.tokens import read_ticket_token, ticket_token


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Asia", "Asia"),
        ("RE: Re: VS: Asia", "Asia"),
        ("Re[2]: Asia", "Asia"),
        ("Vs: SV: AW: WG: Fwd: Fw: VL: Asia", "Asia"),
        ("Re:Re:Asia", "Asia"),
        ("Fwd: Re: [JP#3] Asia", "[JP#3] Asia"),
        ("Asia: Re: jatkuu", "Asia: Re: jatkuu"),
        ("Revontulet", "Revontulet"),
        ("Vastaus kysymykseen", "Vastaus kysymykseen"),
    ],
)
def test_strip_prefixes(subject: str, expected: str) -> None:
    assert threader.strip_prefixes(subject) == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("[JP#123] Asia", (123,)),
        ("Re: VS: asia [jp#7]", (7,)),
        ("Subject[JP#12]more", (12,)),
        ("[ JP # 5 ] välilyönnein", (5,)),
        ("[XJP#12] toisen järjestelmän", ()),
        ("[RT#99] [JP#4] kaksi järjestelmää", (4,)),
        ("[JP#4] ja [JP#9]", (4, 9)),
        ("JP#4 ilman sulkuja", ()),
        ("[JP#0] nolla", ()),
    ],
)
def test_subject_tags(subject: str, expected: tuple[int, ...]) -> None:
    assert threader.subject_tags(subject, "JP") == expected


def test_reply_tokens_only_for_our_queue_addresses() -> None:
    queues = frozenset({"jasenpalvelu@liitto.fi"})
    recipients = ("jasenpalvelu+12-abc@liitto.fi", "other+x@liitto.fi", "jasenpalvelu@liitto.fi")
    assert threader.reply_tokens(recipients, queues) == ("12-abc",)


def test_ticket_tokens_are_not_guessable() -> None:
    token = ticket_token(b"key", 42)
    assert read_ticket_token(b"key", token) == 42
    assert read_ticket_token(b"key", token.upper()) == 42
    assert read_ticket_token(b"other", token) is None
    assert read_ticket_token(b"key", "43-" + token.split("-")[1]) is None
    assert read_ticket_token(b"key", "garbage") is None


KEYS = ThreadKeys(message_id="m@x", fingerprint="fp", tokens=(), tags=(), referenced=())
T1 = TicketRef(1, "open", "a@x")
T2 = TicketRef(2, "open", "a@x")
T3 = TicketRef(3, "open", "a@x")


@pytest.mark.parametrize(
    ("found", "action", "number", "via"),
    [
        (Found(), "new", None, None),
        (Found(same_message_id=("fp",)), "duplicate", None, None),
        (Found(token_ticket=T1, tag_tickets=(T2,), reference_ticket=T3), "follow_up", 1, "token"),
        (Found(tag_tickets=(T2,), reference_ticket=T3), "follow_up", 2, "tag"),
        (Found(reference_ticket=T3), "follow_up", 3, "references"),
        (Found(same_message_id=("other",), reference_ticket=T3), "follow_up", 3, "references"),
    ],
)
def test_choose_precedence(found: Found, action: str, number: int | None, via: str | None) -> None:
    choice = threader.choose(KEYS, found)
    assert choice.action == action
    assert (choice.ticket.number if choice.ticket else None) == number
    assert choice.via == via


def test_reused_message_id_is_a_collision_not_a_duplicate() -> None:
    choice = threader.choose(KEYS, Found(same_message_id=("different",)))
    assert (choice.action, choice.collision) == ("new", True)


def test_closed_ticket_opens_a_linked_new_one() -> None:
    choice = threader.choose(KEYS, Found(tag_tickets=(TicketRef(9, "closed", "a@x"),)))
    assert (choice.action, choice.linked_to) == ("new", 9)


@pytest.mark.parametrize(
    ("sender", "via", "machine", "kind"),
    [
        ("a@x", "tag", False, "member"),
        ("cc@x", "tag", False, "member"),
        ("stranger@x", "tag", False, "third_party"),
        ("stranger@x", "references", False, "member"),
        ("staff@liitto.fi", "references", False, "third_party"),
        ("a@x", "tag", True, "auto_reply"),
    ],
)
def test_follow_up_kind(sender: str, via: str, machine: bool, kind: str) -> None:
    ticket = TicketRef(1, "open", "a@x", cc=("cc@x",))
    assert threader.follow_up_kind(sender, ticket, via, frozenset({"staff@liitto.fi"}), machine) == kind  # type: ignore[arg-type]
