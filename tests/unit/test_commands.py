"""Command lines and relayed text of staff replies, in the shapes real clients write."""

from __future__ import annotations

import pytest

from maild.core.commands import Command, Context, parse_staff_text
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


# --- #answer, #for, #channel (docs/coming.md#staff-daily-work) ---------------------------------------------------

ANSWERS = Context(writer="maija@liitto.fi", answers=frozenset({"jasenmaksu", "eroaminen"}), language="fi")


def test_answer_names_a_canned_answer_of_the_queues_language() -> None:
    text = parse_staff_text("#answer jasenmaksu\nLisäksi: maksu on vähennyskelpoinen.", QUEUES, STAFF, ANSWERS)
    assert text.commands == (Command("answer", "jasenmaksu"),) and not text.errors
    assert text.answer == "Lisäksi: maksu on vähennyskelpoinen."
    bad = parse_staff_text("#answer jasenkortti\nHei", QUEUES, STAFF, ANSWERS)
    assert bad.errors == ("#answer jasenkortti: no canned answer 'jasenkortti' in fi (answers: eroaminen, jasenmaksu)",)


def test_for_opens_only_a_new_ticket_and_only_as_the_first_line() -> None:
    opening = Context(writer="maija@liitto.fi", opening=True, own_addresses=frozenset({"jasenpalvelu@liitto.fi"}))
    text = parse_staff_text("#for Matti <matti@example.fi>\n#channel Phone\nSoitti jäsenmaksusta.", QUEUES, STAFF, opening)
    assert text.commands == (Command("for", "matti@example.fi", "Matti"), Command("channel", "phone")) and not text.errors
    assert parse_staff_text('#for "Matti  M" <matti@example.fi>', QUEUES, STAFF, opening).commands == (
        Command("for", "matti@example.fi", "Matti M"),)
    assert parse_staff_text("#for <matti@example.fi>", QUEUES, STAFF, opening).commands == (Command("for", "matti@example.fi"),)
    assert text.answer == "Soitti jäsenmaksusta."
    late = parse_staff_text("#take\n#for matti@example.fi", QUEUES, STAFF, opening)
    assert late.errors == ("#for matti@example.fi: #for must be the first command line",)
    reply = parse_staff_text("#for matti@example.fi", QUEUES, STAFF, Context(writer="maija@liitto.fi"))
    assert reply.errors and "opens a new ticket" in reply.errors[0]
    assert parse_staff_text("#for jasenpalvelu@liitto.fi", QUEUES, STAFF, opening).errors
    assert parse_staff_text("#for not an address", QUEUES, STAFF, opening).errors
    assert parse_staff_text("#for mailer-daemon@example.fi", QUEUES, STAFF, opening).errors


def test_channel_is_one_of_the_known_channels() -> None:
    assert parse_staff_text("#channel visit", QUEUES, STAFF).commands == (Command("channel", "visit"),)
    assert parse_staff_text("#channel fax", QUEUES, STAFF).errors == (
        "#channel fax: channel must be one of email, phone, visit, letter, web",)


def test_after_queue_answer_is_checked_in_the_new_queues_language() -> None:
    by_queue = {"jasenasiat": ("fi", frozenset({"jasenmaksu"})), "laskutus": ("sv", frozenset({"faktura"}))}
    context = Context(writer="maija@liitto.fi", answers=by_queue["jasenasiat"][1], language="fi", queue_answers=by_queue)
    moved = parse_staff_text("#queue laskutus\n#answer faktura\nHej", QUEUES, STAFF, context)
    assert moved.commands == (Command("queue", "laskutus"), Command("answer", "faktura")) and not moved.errors
    assert parse_staff_text("#queue laskutus\n#answer jasenmaksu", QUEUES, STAFF, context).errors == (
        "#answer jasenmaksu: no canned answer 'jasenmaksu' in sv (answers: faktura)",)


def test_rest_is_the_text_below_the_commands_as_written() -> None:
    text = parse_staff_text("#for matti@example.fi\n\nSoitti.\n\n> lainaus\n", QUEUES, STAFF, Context(opening=True))
    assert text.rest == "Soitti.\n\n> lainaus" and text.answer == "Soitti."
