"""Header fields and MIME parts written directly (``wire.py``), read back by the stdlib's parser."""

from __future__ import annotations

import binascii
import email
import email.policy
from datetime import UTC, datetime
from email.header import decode_header, make_header

import pytest

from maild.outbound import wire
from maild.outbound.compose import Outgoing, build, build_many


def unfold(field: str) -> str:
    return field.removesuffix("\r\n").replace("\r\n ", " ")


@pytest.mark.parametrize("text", ["Jäsenmaksun eräpäivä", "ä" * 200, "😀x" * 50, "a_b=c?d", "", " alku ja loppu "])
def test_encoded_words_are_short_hold_whole_characters_and_decode_back(text: str) -> None:
    words = wire.encoded_words(text)

    assert all(len(word) <= 75 for word in words)
    for word in words:  # each decodes on its own: no character split between two words
        [(data, charset)] = decode_header(word)
        assert isinstance(data, bytes) and charset == "utf-8"
        data.decode("utf-8")
    assert str(make_header(decode_header(" ".join(words)))) == text


@pytest.mark.parametrize("value", ["[JP#12] " + "Jäsenmaksun eräpäivä " * 12, "[JP#12] " + "Osoitteenmuutos " * 12])
def test_a_long_subject_is_folded_at_spaces_and_reads_back_whole(value: str) -> None:
    value = value.strip()
    field = wire.field("Subject", value)

    lines = field.removesuffix("\r\n").split("\r\n")
    assert len(lines) > 1 and all(len(line) <= wire.LINE for line in lines)
    assert all(line.startswith(" ") for line in lines[1:])
    assert email.message_from_string(field + "\r\n", policy=email.policy.default)["Subject"] == value


def test_ascii_is_folded_only_where_there_was_a_space() -> None:
    references = " ".join(f"<{n}.{'x' * 30}@example.fi>" for n in range(10))

    assert unfold(wire.field("References", references)) == f"References: {references}"


def test_one_word_longer_than_a_line_stays_whole() -> None:
    word = "<" + "x" * 200 + "@example.fi>"

    assert wire.field("Message-ID", word) == f"Message-ID: {word}\r\n"


def test_addresses_quote_or_encode_the_name_and_keep_the_address() -> None:
    field = wire.address_field("To", [('Eve "x", <y@z>', "a@example.fi"), ("Mäki, Matti", "b@example.fi"), ("", "c@example.fi")])
    msg = email.message_from_string(field + "\r\n", policy=email.policy.default)

    assert [(a.display_name, a.addr_spec) for a in msg["To"].addresses] == [
        ('Eve "x", <y@z>', "a@example.fi"), ("Mäki, Matti", "b@example.fi"), ("", "c@example.fi")]


@pytest.mark.parametrize(
    ("content", "cte"),
    [("Hei\nmaailma\n", "7bit"), ("Hyvää päivää\n", "quoted-printable"), ("a" * 1200, "quoted-printable"),
     ("bell\x07 and esc\x1b[2J\n", "quoted-printable"), ("lone\rcr and crlf\r\nand lf\n", "7bit")],
)
def test_a_text_part_ends_lines_in_crlf_and_encodes_what_is_not_plain_ascii(content: str, cte: str) -> None:
    headers, body = wire.text_part(content, "plain")

    assert f"Content-Transfer-Encoding: {cte}\r\n" in headers
    assert b"\n" not in body.replace(b"\r\n", b"") and b"\r" not in body.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in body.split(b"\r\n"))
    assert all(32 <= byte < 127 or byte in b"\t\r\n" for byte in body)
    part = email.message_from_bytes(headers.encode() + b"\r\n" + body, policy=email.policy.default)
    expected = content.replace("\r\n", "\n").replace("\r", "\n")
    assert part.get_content().replace("\r\n", "\n") == expected


def test_the_boundary_is_in_no_part() -> None:
    body = wire.mime_body("--=_ plain\n", "<p>--=_ html</p>\n")
    msg = email.message_from_bytes(b"From: a@b.fi\r\n" + body, policy=email.policy.default)

    assert msg.get_content_type() == "multipart/alternative"
    assert [part.get_content().replace("\r\n", "\n") for part in msg.iter_parts()] == [
        "--=_ plain\n", "<p>--=_ html</p>\n"]


