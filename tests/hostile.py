"""Hypothesis strategies for hostile and unusual mail, as raw bytes.

Everything here builds what arrives on the wire: odd and deep multipart nesting, missing or
lying boundaries, every Content-Transfer-Encoding (and broken base64 / quoted-printable),
folded headers, RFC 2047 encoded words (valid and broken, in names and subjects), huge lines,
control bytes (NUL, VT, ESC, a CR alone), mixed and unknown charsets, raw 8-bit headers,
duplicate headers and absent From / Message-ID.

``hostile_message()`` is the one to use; the pieces are public so that a property can aim at
one of them (``address_value()``, ``header_text()``...). The hypothesis profiles for the
property tests are registered here too (see ``load_profile``).
"""

from __future__ import annotations

import base64
import email.header
import os
import quopri
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase

# -- profiles -----------------------------------------------------------------------------

PROFILE_ENV = "HYPOTHESIS_PROFILE"


def load_profile() -> None:
    """``ci`` (default, for ``make test``: bounded, derandomized, no database in the
    repository) or ``long`` (``HYPOTHESIS_PROFILE=long``: many examples, random, with an
    example database in the temp directory so that a failure found once is tried first).

    Each property sets its own number of examples with ``examples(n)``: n here, n times
    ``MULTIPLIER`` in ``long``. Run that with ``--timeout=0`` (pytest-timeout's 120 s is
    for ordinary tests).
    """
    home = Path(tempfile.gettempdir()) / "maild-hypothesis"  # its caches and examples, never in the checkout
    set_hypothesis_home_dir(home)
    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("ci", max_examples=100, derandomize=True, database=None, print_blob=True, **common)
    settings.register_profile(
        "long", max_examples=100 * MULTIPLIER, print_blob=True,
        database=DirectoryBasedExampleDatabase(str(home / "examples")), **common)
    settings.load_profile(os.environ.get(PROFILE_ENV, "ci"))


MULTIPLIER = 200  # the long profile: about an hour for all properties together


def examples(count: int) -> int:
    """``count`` examples in ``make test``, ``MULTIPLIER`` times as many in the long profile."""
    return count * MULTIPLIER if os.environ.get(PROFILE_ENV) == "long" else count


# -- bytes of one header value ------------------------------------------------------------

CHARSETS = ["utf-8", "iso-8859-1", "windows-1252", "us-ascii", "iso-8859-15", "koi8-r", "iso-2022-jp",
            "utf-16", "x-unknown", "bogus\x00name", "", "utf-8\t", "UTF8", "unicode-1-1-utf-7"]
