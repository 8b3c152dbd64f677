"""Whatever text mail brings in (subjects, names, addresses, Message-IDs), a mail that maild
composes from it has exactly the headers maild meant to write: none split, none added."""

from __future__ import annotations

import email
import email.policy
import email.utils
from collections import Counter

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from maild.core.parse import ParseError, parse_message
from maild.mail import Parsed
from maild.outbound.compose import Outgoing, build
from maild.outbound.templates import header_safe
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


body_text = st.lists(st.one_of(mail_text, st.sampled_from(["\n", "\r\n", "\r", "x" * 1000, "From x", ".", " \n"])),
                     max_size=8).map("".join)


@settings(max_examples=examples(100))
@given(mail_text, mail_text, body_text, st.one_of(st.none(), body_text),
       st.lists(st.sampled_from(["a@example.fi", "b.c@example.fi", "d@x.example"]), max_size=4, unique=True))
@example("=?utf-8?q?x?= ä " + "pitkä " * 40, "Mäki, \"Matti\" <x@y>", "Hei\r\nä\rx" + "y" * 1200, "<p>ä</p>", ["a@example.fi"])
def test_what_a_reader_decodes_is_what_was_meant(subject: str, name: str, text: str, html: str | None,
                                                  cc: list[str]) -> None:
    """Subject, names, addresses and both bodies read back as they were given: cleaned to one
    line (headers) or with line ends made CRLF (bodies), nothing lost or changed besides, and
    no line on the wire longer than SMTP allows."""
    mail = outgoing(subject, name, cc=tuple(cc))
    mail = Outgoing(**{**mail.__dict__, "text": text, "html": html})
    raw = build(mail)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if "=?" not in subject:  # an ASCII look-alike of an encoded word is sent as text, and decoded by readers
        assert msg["Subject"] == header_safe(subject, 500)
    if "=?" not in name:
        assert [(a.display_name, a.addr_spec) for a in msg["From"].addresses] == [
            (header_safe(name), "jasenpalvelu@liitto.fi")]
    assert [a.addr_spec for a in msg["Cc"].addresses] == cc if cc else msg["Cc"] is None

    def lines(content: str) -> str:
        return content.replace("\r\n", "\n").replace("\r", "\n")

    assert lines(msg.get_body(("plain",)).get_content()) == lines(text)
    if html:
        assert lines(msg.get_body(("html",)).get_content()) == lines(html)