def notice(to: str, reply_to: str, message_id: str) -> Outgoing:
    return Outgoing(
        from_name="Jäsenasiat", from_addr="jasenpalvelu@liitto.fi", to=(to,), subject="[JP#7] Uusi tiketti: Jäsenmaksu",
        text="--- maild ---\nUusi tiketti [JP#7]\n--- /maild ---\n\nHei, äö\n", html=None, message_id=message_id,
        in_reply_to="orig@example.fi", references=("orig@example.fi",), reply_to=reply_to, auto="auto-generated",
        date=datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
    )


def test_a_notice_to_several_staff_shares_its_body_and_has_each_ones_headers() -> None:
    mails = [notice(f"staff{n}@liitto.fi", f"jasenpalvelu+7-s{n}@liitto.fi", f"m{n}@liitto.fi") for n in range(3)]

    raws = build_many(mails)

    assert raws == [build(mail) for mail in mails]
    bodies = {raw[raw.index(b"MIME-Version:"):] for raw in raws}
    assert len(bodies) == 1
    for n, raw in enumerate(raws):
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert msg["To"] == f"staff{n}@liitto.fi" and msg["Message-ID"] == f"<m{n}@liitto.fi>"
        assert msg["Reply-To"].addresses[0].addr_spec == f"jasenpalvelu+7-s{n}@liitto.fi"
        assert msg["Auto-Submitted"] == "auto-generated" and msg["References"] == "<orig@example.fi>"


# --- files (docs/mail.md#attachments) --------------------------------------------------------------

def _files_of(raw: bytes) -> list[email.message.EmailMessage]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return [part for part in msg.walk() if part.get_content_disposition() in ("attachment", "inline")]


def _mail(*files: wire.Attached, html: str | None = None) -> bytes:
    return build(Outgoing(from_name="Jäsenasiat", from_addr="jasenpalvelu@liitto.fi", to=("maija@liitto.fi",),
                          subject="s", text="Hei", html=html, message_id="m@liitto.fi", attachments=files))


@pytest.mark.parametrize(("name", "content_type", "saved_as"), [
    ("../../etc/passwd", "text/plain", "passwd"),
    ("C:\\Users\\maija\\Hakemus 2026.pdf", "application/pdf", "Hakemus 2026.pdf"),
    ("lasku\r\nContent-Type: text/html.pdf", "application/pdf", "html.pdf"),
    ("lasku\r\nX-Evil: 1.pdf", "application/pdf", "laskuX-Evil: 1.pdf"),
    ("\x1b[31mpunainen\x07.txt", "text/plain", "[31mpunainen.txt"),
    ("kuva\u202egnp.exe", "image/png", "kuvagnp.exe"),
    ("", "application/pdf", "attachment.pdf"),
    ("...", "", "attachment"),
    ("/", "image/png", "attachment.png"),
    ("", "message/rfc822", "message.eml"),
    ("Fwd: Todistus", "message/rfc822", "Fwd: Todistus.eml"),
    ("viesti.EML", "message/rfc822", "viesti.EML"),
    ("=?utf-8?q?evil?=.pdf", "application/pdf", "=?utf-8?q?evil?=.pdf"),
    ('"a"; filename=b.exe', "application/pdf", '"a"; filename=b.exe'),
    ("Jäsenhakemus – allekirjoitettu.pdf", "application/pdf", "Jäsenhakemus – allekirjoitettu.pdf"),
])
def test_hostile_file_names_are_cleaned_and_read_back_as_written(name: str, content_type: str, saved_as: str) -> None:
    raw = _mail(wire.Attached(name, content_type, b"data"))
    (part,) = _files_of(raw)

    assert all(len(line) <= wire.LINE for line in raw.split(b"\r\n"))
    assert part.get_filename() == saved_as
    assert part.get_payload(decode=True) == b"data"


