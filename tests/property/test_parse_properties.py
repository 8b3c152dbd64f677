"""Any bytes, however hostile: ``parse_message`` returns a clean ``Parsed`` or raises ParseError."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from maild.core.parse import ParseError, parse_message
from maild.mail import Parsed
from tests.fuzz.invariants import check_addresses, check_strings
from tests.hostile import examples, hostile_message

# Found by tests/fuzz/fuzz_parse.py; each raised something other than ParseError, or let a NUL through.
NUL_IN_CONTENT_TYPE = b"From: a@x.fi\nContent-Type: \x01\x00\x00\x00ipart/form-data\n\n\x89PNG\n"
NUL_IN_CHARSET = b'From: a@x.fi\nContent-Type: text/plain; charset="us-asci\x00i"\n\nbody\n'
EIGHT_BIT_IN_NESTED_MESSAGE = (  # a multipart without parts inside an attached message
    b"From: a@x.fi\nContent-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: message/rfc822\n\n"
    b"Content-Type: multipart/mixed; boundary=i\n\n8-bit \xd0\xce\xbc\xc1 in a part without parts\n--o--\n"
)
VT_IN_ATTACHED_HEADER = (  # the stdlib takes the VT for a line break and refuses to write the header back
    b"From: a@x.fi\nContent-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: message/rfc822\n\n"
    b"Received: (qmail 1 invoked from network); Fri, 29 Jun 2001 22:1\x0b\x0b7:24 +0000\nFrom: b@x.fi\n\nbody\n--o--\n"
)

EIGHT_BIT_IN_ATTACHED_REPORT = (  # the stdlib re-encodes the text part to us-ascii and fails
    b"From: a@x.fi\nContent-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: message/rfc822\n\n"
    b"Content-Type: multipart/digest; boundary=d\n\n--d\nContent-Type: message/delivery-status\n\n"
    b"Content-Type: multipart/mixed;\n9\x00\x00X-BeenThere: a@x.fi\nReturn-Path: x\xb5\xb5\xb5 list\n"
    b"--d\nContent-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: text/plain; charset=\"us-ascii\"\n"
    b"original B\x00\x00\xff\xffe.\n--o--\n"
)

RFC2231_CHARSET_IN_BROKEN_MULTIPART = (  # no boundary: a text payload, whose charset*= the stdlib cannot use
    b"From: a@x.fi\nContent-Type: multipart/signed; micalg*=ansi-x3.4-1968''pgp-md5;\n"
    b"\tboundary/plain; charset*=ansi-x3.4-1968''us-ascii\n\n--E quoted \x97\x8e table\n"
)


def parse_or_none(raw: bytes) -> Parsed | None:
    try:
        return parse_message(raw)[0]
    except ParseError:
        return None


@settings(max_examples=examples(100))
@given(st.one_of(hostile_message(), st.binary(max_size=2000)))
@example(NUL_IN_CONTENT_TYPE)
@example(NUL_IN_CHARSET)
@example(EIGHT_BIT_IN_NESTED_MESSAGE)
@example(VT_IN_ATTACHED_HEADER)
@example(EIGHT_BIT_IN_ATTACHED_REPORT)
@example(RFC2231_CHARSET_IN_BROKEN_MULTIPART)
def test_parse_returns_clean_parsed_or_parse_error(raw: bytes) -> None:
    parsed = parse_or_none(raw)
    if parsed is not None:
        check_strings(parsed)


@pytest.mark.parametrize("raw", [NUL_IN_CONTENT_TYPE, NUL_IN_CHARSET, EIGHT_BIT_IN_NESTED_MESSAGE,
                                 VT_IN_ATTACHED_HEADER, EIGHT_BIT_IN_ATTACHED_REPORT,
                                 RFC2231_CHARSET_IN_BROKEN_MULTIPART])
def test_fuzz_findings_parse_with_their_parts(raw: bytes) -> None:
    """What the fuzzer found is read, not given up: the attachment or text part is there."""
    parsed = parse_or_none(raw)
    assert parsed is not None and parsed.from_addr == "a@x.fi"
    assert parsed.attachments or parsed.text
    check_strings(parsed)


@settings(max_examples=examples(100))
@given(hostile_message())
@example(b"From: a b@x.fi\r\nTo: jasenpalvelu@liitto.fi\r\n\r\nbody\r\n")
@example(b"From: =?utf-8?q?Eve=0D=0ABcc:_evil2@x.fi?= <eve@example.fi>\r\n\r\nbody\r\n")
@example(b"From: eve@example.fi\r\nCc: a@x.fi\x0b@y.fi\r\n\r\nbody\r\n")
def test_parsed_addresses_are_plain_addr_specs(raw: bytes) -> None:
    parsed = parse_or_none(raw)
    if parsed is not None:
        check_addresses(parsed)
