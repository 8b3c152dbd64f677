"""Whatever text mail brings in (subjects, names, addresses, Message-IDs), a mail that maild
composes from it has exactly the headers maild meant to write: none split, none added."""

from __future__ import annotations

import email
import email.utils
from collections import Counter

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from maild.core.parse import ParseError, parse_message
from maild.mail import Parsed
from maild.outbound.compose import Outgoing, build
from tests.hostile import ATTACKS, examples, header_text, hostile_message, mail_text

MEANT = ["From", "To", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
         "Auto-Submitted", "X-Auto-Response-Suppress", "X-Maild-Loop", "MIME-Version", "Content-Type",
         "Content-Transfer-Encoding"]


def outgoing(subject: str, name: str, to: tuple[str, ...] = ("matti@example.fi",), cc: tuple[str, ...] = (),
             in_reply_to: str | None = "orig@example.fi", references: tuple[str, ...] = ()) -> Outgoing:
    return Outgoing(
        from_name=name, from_addr="jasenpalvelu@liitto.fi", to=to, cc=cc, subject=subject, text="Hei\n",
        message_id="m1@liitto.fi", in_reply_to=in_reply_to, references=references,
        reply_to="jasenpalvelu+7-abcdefghij@liitto.fi", auto="auto-replied",
    )


def check_composed(mail: Outgoing) -> None:
    """The composed bytes, read back: each meant header once, no other, addresses as given."""
    raw = build(mail)
    assert b"\x00" not in raw and b"\r\n\r\n" in raw
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(line[:1] in (b" ", b"\t") or b":" in line for line in head.split(b"\r\n")), head
    msg = email.message_from_bytes(raw)  # compat32: takes the header lines as they are on the wire
    meant = Counter(MEANT + (["Cc"] if mail.cc else []))
    if not mail.in_reply_to:
        del meant["In-Reply-To"]
    if not mail.references:
        del meant["References"]
    assert Counter(msg.keys()) == meant, head
    for name, sent in (("From", (mail.from_addr,)), ("To", mail.to), ("Cc", mail.cc)):
        assert [addr for _, addr in email.utils.getaddresses(msg.get_all(name, []))] == list(sent), head
    assert msg["Message-ID"] == f"<{mail.message_id}>"


def read(raw: bytes) -> Parsed | None:
    try:
        return parse_message(raw)[0]
    except ParseError:
        return None


@settings(max_examples=examples(100))
@given(st.one_of(mail_text, header_text().map(lambda b: b.decode("utf-8", "replace"))),
       st.one_of(mail_text, st.sampled_from([a.decode("latin-1") for a in ATTACKS])))
@example("Re: x\r\nBcc: evil@x.fi", "Eve\r\nBcc: evil2@x.fi")
@example("\x1b]0;pwn\x07 [JP#1]", "=?utf-8?q?a=0D=0AB:_c?=")
def test_subject_and_name_from_mail_add_no_header(subject: str, name: str) -> None:
    check_composed(outgoing(subject, name))


@settings(max_examples=examples(100))
@given(hostile_message())
@example(b"From: Eve <eve@example.fi>\r\nCc: a@x.fi\x0b@y.fi\r\nMessage-ID: <a\x0bb@x.fi>\r\n\r\nbody\r\n")
def test_values_read_from_mail_add_no_header(raw: bytes) -> None:
    """Answering a hostile mail: its sender, CCs, subject, name and Message-IDs into our headers."""
    parsed = read(raw)
    if parsed is None or not parsed.from_addr:
        return
    check_composed(outgoing(parsed.subject, parsed.from_name, to=(parsed.from_addr,), cc=parsed.cc,
                            in_reply_to=parsed.message_id, references=parsed.references))
