"""Long base64 runs kept out of the stdlib parser (``maild.core.elide``) change nothing that is read.

Each property parses the same message twice: with every base64 run left out (``elide_at=1``,
so that small examples exercise it) and with none (``elide_at`` larger than the message), and
from bytes and from a file, and wants the same ``Parsed``, attachment content and ParseError.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from pathlib import Path
from unittest import mock

from hypothesis import example, given, settings
from hypothesis import strategies as st

from maild.core.parse import ParseError, parse_message
from maild.core import elide
from maild.core.elide import Raw, Skeleton, base64_runs, decode_base64
from tests.hostile import examples, hostile_message

NEVER = 1 << 40


def outcome(raw: bytes | Path, elide_at: int) -> object:
    try:
        parsed, _ = parse_message(raw, elide_at=elide_at)
    except ParseError as exc:
        return ("ParseError", str(exc))
    return parsed, [attachment.data for attachment in parsed.attachments]


def assert_alike(raw: bytes) -> None:
    """Alike with runs left out or not, from bytes or from a file read in chunks of 7 bytes
    (so that line ends, separators and base64 quads straddle chunks)."""
    whole = outcome(raw, NEVER)
    assert outcome(raw, 1) == whole
    with tempfile.TemporaryDirectory() as directory, \
            mock.patch.object(elide, "READ_WHOLE", 0), mock.patch.object(elide, "CHUNK", 7):
        path = Path(directory) / "m.eml"
        path.write_bytes(raw)
        assert outcome(path, 1) == whole
        assert outcome(path, NEVER) == whole


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def a2b_or_error(data: bytes) -> bytes | str:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        return "error"  # its message counts characters seen; only that it fails matters


@settings(max_examples=examples(300))
@given(st.lists(st.sampled_from([b"QUJD", b"A", b"B", b"/", b"+", b"=", b"==", b"\r\n", b"\n", b"*", b" ", b"\xff"]),
                max_size=60).map(b"".join),
       st.lists(st.integers(0, 240), max_size=6))
@example(b"QUJD\nQQ==\nQUJD", [5])
@example(b"QUJDQQ=", [])
def test_decode_base64_in_pieces_is_a2b_base64_of_the_whole(text: bytes, cuts: list[int]) -> None:
    try:
        decoded: bytes | str = b"".join(decode_base64(split_at(text, cuts)))
    except binascii.Error:
        decoded = "error"
    assert decoded == a2b_or_error(text)


@st.composite
def mail_with_base64(draw: st.DrawFn) -> bytes:
    """A member's mail with base64 (often damaged) as an attachment, a text part, a preamble,
    an epilogue, inside an attached message, or in a part with no transfer encoding."""
    newline = draw(st.sampled_from([b"\r\n", b"\n"]))
    data = draw(st.binary(max_size=600))
    width = draw(st.sampled_from([76, 64, 3, 1000]))
    text = base64.b64encode(data)
    damage = draw(st.sampled_from(["none", "junk", "early-pad", "no-pad", "one-extra", "space", "8bit", "cr", "colon"]))
    at = draw(st.integers(0, len(text)))
    text = {
        "none": text, "no-pad": text.rstrip(b"="), "one-extra": text + b"Q",
        "junk": text[:at] + b"*!" + text[at:], "early-pad": text[:at] + b"=" + text[at:],
        "space": text[:at] + b" " + text[at:], "8bit": text[:at] + b"\xe4" + text[at:],
        "cr": text[:at] + b"\r" + text[at:], "colon": text[:at] + b":" + text[at:],
    }[damage]
    body = newline.join(text[i : i + width] for i in range(0, len(text), width))
    body += draw(st.sampled_from([newline, b"", newline * 2]))
    where = draw(st.sampled_from(["attachment", "text", "preamble", "epilogue", "inner", "plain-attachment", "single"]))
    head = b"From: matti@example.fi" + newline + b"Subject: liite" + newline + b"MIME-Version: 1.0" + newline
    if where == "single":
        return head + b"Content-Type: application/pdf" + newline + b"Content-Transfer-Encoding: base64" + newline * 2 + body
    part_headers = {
        "attachment": [b"Content-Type: application/pdf", b"Content-Transfer-Encoding: base64",
                       b'Content-Disposition: attachment; filename="a.pdf"'],
        "text": [b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: base64"],
        "plain-attachment": [b"Content-Type: application/octet-stream", b'Content-Disposition: attachment; filename="b"'],
    }
    boundary = b"==b" + draw(st.sampled_from([b"1", b"QUJD"]))
    parts = [b"Content-Type: text/plain" + newline * 2 + b"Hei"]
    preamble = epilogue = b"x"
    if where in part_headers:
        parts.append(newline.join(part_headers[where]) + newline * 2 + body)
    elif where == "preamble":
        preamble = body
    elif where == "epilogue":
        epilogue = body
    else:  # an attached message with the base64 attachment inside
        inner = (b"From: a@x.fi" + newline + b"Content-Type: multipart/mixed; boundary=in" + newline * 2 + b"--in" + newline
                 + newline.join(part_headers["attachment"]) + newline * 2 + body + newline + b"--in--" + newline)
        parts.append(b"Content-Type: message/rfc822" + newline * 2 + inner)
    lines = [head + b'Content-Type: multipart/mixed; boundary="' + boundary + b'"' + newline, preamble]
    lines += [b"--" + boundary + newline + p for p in parts]
    lines += [b"--" + boundary + b"--", epilogue]
    return newline.join(lines)


@settings(max_examples=examples(200))
@given(mail_with_base64())
def test_base64_anywhere_reads_alike_with_runs_left_out(raw: bytes) -> None:
    assert_alike(raw)


@settings(max_examples=examples(100))
@given(hostile_message())
def test_hostile_mail_reads_alike_with_runs_left_out(raw: bytes) -> None:
    assert_alike(raw)


def test_corpus_reads_alike_with_runs_left_out() -> None:
    corpus = Path(__file__).resolve().parents[1] / "corpus"
    files = sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix != ".md")
    assert len(files) >= 40
    for path in files:
        assert_alike(path.read_bytes())


def test_a_big_attachment_never_reaches_the_parser_and_is_read_from_the_file(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    raw = (b"From: matti@example.fi\r\nSubject: liite\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: text/plain\r\n\r\nHei\r\n--b\r\nContent-Type: application/pdf\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--b--\r\n")
    path = tmp_path / "big.eml"
    path.write_bytes(raw)
    skeleton = Skeleton.of(Raw.of(path))
    assert len(skeleton.runs) == 1 and len(b"".join(skeleton.stream())) < 1000
    parsed, message = parse_message(path)
    (attachment,) = parsed.attachments
    assert attachment.size == len(data) and not isinstance(attachment.content, bytes)
    assert b"".join(attachment.chunks()) == data and max(map(len, attachment.chunks())) <= 1 << 20
    assert parsed.text == "Hei" and parsed == parse_message(raw, elide_at=NEVER)[0]


def test_a_line_too_long_to_hold_ends_a_run_and_is_not_left_out() -> None:
    line = b"A" * (elide._LONG_LINE + elide.CHUNK + 5) + b"\n"
    raw = b"QUJD\n" * 3 + line + b"QUJD\n" * 2 + b"x y\n"
    assert base64_runs(Raw.of(raw), 1) == [(0, 15), (15 + len(line), 25 + len(line))]
