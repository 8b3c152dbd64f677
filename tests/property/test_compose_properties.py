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
from maild.outbound import wire
from maild.outbound.compose import Attached, Outgoing, build, build_many
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
    if msg.is_multipart():  # the parts say how they are encoded
        del meant["Content-Transfer-Encoding"]
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


# --- attachments (docs/mail.md#attachments) -------------------------------------------------------

file_names = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
    st.sampled_from(["../../etc/passwd", "C:\\Users\\x\\hakemus.pdf", "a\r\nContent-Type: text/html", "=?utf-8?q?x=0D?=",
                     "name*=utf-8''%0D%0A", '"quoted"; x=1', "\x00\x1b[31m.pdf", "...", " ", "", "😀" * 100,
                     "ä" * 300 + ".pdf", "\u202egpj.exe"]),
)
content_types = st.one_of(
    st.sampled_from(["application/pdf", "image/png", "text/plain", "message/rfc822", "multipart/mixed",
                     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"]),
    st.text(max_size=40),
)


@st.composite
def attached_files(draw: st.DrawFn) -> Attached:
    return Attached(draw(file_names), draw(content_types), draw(st.binary(max_size=3000)),
                    content_id=draw(st.one_of(st.none(), st.sampled_from(["img1@x.fi", "bad id\r\n", "<a@b>"]),
                                              st.text(max_size=20))))


@settings(max_examples=examples(100))
@given(st.lists(attached_files(), max_size=6), st.one_of(st.none(), st.text(max_size=200)), st.text(max_size=300))
def test_attachments_read_back_with_the_stdlib_as_they_were_written(
    files: list[Attached], html: str | None, text: str
) -> None:
    """Whatever names, types and bytes: the stdlib's parser finds each file, in order, with its
    bytes, a clean name and a valid type; the text and HTML parts read back; headers stay ours."""
    mail = Outgoing(from_name="Jäsenasiat", from_addr="jasenpalvelu@liitto.fi", to=("maija@liitto.fi",),
                    subject="[JP#1] Liitteet", text=text, html=html, message_id="m1@liitto.fi", attachments=tuple(files),
                    reply_to="jasenpalvelu+7-abcdefghij@liitto.fi", auto="auto-generated")
    raw = build(mail)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert not any(part.defects for part in msg.walk()), [part.defects for part in msg.walk()]
    leaves = [part for part in msg.walk() if not part.is_multipart()]
    files_read = [part for part in leaves if part.get_content_disposition() in ("attachment", "inline")]
    assert len(files_read) == len(files)
    inline_read = [part for part in files_read if part.get_content_disposition() == "inline"]
    written = {id(part): item for part, item in zip(files_read, sorted(
        files, key=lambda f: 0 if html and wire.safe_content_id(f.content_id or "") else 1))}
    for part in files_read:
        item = written[id(part)]
        assert part.get_payload(decode=True) == item.content
        name = part.get_filename()
        assert name == wire.safe_filename(item.filename, item.content_type) and name
        assert "/" not in name and "\\" not in name and not any(ord(c) < 32 or c == "\x7f" for c in name)
        assert part.get_content_type() == wire.safe_content_type(item.content_type)
        assert not part.get_content_type().startswith(("message/", "multipart/"))
    for part in inline_read:
        assert part["Content-ID"] == f"<{wire.safe_content_id(written[id(part)].content_id or '')}>"
    plain = msg.get_body(("plain",))
    assert plain is not None and plain.get_content().replace("\r\n", "\n") == text.replace("\r\n", "\n").replace("\r", "\n")
    if html:
        assert msg.get_body(("html",)) is not None
    check_composed(mail)


def test_a_notice_to_three_shares_one_body_with_the_file_read_from_disk(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = bytes(range(256)) * 4000
    path = tmp_path / "hakemus.pdf"
    path.write_bytes(data)
    files = (Attached("hakemus.pdf", "application/pdf", path, len(data)),)
    mails = [Outgoing(from_name="Q", from_addr="q@liitto.fi", to=(f"s{n}@liitto.fi",), subject="s", text="t",
                      message_id=f"m{n}@liitto.fi", attachments=files) for n in range(3)]
    raws = build_many(mails)
    bodies = {raw[raw.index(b"MIME-Version"):] for raw in raws}
    assert len(bodies) == 1
    for raw in raws:
        (part,) = email.message_from_bytes(raw, policy=email.policy.default).iter_attachments()
        assert part.get_payload(decode=True) == data
