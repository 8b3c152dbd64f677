"""Tokens already out in the world (in reply addresses and return paths of mail sent by any
earlier maild) must keep their meaning: the MAC is the first 10 base32 characters of
HMAC-SHA256 over the token's material, however it is computed."""

from __future__ import annotations

import base64
import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from maild.core import tokens


def published(secret: bytes, material: str) -> str:
    """The MAC as the first release wrote it: the whole digest encoded, then cut."""
    return base64.b32encode(hmac.new(secret, material.encode("utf-8"), hashlib.sha256).digest()).decode().lower()[:10]


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=10**12 - 1), st.text(max_size=80))
def test_every_token_is_the_one_mail_already_carries(secret: bytes, number: int, staff: str) -> None:
    assert tokens.ticket_token(secret, number) == f"{number}-{published(secret, f'ticket:{number}')}"
    assert tokens.read_ticket_token(secret, tokens.ticket_token(secret, number)) == number
    assert tokens.staff_token(secret, number, staff) == f"{number}s{published(secret, f'staff:{number}:{staff.lower()}')}"
    nonce = base64.b32encode(secret.ljust(10, b"\0")[:10]).decode().lower()
    assert tokens.bounce_token(secret, nonce) == f"v{nonce}-{published(secret, f'bounce:{nonce}')}"
    assert tokens.read_bounce_token(secret, tokens.bounce_token(secret, nonce)) == tokens.bounce_token(secret, nonce)
    assert tokens.outbox_token(secret, number) == f"o{number}-{published(secret, f'outbox:{number}')}"
    assert tokens.read_outbox_token(secret, tokens.outbox_token(secret, number)) == number
    assert tokens.opener_token(secret, "jasenasiat", staff) == f"n{published(secret, f'open:jasenasiat:{staff.lower()}')}"


def test_tokens_of_a_known_secret_are_what_earlier_releases_wrote() -> None:
    """Fixed values, computed with the first release's code: the formula and its test cannot drift together."""
    assert tokens.ticket_token(b"bench-secret", 123) == "123-txe2mc2ugl"
    assert tokens.staff_token(b"bench-secret", 123, "Maija@liitto.fi") == "123skqqaet7jpc"
    assert tokens.read_staff_token(b"bench-secret", "123skqqaet7jpc", frozenset({"maija@liitto.fi"})) == (
        123, "maija@liitto.fi")