CONTROLS = ["\x00", "\x0b", "\x1b", "\r", "\n", "\t", "\x7f", "\x85", "\u2028", "\x1b]0;pwn\x07", "\x1b[2J", "\x0c"]
TRANSFER_ENCODINGS = ["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "BASE64", "bogus", ""]

# Text that mail carries: any Unicode, with the control characters over-represented.
mail_text = st.lists(st.one_of(st.characters(codec="utf-8"), st.sampled_from(CONTROLS)), max_size=40).map("".join)


def _encode_for_charset(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset)
    except (LookupError, UnicodeError, ValueError):
        return text.encode("utf-8", "surrogatepass")


@st.composite
def encoded_word(draw: st.DrawFn) -> bytes:
    """One RFC 2047 encoded word: valid in some charset, or broken in one of many ways."""
    text = draw(mail_text)
    charset = draw(st.sampled_from(CHARSETS))
    data = _encode_for_charset(text, charset)
    kind = draw(st.sampled_from(["b", "q", "bad-b64", "bad-q", "unterminated", "bad-charset", "stdlib"]))
    cs = charset.encode("ascii", "replace")
    if kind == "b":
        return b"=?" + cs + b"?B?" + base64.b64encode(data) + b"?="
    if kind == "q":
        return b"=?" + cs + b"?Q?" + quopri.encodestring(data, header=True).replace(b"=\n", b"") + b"?="
    if kind == "bad-b64":
        return b"=?utf-8?b?" + base64.b64encode(data)[:-1] + b"!?="
    if kind == "bad-q":
        return b"=?utf-8?q?" + data.replace(b"?", b"=3F") + b"=Z=?="
    if kind == "unterminated":
        return b"=?utf-8?q?" + data[:20]
    if kind == "bad-charset":
        return b"=?" + draw(st.binary(max_size=8)).replace(b"?", b"") + b"?q?" + data[:10] + b"?="
    try:
        return email.header.Header(text, "utf-8").encode().encode("ascii")
    except (UnicodeError, ValueError):
        return b"=?utf-8?q?x?="


raw_8bit = st.builds(lambda text, charset: _encode_for_charset(text, charset), mail_text,
                     st.sampled_from(["utf-8", "windows-1252", "iso-8859-1", "koi8-r"]))
control_bytes = st.sampled_from([c.encode("utf-8") for c in CONTROLS] + [b"\r", b"\x00\x00", b"\x1b[31m"])


@st.composite
def header_text(draw: st.DrawFn, max_pieces: int = 6) -> bytes:
    """A header value: plain ASCII, encoded words, raw 8-bit, control bytes, folding."""
    pieces = draw(st.lists(st.one_of(
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(str.encode),
        encoded_word(), raw_8bit, control_bytes,
        st.just(b"\r\n "), st.just(b"\r\n\t"), st.just(b"\n "),  # folding, CRLF and bare LF
    ), max_size=max_pieces))
    return b" ".join(pieces) if draw(st.booleans()) else b"".join(pieces)


# -- addresses ----------------------------------------------------------------------------

ATTACKS = [
    b"=?utf-8?q?victim=40example=2Eorg?= <attacker@evil.example>",
    b"=?utf-8?q?Eve=0D=0ABcc:_evil2@x.fi?= <eve@example.fi>",
    b'"victim@example.org" <attacker@evil.example>',
    b"victim@example.org <attacker@evil.example>",
    b"attacker@evil.example (victim@example.org)",
    b"undisclosed-recipients:;",
    b"Group: a@x.fi, b@y.fi;",
    b"<a@x.fi>, <b@y.fi>",
    b"a@x.fi\x0b@y.fi",
    b"<evil@x.fi\r\nBcc: evil2@x.fi>",
    b"=?utf-8?b?" + base64.b64encode(b"x@y.fi\r\nBcc: z@w.fi") + b"?=",
    b"\"Quoted \\\" name\" <q@x.fi>",
    b"<\x00nul@x.fi>",
    b"a b@x.fi",
    b"@x.fi",
    b"x@",
    b"<>",
]

local_part = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='"(),:;<>@[\\]'),
                     min_size=1, max_size=12)
domain = st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8),
                  min_size=1, max_size=3).map(lambda labels: ".".join(labels) + ".fi")
plain_address = st.builds(lambda local, host: f"{local}@{host}".encode(), local_part, domain)


@st.composite
def address_value(draw: st.DrawFn) -> bytes:
    """What a From/To/Cc/Reply-To header may hold: sane, odd, or built to deceive."""
    shape = draw(st.sampled_from(["plain", "angle", "named", "encoded-name", "list", "attack", "junk"]))
    if shape == "plain":
        return draw(plain_address)
    if shape == "angle":
        return b"<" + draw(plain_address) + b">"
    if shape == "named":
        return draw(header_text(3)).replace(b"<", b"").replace(b">", b"") + b" <" + draw(plain_address) + b">"
    if shape == "encoded-name":
        return draw(encoded_word()) + b" <" + draw(plain_address) + b">"
    if shape == "list":
        return b", ".join(draw(st.lists(address_value(), min_size=2, max_size=3)))
    if shape == "attack":
        return draw(st.sampled_from(ATTACKS))
    return draw(header_text())


def message_id_value() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.builds(lambda local, host: b"<" + local.encode() + b"@" + host.encode() + b">", local_part, domain),
        st.builds(lambda text: b"<" + text + b">", header_text(3)),
        header_text(3),
    )


# -- headers ------------------------------------------------------------------------------

