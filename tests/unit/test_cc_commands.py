"""#cc, #uncc and commands after #queue (docs/mail.md#recipients): checked before anything is obeyed."""

from __future__ import annotations

import pytest

from maild.core.commands import Command, Context, check, parse_staff_text, typed_address

QUEUES = frozenset({"jasenasiat", "lakineuvonta"})
STAFF = frozenset({"maija@liitto.fi", "pekka@liitto.fi"})
CONTEXT = Context(
    writer="maija@liitto.fi", requester="matti@example.fi",
    staff_of={"jasenasiat": STAFF, "lakineuvonta": frozenset({"lakimies@liitto.fi"})},
    own_addresses=frozenset({"jasenpalvelu@liitto.fi", "lakineuvonta@liitto.fi"}),
)


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_staff_text(text, QUEUES, STAFF, CONTEXT)


@pytest.mark.parametrize(
    ("typed", "address"),
    [
        ("Puoliso@Example.FI", "puoliso@example.fi"),
        ("<puoliso@example.fi>", "puoliso@example.fi"),
        ("mailto:puoliso@example.fi", "puoliso@example.fi"),
        ("puoliso@example.fi <mailto:puoliso@example.fi>", "puoliso@example.fi"),  # Outlook's text of a link
        ("puoliso@example.fi<mailto:puoliso@example.fi>", "puoliso@example.fi"),
        ("o'brien+ticket@sub.example.co.uk", "o'brien+ticket@sub.example.co.uk"),
        ("matti@äänekoski.fi", "matti@xn--nekoski-4waa.fi"),  # sent as its ASCII form
        ("puoliso@example.fi <mailto:other@example.fi>", None),
        ("Puoliso <puoliso@example.fi>", None),
        ("a@example.fi, b@example.fi", None),
        ("a@example.fi b@example.fi", None),
        ("puoliso@localhost", None),
        ("puoliso@10.0.0.1", None),
        ("puoliso@-example.fi", None),
        ("puo..liso@example.fi", None),
        ('"puo liso"@example.fi', None),
        ("puoliso@exa\x0bmple.fi", None),
        ("puoliso@example.fi\r\nBcc: x@evil.example", None),
        ("", None),
    ],
)
def test_typed_address(typed: str, address: str | None) -> None:
    assert typed_address(typed) == address


def test_cc_and_uncc_give_the_canonical_address() -> None:
    parsed = parse("#cc <Puoliso@Example.fi>\n#uncc naapuri@example.fi\n\nHei molemmat!")
    assert parsed.errors == ()
    assert parsed.commands == (Command("cc", "puoliso@example.fi"), Command("uncc", "naapuri@example.fi"))
    assert parsed.answer == "Hei molemmat!"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("#cc", "#cc needs a value"),
        ("#cc ei-osoite", "is not one email address"),
        ("#cc jasenpalvelu@liitto.fi", "our own address jasenpalvelu@liitto.fi"),
        ("#cc LAKINEUVONTA+7-abc@liitto.fi", "our own address lakineuvonta@liitto.fi"),
        ("#cc noreply@kauppa.example", "no-reply sender"),
        ("#cc postmaster@example.fi", "system sender"),
        ("#uncc matti@example.fi", "the ticket's member"),
    ],
)
def test_refused_cc_commands(line: str, error: str) -> None:
    parsed = parse(f"{line}\nHei!")
    assert parsed.commands == () and len(parsed.errors) == 1
    assert parsed.errors[0].startswith(line) and error in parsed.errors[0]


def test_commands_after_queue_are_checked_against_the_new_queues_staff() -> None:
    moved = parse("#queue lakineuvonta\n#assign lakimies@liitto.fi")
    assert moved.errors == () and moved.commands[-1] == Command("assign", "lakimies@liitto.fi")
    assert "not staff" in parse("#assign lakimies@liitto.fi\n#queue lakineuvonta").errors[0]
    assert "maija@liitto.fi is not staff" in parse("#queue lakineuvonta\n#take").errors[0]
    assert parse("#take\n#queue lakineuvonta").errors == ()  # taken, then dropped by the move


def test_check_one_command_as_the_shell_does() -> None:
    assert check(Command("queue", "olematon"), QUEUES, STAFF, CONTEXT) == (
        None, "no queue 'olematon' (queues: jasenasiat, lakineuvonta)")
    assert check(Command("queue", "lakineuvonta"), QUEUES, STAFF) == (Command("queue", "lakineuvonta"), None)
    assert check(Command("assign", "Pekka@liitto.fi"), QUEUES, STAFF) == (Command("assign", "pekka@liitto.fi"), None)
