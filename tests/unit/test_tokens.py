"""Opening tokens (#for): per staff member and queue, not guessable, not transferable."""

from __future__ import annotations

from maild.core.tokens import opener_token, read_opener_token, read_staff_token, read_ticket_token

SECRET = b"s3cret"
STAFF = frozenset({"maija@liitto.fi", "pekka@liitto.fi"})


def test_an_opening_token_names_its_staff_member_in_its_queue_only() -> None:
    token = opener_token(SECRET, "jasenasiat", "Maija@liitto.fi")
    assert read_opener_token(SECRET, token, "jasenasiat", STAFF) == "maija@liitto.fi"
    assert read_opener_token(SECRET, token.upper(), "jasenasiat", STAFF) == "maija@liitto.fi"
    assert read_opener_token(SECRET, token, "laskutus", STAFF) is None
    assert read_opener_token(b"other", token, "jasenasiat", STAFF) is None
    assert read_opener_token(SECRET, token, "jasenasiat", frozenset({"pekka@liitto.fi"})) is None
    assert opener_token(SECRET, "jasenasiat", "pekka@liitto.fi") != token


def test_an_opening_token_is_no_other_kind_of_token() -> None:
    token = opener_token(SECRET, "jasenasiat", "maija@liitto.fi")
    assert read_ticket_token(SECRET, token) is None and read_staff_token(SECRET, token, STAFF) is None
    assert read_opener_token(SECRET, "12-abcdefghij", "jasenasiat", STAFF) is None