HEADER_NAMES = [b"Subject", b"From", b"To", b"Cc", b"Reply-To", b"Message-ID", b"In-Reply-To", b"References",
                b"Date", b"Sender", b"Auto-Submitted", b"Precedence", b"List-Id", b"Return-Path", b"Received",
                b"Content-Type", b"MIME-Version", b"X-Mailer", b"Authentication-Results"]
header_name = st.one_of(st.sampled_from(HEADER_NAMES),
                        st.binary(min_size=1, max_size=12).filter(lambda n: b":" not in n and b"\n" not in n))
dates = st.sampled_from([b"Tue, 1 Dec 2026 10:00:00 +0200", b"1 Dec 2026 10:00 GMT", b"yesterday",
                         b"Mon, 31 Feb 2026 25:61:61 +9999", b"", b"Tue, 1 Dec 2026 10:00:00 -0000 (EET)"])


@st.composite
def header_block(draw: st.DrawFn, newline: bytes = b"\r\n") -> list[bytes]:
    """The top-level headers: From, Message-ID and Date may be absent, any may repeat."""
    lines: list[bytes] = []
    if draw(st.integers(0, 9)):  # usually a From, sometimes none
        lines += [b"From: " + draw(address_value()) for _ in range(draw(st.integers(1, 2)))]
    if draw(st.booleans()):
        lines.append(b"Message-ID: " + draw(message_id_value()))
    if draw(st.booleans()):
        lines.append(b"Date: " + draw(dates))
    lines.append(b"To: " + draw(st.one_of(st.just(b"jasenpalvelu@liitto.fi"), address_value())))
    if draw(st.booleans()):
        lines.append(b"Cc: " + draw(address_value()))
    lines += [b"Subject: " + draw(header_text()) for _ in range(draw(st.integers(0, 2)))]
    for _ in range(draw(st.integers(0, 4))):
        name = draw(header_name)
        value = draw(st.one_of(header_text(), address_value(), message_id_value()))
        lines.append(name + b": " + value)
    if draw(st.booleans()):
        lines.append(b"MIME-Version: 1.0")
    return draw(st.permutations(lines))


# -- bodies -------------------------------------------------------------------------------

CONTENT_TYPES = ["text/plain", "text/html", "application/pdf", "image/png", "application/octet-stream",
                 "message/rfc822", "message/delivery-status", "text/calendar", "multi\x00part/mixed",
                 "text", "", "application/ms-tnef", "text/rfc822-headers"]
HTML_BITS = [b"<p>", b"</p>", b"<div>", b"<br>", b"<blockquote>", b"</blockquote>", b"<a <a ", b"<!--",
             b"-->", b"<script>", b"</script>", b"&nbsp;", b"&#0;", b"&#xD800;", b"<![CDATA[", b"<pre>",
             b"</", b"<p class=MsoNormal>", b"<style>", b"</style>", b"<", b">"]


def body_bytes() -> st.SearchStrategy[bytes]:
    """A part's decoded content: text in some charset, HTML soup, binary, huge lines."""
    return st.one_of(
        st.builds(_encode_for_charset, mail_text, st.sampled_from(CHARSETS)),
        st.lists(st.one_of(st.sampled_from(HTML_BITS), raw_8bit), max_size=30).map(b"".join),
        st.binary(max_size=200),
        st.builds(lambda unit, n: unit * n, st.sampled_from([b"x", b"> ", b"=", b"\r", b"\x00", b"\r\n"]),
                  st.integers(1000, 20000)),  # one huge line, or many tiny ones
        # Shapes that were quadratic (issue 11 item 7), kept small here: tests/property/test_linear_time.py
        # gives them their size.
        st.builds(lambda unit, n: unit * n, st.sampled_from([b"To: x\n", b"<a ", b"<!--", b"From: a\n"]),
                  st.integers(1, 200)),
        st.just(b"-- \r\nsignature\r\n"),
    )


def _transfer_encode(data: bytes, encoding: str, broken: bool) -> bytes:
    lowered = encoding.lower()
    if lowered == "base64":
        encoded = base64.encodebytes(data)
        return encoded.replace(b"=", b"") + b"!!*" if broken else encoded
    if lowered == "quoted-printable":
        encoded = quopri.encodestring(data)
        return encoded + b"=G1=\r\n=" if broken else encoded
    return data


