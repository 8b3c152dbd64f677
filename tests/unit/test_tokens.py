"""Tokens: opening tokens (#for) per staff member and queue, not guessable, not transferable;
VERP tokens of outgoing mail."""

from __future__ import annotations

from maild.core.tokens import (
    bounce_token, opener_token, outbox_token, read_bounce_token, read_opener_token, read_outbox_token, read_staff_token,
    read_ticket_token,
)

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


def test_a_bounce_token_reads_back_as_itself_only_when_genuine() -> None:
    token = bounce_token(SECRET, "abcdefghijklmnop")
    assert token.startswith("vabcdefghijklmnop-")
    assert read_bounce_token(SECRET, token) == token
    assert read_bounce_token(SECRET, token.upper()) == token  # mail systems may change the case
    assert read_bounce_token(b"other", token) is None
    assert read_bounce_token(SECRET, bounce_token(SECRET, "bbcdefghijklmnop")[:-10] + token[-10:]) is None
    assert read_outbox_token(SECRET, token) is None and read_ticket_token(SECRET, token) is None


def test_an_old_outbox_token_still_names_its_row() -> None:
    """Mail queued before migration 0012 carries ``o<row id>-<mac>``; its bounces must still be read."""
    token = outbox_token(SECRET, 42)
    assert read_outbox_token(SECRET, token) == 42 and read_bounce_token(SECRET, token) is None
    assert read_outbox_token(SECRET, token.replace("o42", "o43")) is None
