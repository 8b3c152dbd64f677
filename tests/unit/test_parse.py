"""Parsing hostile input: whatever can be read is kept, nothing crashes."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, strategies as st

from maild.core.parse import ParseError, attachment_name, parse_message


def test_encoded_words_in_many_charsets() -> None:
    raw = (
        b"From: =?iso-8859-1?q?J=E4rvinen_=C5sa?= <asa@example.fi>\r\n"
        b"To: jasenpalvelu@liitto.fi\r\n"
        b"Subject: =?windows-1252?q?Eroilmoitus_=96_j=E4sen?= =?koi8-r?b?8NLJ18XU?=\r\n"
        b"Message-ID: <a@b>\r\n\r\nx\r\n"
    )
    parsed, _ = parse_message(raw)
    assert parsed.from_name == "Järvinen Åsa"
    assert parsed.subject == "Eroilmoitus – jäsenПривет"


def test_iso_2022_jp_folded_subject() -> None:
    raw = (
        b"From: a@example.jp\r\nSubject: =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=\r\n =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=\r\n"
        b"Content-Type: text/plain; charset=ISO-2022-JP\r\n\r\n\x1b$B%F%9%H\x1b(B\r\n"
    )
    parsed, _ = parse_message(raw)
    assert parsed.subject == "テストテスト"
    assert parsed.text == "テスト"


def test_body_in_windows_1252_and_unknown_charset() -> None:
    raw = b"From: a@x.fi\r\nContent-Type: text/plain; charset=windows-1252\r\n\r\nHyv\xe4\xe4 p\xe4iv\xe4\xe4 \x80\r\n"
    assert parse_message(raw)[0].text == "Hyvää päivää €"
    raw = b"From: a@x.fi\r\nContent-Type: text/plain; charset=x-unknown-42\r\n\r\nHyv\xe4\r\n"
    assert parse_message(raw)[0].text.startswith("Hyv")


def test_nul_bytes_never_reach_the_database() -> None:
    raw = b"From: a@x.fi\r\nSubject: nul\x00here\r\n\r\nbody\x00with nul\r\n"
    parsed, _ = parse_message(raw)
    assert "\x00" not in parsed.subject and "\x00" not in parsed.text
    assert parsed.text == "bodywith nul"


def test_html_only_mail_gives_readable_text() -> None:
    raw = (
        b"From: a@x.fi\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{}</style></head><body><p>Hei,</p><div>haluan&nbsp;erota.</div>"
        b"<script>alert(1)</script></body></html>"
    )
    parsed, _ = parse_message(raw)
    assert parsed.text == "Hei,\n\nhaluan erota."
    assert parsed.html and "<p>" in parsed.html


def test_missing_message_id_and_date() -> None:
    parsed, _ = parse_message(b"From: a@x.fi\r\nSubject: s\r\n\r\nb\r\n")
    assert parsed.message_id is None and parsed.date is None


def test_message_ids_with_and_without_brackets() -> None:
    raw = b"From: a@x.fi\r\nMessage-ID: bare@id\r\nIn-Reply-To: <p@x>\r\nReferences: <r1@x>\r\n\t<r2@x> <r1@x>\r\n\r\nb\r\n"
    parsed, _ = parse_message(raw)
    assert parsed.message_id == "bare@id"
    assert parsed.in_reply_to == ("p@x",)
    assert parsed.references == ("r1@x", "r2@x")


def test_broken_multipart_without_closing_boundary() -> None:
    raw = (
        b"From: a@x.fi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
        b"--XX\r\nContent-Type: text/plain\r\n\r\nosa yksi\r\n--XX\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename=\"lasku.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0x\r\n"
    )
    parsed, _ = parse_message(raw)
    assert "osa yksi" in parsed.text
    assert [a.filename for a in parsed.attachments] == ["lasku.pdf"]
    assert parsed.attachments[0].data == b"%PDF-1"


def test_very_long_line() -> None:
    raw = b"From: a@x.fi\r\nSubject: pitka\r\n\r\n" + b"a" * 100_000 + b"\r\n"
    assert len(parse_message(raw)[0].text) == 100_000


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n"])
def test_empty_message_is_unparseable(raw: bytes) -> None:
    with pytest.raises(ParseError, match="empty"):
        parse_message(raw)


def test_raw_8bit_headers_utf8_and_latin() -> None:
    parsed, _ = parse_message("From: Jörö <jörö@esimerkki.fi>\r\nSubject: Jäsenyys päättyy\r\n\r\nx\r\n".encode())
    assert (parsed.subject, parsed.from_name, parsed.from_addr) == ("Jäsenyys päättyy", "Jörö", "jörö@esimerkki.fi")
    parsed, _ = parse_message("From: a@x.fi\r\nSubject: Jäsenmaksu\r\n\r\nx\r\n".encode("latin-1"))
    assert parsed.subject == "Jäsenmaksu"


@pytest.mark.parametrize("given, stored", [
    ("hakemus.pdf", "hakemus.pdf"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\maija\\palkka.pdf", "palkka.pdf"),
    ("kuva\u202egpj.exe", "kuvagpj.exe"),  # shown as "kuvaexe.jpg" with the override
    ("\x1b]0;otsikko\x07lasku.pdf", "]0;otsikkolasku.pdf"),
    ("...", "attachment"),
    ("", "attachment"),
    ("ä" * 300, "ä" * 255),
])
def test_attachment_names_are_names_not_paths_or_tricks(given: str, stored: str) -> None:
    assert attachment_name(given) == stored


@given(st.text())
def test_an_attachment_name_is_never_empty_a_path_or_a_control(name: str) -> None:
    stored = attachment_name(name)
    assert 0 < len(stored) <= 255
    assert not any(ch in "/\\" or unicodedata.category(ch) == "Cc" or ch in "\u202e\u2066\u200f" for ch in stored)


def test_a_charset_name_with_a_nul_in_it_is_no_charset() -> None:
    """Found by the fuzzer: an RFC 2231 ``charset*=`` whose own charset part holds a NUL makes the
    stdlib's ``get_content_charset`` raise; the text is read as UTF-8 instead."""
    from maild.core.bounces import part_text

    raw = b"From: a@b.fi\r\nSubject: x\r\nContent-Type: text/plain; charset*=x\x00y''utf-8\r\n\r\nhyv\xc3\xa4\r\n"
    parsed, message = parse_message(raw)
    assert parsed.text.strip() == "hyvä"
    assert part_text(message).strip() == "hyvä"


def test_writing_back_and_bounce_reading_never_decode_with_a_bad_charset() -> None:
    """Found by a long fuzzer run: ``get_payload()`` without ``decode`` decodes stored 8-bit text
    with the charset parameter, and raises when that name holds a NUL. Writing a part back as
    read (``_as_read``, for an attached message) and listing a bounce's parts never ask it to."""
    import email

    from maild.core import bounces
    from maild.core.parse import _as_read, _base64_text

    part = email.message_from_bytes(
        b"Content-Type: text/plain; charset*=x\x00y''utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nhyv\xc3\xa4\r\n")
    assert _as_read(part).encode("utf-8", "surrogateescape").endswith(b"\n\nhyv\xc3\xa4\r\n")
    assert _base64_text(part) is None
    assert bounces._subparts(part) == []