@st.composite
def leaf_part(draw: st.DrawFn, newline: bytes) -> bytes:
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    headers = [b"Content-Type: " + content_type.encode("utf-8")]
    if draw(st.booleans()):
        headers[0] += b"; charset=" + draw(st.sampled_from(CHARSETS)).encode("utf-8", "replace")
    encoding = draw(st.sampled_from(TRANSFER_ENCODINGS))
    if encoding:
        headers.append(b"Content-Transfer-Encoding: " + encoding.encode())
    if draw(st.booleans()):
        disposition = draw(st.sampled_from([b"attachment", b"inline", b"bogus"]))
        filename = draw(st.one_of(encoded_word(), header_text(2),
                                  st.just(b"*=utf-8''%E4%00%FF.pdf"), st.just(b"=\"../../etc/passwd\"")))
        headers.append(b"Content-Disposition: " + disposition + b"; filename=\"" + filename + b"\"")
    if content_type == "message/rfc822" and draw(st.booleans()):
        content = newline.join(draw(header_block())) + newline * 2 + draw(body_bytes())
    else:
        content = draw(body_bytes())
    body = _transfer_encode(content, encoding, draw(st.booleans()))
    return newline.join(headers) + newline * 2 + body


@st.composite
def part(draw: st.DrawFn, newline: bytes, depth: int) -> bytes:
    """A leaf, or a multipart whose boundary may be missing, unused, unclosed or lying."""
    if depth <= 0 or draw(st.integers(0, 2)) == 0:
        return draw(leaf_part(newline))
    subtype = draw(st.sampled_from([b"mixed", b"alternative", b"related", b"signed", b"report", b"x-weird"]))
    boundary = draw(st.sampled_from([b"b1", b"=_b=2", b"", b" spaced ", b"a" * 80, b"--"]))
    header = b"Content-Type: multipart/" + subtype
    style = draw(st.sampled_from(["normal", "no-boundary-param", "unclosed", "unused", "nested-same"]))
    if style != "no-boundary-param":
        header += b'; boundary="' + boundary + b'"'
    children = draw(st.lists(part(newline, depth - 1), min_size=0, max_size=3))
    used = b"other" if style == "unused" else boundary
    lines = [header, b"", b"preamble"]
    for child in children:
        lines += [b"--" + used, child]
    if style != "unclosed":
        lines.append(b"--" + used + b"--")
    lines.append(b"epilogue")
    return newline.join(lines)


def deep_nesting(newline: bytes, depth: int) -> bytes:
    """``depth`` multiparts inside each other, a text part at the bottom."""
    opening = b"".join(b"Content-Type: multipart/mixed; boundary=\"d%d\"%s%s--d%d%s" % (i, newline, newline, i, newline)
                       for i in range(depth))
    closing = b"".join(b"%s--d%d--%s" % (newline, i, newline) for i in reversed(range(depth)))
    return opening + b"Content-Type: text/plain" + newline * 2 + b"bottom" + closing


@st.composite
def hostile_message(draw: st.DrawFn, extra_headers: tuple[bytes, ...] = ()) -> bytes:
    """One whole hostile message. ``extra_headers`` (whole lines, no line end) are put first,
    untouched, for a test's own markers."""
    newline = draw(st.sampled_from([b"\r\n", b"\n"]))
    headers = draw(header_block())
    if draw(st.integers(0, 9)) == 0:
        body = deep_nesting(newline, draw(st.integers(10, 400)))
    else:
        body = draw(part(newline, depth=draw(st.integers(0, 4))))
    message = newline.join(headers) + newline + body
    if draw(st.integers(0, 4)) == 0:  # line ends gone wrong: a CR alone, a stray NUL, a LF alone
        position = draw(st.integers(0, len(message)))
        message = message[:position] + draw(st.sampled_from([b"\r", b"\x00", b"\n", b"\r\r\n"])) + message[position:]
    return b"".join(line + newline for line in extra_headers) + message