def test_a_long_non_ascii_name_goes_in_rfc_2231_continuations_with_short_lines() -> None:
    name = "Jäsenmaksun palautushakemus ja palkkatodistukset vuodelta 2026 – " * 6 + "liite.pdf"
    raw = _mail(wire.Attached(name, "application/pdf", b"%PDF"))

    assert b"filename*0*=utf-8''" in raw and b"filename*1*=" in raw
    assert all(len(line) <= wire.LINE for line in raw.split(b"\r\n") if b"name*" in line)
    (part,) = _files_of(raw)
    assert part.get_filename() == wire.safe_filename(name)
    assert len(part.get_filename()) == wire.NAME_LIMIT and part.get_filename().endswith(".pdf")


def test_an_attached_message_goes_as_a_file_not_as_a_part_of_our_mail() -> None:
    eml = b"From: a@example.fi\r\nSubject: alkuperainen\r\n\r\nteksti\r\n"
    (part,) = _files_of(_mail(wire.Attached("viesti.eml", "message/rfc822", eml)))

    assert part.get_content_type() == "application/octet-stream" and part.get_filename() == "viesti.eml"
    assert part.get_payload(decode=True) == eml


def test_a_bad_content_type_becomes_octet_stream() -> None:
    (part,) = _files_of(_mail(wire.Attached("a.bin", "text/html\r\nX-Evil: 1", b"x")))

    assert part.get_content_type() == "application/octet-stream" and part["X-Evil"] is None


def test_inline_pictures_go_in_related_beside_the_html_and_files_in_mixed() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(300)
    raw = _mail(wire.Attached("kuva.png", "image/png", png, content_id="kuva1@liitto.fi"),
                wire.Attached("lomake.pdf", "application/pdf", b"%PDF-1.4"),
                html='<p>Hei</p><img src="cid:kuva1@liitto.fi">')
    msg = email.message_from_bytes(raw, policy=email.policy.default)

    shape = [part.get_content_type() for part in msg.walk()]
    assert shape == ["multipart/mixed", "multipart/alternative", "text/plain", "multipart/related", "text/html",
                     "image/png", "application/pdf"]
    picture = next(part for part in msg.walk() if part.get_content_type() == "image/png")
    assert picture["Content-ID"] == "<kuva1@liitto.fi>" and picture.get_content_disposition() == "inline"
    assert picture.get_payload(decode=True) == png


def test_without_html_a_picture_with_a_content_id_is_an_attachment() -> None:
    (part,) = _files_of(_mail(wire.Attached("kuva.png", "image/png", b"png", content_id="kuva1@liitto.fi")))

    assert part.get_content_disposition() == "attachment" and part["Content-ID"] is None


def test_base64_is_written_in_lines_of_76_whatever_the_chunks() -> None:
    data = bytes(range(256)) * 9000  # more than one encoding chunk
    chunks = [data[i:i + 1000] for i in range(0, len(data), 1000)] + [b""]
    lines = b"".join(wire.base64_lines(chunks)).split(b"\r\n")

    assert all(len(line) == 76 for line in lines[:-2]) and lines[-1] == b""
    assert binascii.a2b_base64(b"".join(lines)) == data
    assert b"".join(wire.base64_lines([data])) == b"".join(wire.base64_lines(chunks))


def test_files_go_with_a_mail_to_an_address_that_is_not_ascii() -> None:
    raw = build(Outgoing(from_name="Jäsenasiat", from_addr="jasenpalvelu@liitto.fi", to=("mätti@esimerkki.fi",),
                         subject="s", text="Hei", message_id="m@liitto.fi",
                         attachments=(wire.Attached("hakemus.pdf", "application/pdf", b"%PDF-1.4"),)))
    msg = email.message_from_bytes(raw, policy=email.policy.default)

    assert msg["To"] == "mätti@esimerkki.fi" and raw.count(b"MIME-Version") == 1
    (part,) = msg.iter_attachments()
    assert part.get_filename() == "hakemus.pdf" and part.get_payload(decode=True) == b"%PDF-1.4"
