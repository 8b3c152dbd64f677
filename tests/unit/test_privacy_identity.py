"""Pseudonyms and the scrubber: pure, table-driven."""

from __future__ import annotations

import pytest

from maild.privacy.identity import NAME_MARK, Scrubber, is_pseudonym, pseudonym, usable_names

ALIAS = pseudonym(b"k", "matti@example.fi")
SCRUB = Scrubber({"matti@example.fi": ALIAS}, usable_names(["Matti Meikäläinen", "Matti"], ["matti@example.fi"]))


def test_pseudonym_is_stable_per_address_and_keyed() -> None:
    assert pseudonym(b"k", " Matti@Example.FI ") == ALIAS and is_pseudonym(ALIAS)
    assert ALIAS.endswith("@invalid") and "matti" not in ALIAS
    assert pseudonym(b"other", "matti@example.fi") != ALIAS
    assert pseudonym(b"k", "liisa@example.fi") != ALIAS


def test_only_whole_names_of_some_length_are_replaced_in_text() -> None:
    assert usable_names(["Matti Meikäläinen", "Matti", "  Matti   Meikäläinen ", "matti@example.fi"],
                        ["matti@example.fi"]) == ("Matti Meikäläinen",)


@pytest.mark.parametrize(("value", "expected"), [
    ("MATTI@example.fi", ALIAS),
    ("Matti Meikäläinen <matti@example.fi> kirjoitti:", f"{NAME_MARK} <{ALIAS}> kirjoitti:"),
    ("Matti Meikäläinen", ""),  # a whole value that is the name: blank
    ("Terveisin Matti", "Terveisin Matti"),  # a first name alone stays
    ("mattimatti@example.fi, matti@example.fi.com, matti@example.fin", None),  # other addresses: kept
    ("kirjoita: matti@example.fi.", f"kirjoita: {ALIAS}."),
    (["liisa@example.fi", "matti@example.fi"], ["liisa@example.fi", ALIAS]),
    ({"to": ["Matti Meikäläinen <MATTI@EXAMPLE.FI>"], "n": 3}, {"to": [f"{NAME_MARK} <{ALIAS}>"], "n": 3}),
])
def test_scrub_values(value: object, expected: object) -> None:
    assert SCRUB.value(value) == (value if expected is None else expected)


def test_names_can_be_left_in_other_peoples_text() -> None:
    assert SCRUB.text("Matti Meikäläinen <matti@example.fi>", names=False) == f"Matti Meikäläinen <{ALIAS}>"


def test_raw_bytes_lose_the_address_in_any_case() -> None:
    raw = b"Cc: =?utf-8?q?Matti?= <Matti@Example.fi>\r\n\r\nmatti@example.fi"
    assert SCRUB.raw(raw) == f"Cc: =?utf-8?q?Matti?= <{ALIAS}>\r\n\r\n{ALIAS}".encode()
    assert SCRUB.mentions(raw) and not SCRUB.mentions(SCRUB.raw(raw))
