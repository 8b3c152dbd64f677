"""answer_text's boundaries: what is a quotation and what is the writer's own text."""

from __future__ import annotations

import pytest

from maild.core.commands import Command, parse_staff_text
from maild.core.reply_text import answer_text

INTERNAL = "--- maild ---\nUusi tiketti [JP#1] jonossa Jäsenasiat.\nJono:          Jäsenasiat (jasenasiat)\n--- /maild ---"
MEMBER = "Haluan erota liitosta."


def quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


@pytest.mark.parametrize(
    "text",
    [
        # a verb-in-the-middle line in running text, with no quotation below it
        "Kuten Matti kirjoitti 3.11.2026 hallitukselle:\nsäännöt eivät estä eroa.",
        # labels that are no mail header block (no From label)
        "Tapaaminen sovittu.\nPäivämäärä: 1.12.2026\nAihe: jäsenmaksu",
        # a single From-like line is not a header block either
        "Lähettäjä: liiton toimisto, ei henkilö.\nTerveisin Maija",
        # a paragraph that starts with "On" and ends with a colon, not an attribution
        "On your membership card you will find:\n- your number\n- the date",
        # a row of underscores that no header block follows
        "Allekirjoitus tähän:\n____________________\nKiitos!",
    ],
)
def test_text_that_only_looks_like_a_quotation_start_is_kept(text: str) -> None:
    assert answer_text(text) == text


def test_an_unmarked_quotation_below_an_attribution_is_cut() -> None:
    """HTML mail turned into text may lose the '>': after "On ... wrote:" all of it is quotation."""
    text = f"Hei,\nhoidossa.\n\nOn Tue, Nov 24, 2026 at 10:01 AM Jäsenasiat <jp@liitto.fi> wrote:\n{INTERNAL}\n{MEMBER}"
    assert answer_text(text) == "Hei,\nhoidossa."


def test_inline_answers_are_kept_and_the_quoted_lines_left_out() -> None:
    text = ("On Tue, Nov 24, 2026 at 10:01 AM, Jäsenasiat wrote:\n"
            f"{quoted(INTERNAL)}\n> Miten erotaan?\n\nKirjallisesti, tällä viestillä riittää.\n\n"
            "> Entä maksu?\n\nMarraskuun maksu on jo maksettu.\n")
    assert answer_text(text) == "Kirjallisesti, tällä viestillä riittää.\n\nMarraskuun maksu on jo maksettu."


def test_a_quoted_line_wrapped_without_its_marker_is_not_an_answer() -> None:
    """Some clients re-wrap a long quoted line and lose the '>' on the continuation."""
    text = ("Hei,\nhoidossa.\n\nOn 24.11.2026 10.01, Jäsenasiat wrote:\n> --- maild ---\n"
            "> LUOTTAMUKSELLINEN: viestin sisältö on mukana vain siksi, että tämä ilmoitus\n"
            "lähetetään ainoastaan jonon henkilöstölle.\n> --- /maild ---\n> " + MEMBER)
    assert answer_text(text) == "Hei,\nhoidossa."


def test_the_internal_block_cuts_even_below_an_inline_answer() -> None:
    text = f"> {MEMBER}\n\nVastaus tähän.\n\n{INTERNAL}\n\nJäsenen viesti"
    assert answer_text(text) == "Vastaus tähän."


def test_a_signature_below_the_quotation_of_a_top_posted_answer_is_left_out() -> None:
    text = f"Hei,\nhoidossa.\n\nOn Tue, 24 Nov 2026, Jäsenasiat wrote:\n{quoted(INTERNAL)}\n--\nMaija, Jäsenpalvelu"
    assert answer_text(text) == "Hei,\nhoidossa."


@pytest.mark.parametrize("text", ["Sent from my iPhone", "Lähetetty iPhonesta\n", "-- \nMaija Virtanen\nJäsenpalvelu",
                                  "\nSkickat från min iPhone\n\n-- \nMaija", ""])
def test_nothing_but_a_signature_is_no_answer(text: str) -> None:
    assert answer_text(text) == ""


def test_an_answer_with_a_phone_signature_keeps_it() -> None:
    assert answer_text("Soitan huomenna.\n\nLähetetty iPhonesta") == "Soitan huomenna.\n\nLähetetty iPhonesta"


@pytest.mark.parametrize("line", ["# Vastaus", "### Ohjeet eroamiseen", "#123 on eri tiketti", "#  close"])
def test_headings_and_numbers_are_text_not_commands(line: str) -> None:
    staff = parse_staff_text(f"{line}\nHei Matti,\nasia on hoidossa.", frozenset(), frozenset())
    assert staff.commands == () and staff.errors == ()
    assert staff.answer.startswith(line.strip())


def test_a_command_word_right_after_the_hash_is_a_command() -> None:
    staff = parse_staff_text("#Close\n\nKiitos.", frozenset(), frozenset())
    assert staff.commands == (Command("close"),) and staff.answer == "Kiitos."


def test_a_huge_line_is_text_and_quick() -> None:
    line = "On " + "wrote " * 150_000 + "x"  # 900 kB: the listener takes lines up to 1 MiB
    assert answer_text(f"{line}\n> quoted") == line
