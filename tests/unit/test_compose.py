"""Outgoing mail on the wire (docs/mail.md#what-maild-sends, 4.7): headers, threading, no injection."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace

import pytest

from maild.outbound.compose import Outgoing, build, checked

MAIL = Outgoing(
    from_name="Jäsenpalvelu", from_addr="jasenpalvelu@liitto.fi", to=("matti@example.fi",),
    subject="[JP#7] Viestisi on vastaanotettu: Jäsenmaksu", text="Hei,\n\nkiitos viestistäsi. Äö.\n",
    message_id="m1@liitto.fi", in_reply_to="orig@example.fi", references=("first@example.fi", "orig@example.fi"),
    reply_to="jasenpalvelu+7-abcdefghij@liitto.fi", auto="auto-replied",
)


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


@pytest.mark.parametrize("to", [("matti@example.fi",), ("jörö@esimerkki.fi",)])
def test_headers_and_body(to: tuple[str, ...]) -> None:
    msg = parse(build(replace(MAIL, to=to, html="<p>Hei</p>")))
    assert str(msg["From"]) == "Jäsenpalvelu <jasenpalvelu@liitto.fi>"
    assert msg["To"] == to[0] and msg["Subject"] == MAIL.subject
    assert msg["Message-ID"] == "<m1@liitto.fi>" and msg["In-Reply-To"] == "<orig@example.fi>"
    assert msg["References"] == "<first@example.fi> <orig@example.fi>"
    assert msg["Reply-To"].addresses[0].addr_spec == MAIL.reply_to
    assert (msg["Auto-Submitted"], msg["X-Auto-Response-Suppress"], msg["X-Maild-Loop"]) == (
        "auto-replied", "All", "jasenpalvelu@liitto.fi")
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == MAIL.text
    assert msg.get_body(("html",)).get_content().strip() == "<p>Hei</p>"


def test_a_relayed_reply_carries_no_auto_submitted() -> None:
    msg = parse(build(replace(MAIL, auto=None)))
    assert msg["Auto-Submitted"] is None and msg["X-Auto-Response-Suppress"] is None


@pytest.mark.parametrize("evil", ["x\r\nBcc: victim@example.com", "x\nBcc: victim@example.com", "x\rBcc: v@e"])
def test_values_from_mail_cannot_add_headers(evil: str) -> None:
    raw = build(replace(MAIL, subject=f"[JP#7] {evil}", from_name=f"Nimi {evil}"))
    msg = parse(raw)
    assert msg["Bcc"] is None and "Bcc" in msg["Subject"]
    assert raw.count(b"\r\nBcc:") == 0


def test_wire_form_uses_crlf_and_readable_encoding() -> None:
    raw = build(MAIL)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"Content-Transfer-Encoding: quoted-printable" in raw


def test_checked_leaves_a_clean_mail_as_it_is_and_cleans_the_rest() -> None:
    clean = replace(MAIL, references=("a@b", "orig@example.fi"))
    assert checked(clean) == (clean, ())
    assert checked(replace(clean, in_reply_to=""))[0].in_reply_to is None  # no reference at all, as before
    dirty = replace(clean, to=("matti@example.fi", "bad\r\n@x.fi", "bad\r\n@x.fi"), references=("a@b", "c d@e"))
    fixed, notes = checked(dirty)
    assert fixed.to == ("matti@example.fi",) and fixed.references == ("a@b",)
    assert notes == ("To: left out 'bad\\r\\n@x.fi'", "To: left out 'bad\\r\\n@x.fi'", "References: left out 'c d@e'")
