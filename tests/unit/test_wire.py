"""Header fields and MIME parts written directly (``wire.py``), read back by the stdlib's parser."""

from __future__ import annotations

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
