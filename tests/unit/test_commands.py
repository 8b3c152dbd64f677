"""Command lines and relayed text of staff replies, in the shapes real clients write."""

from __future__ import annotations

import pytest

from maild.core.commands import Command, parse_staff_text
from maild.core.reply_text import answer_text

QUEUES = frozenset({"jasenasiat", "laskutus"})
STAFF = frozenset({"maija@liitto.fi", "pekka@liitto.fi"})


def test_commands_then_answer() -> None:
    parsed = parse_staff_text("#take\n#priority HIGH\n\nHei Matti,\nasia on hoidossa.\n", QUEUES, STAFF)
    assert parsed.commands == (Command("take"), Command("priority", "high"))
    assert parsed.errors == () and parsed.answer == "Hei Matti,\nasia on hoidossa."


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("#bogus\nHei", "unknown command"),
        ("#assign someone@example.com", "not staff"),
        ("#priority asap", "priority must be"),
        ("#queue nowhere", "no queue"),
        ("#close now", "takes no value"),
        ("#category", "needs a value"),
    ],
)
def test_invalid_commands_are_reported(text: str, error: str) -> None:
    parsed = parse_staff_text(text, QUEUES, STAFF)
    assert parsed.commands == () and error in parsed.errors[0]


def test_a_hash_later_in_the_text_is_not_a_command() -> None:
    parsed = parse_staff_text("Hei,\n#close ei ole komento tässä\n", QUEUES, STAFF)
    assert parsed.commands == () and "#close" in parsed.answer


NOTIFICATION = "--- maild ---\nUusi tiketti [JP#1]\n--- /maild ---\nJäsenen viesti"


@pytest.mark.parametrize(
    "reply",
    [
        # Outlook (fi): top-posted, "Lähettäjä:" header block
        f"Hei,\nasia on hoidossa.\n\nLähettäjä: Jäsenasiat <jasenpalvelu@liitto.fi>\nLähetetty: 24.11.2026\n{NOTIFICATION}",
        # Outlook (en)
        f"Hei,\nasia on hoidossa.\n\n-----Original Message-----\nFrom: Jäsenasiat\n{NOTIFICATION}",
        # Gmail / Thunderbird
        "Hei,\nasia on hoidossa.\n\nOn Tue, 24 Nov 2026 at 10.00, Jäsenasiat <jasenpalvelu@liitto.fi> wrote:\n> "
        + NOTIFICATION.replace("\n", "\n> "),
        # Finnish Gmail / Apple Mail
        "Hei,\nasia on hoidossa.\n\nti 24.11.2026 klo 10.00 Jäsenasiat <jasenpalvelu@liitto.fi> kirjoitti:\n> "
        + NOTIFICATION.replace("\n", "\n> "),
        # a client that quotes without any attribution line
        "Hei,\nasia on hoidossa.\n\n> " + NOTIFICATION.replace("\n", "\n> "),
    ],
)
def test_the_quoted_notification_is_cut(reply: str) -> None:
    assert answer_text(reply) == "Hei,\nasia on hoidossa."
