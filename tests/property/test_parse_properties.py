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
EIGHT_BIT_IN_NESTED_MESSAGE = (
    b"From: a@x.fi\nContent-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: message/rfc822\n\n"
    b"From: b@x.fi\nContent-Type: multipart/mixed; boundary=i\n\n--i\nContent-Type: message/rfc822\n\n"
    b"From: c@x.fi\nDate: Thu, 7\x84\x84 Apr 2011 17:22:04 -0500\nSubject: s\n\nbody\n--i--\n--o--\n"
)


def parse_or_none(raw: bytes) -> Parsed | None:
    try:
        return parse_message(raw)[0]
    except ParseError:
        return None


@settings(max_examples=examples(150))
@given(st.one_of(hostile_message(), st.binary(max_size=2000)))
@example(NUL_IN_CONTENT_TYPE)
@example(NUL_IN_CHARSET)
@example(EIGHT_BIT_IN_NESTED_MESSAGE)
def test_parse_returns_clean_parsed_or_parse_error(raw: bytes) -> None:
    parsed = parse_or_none(raw)
    if parsed is not None:
        check_strings(parsed)


@pytest.mark.parametrize("raw", [NUL_IN_CONTENT_TYPE, NUL_IN_CHARSET, EIGHT_BIT_IN_NESTED_MESSAGE])
def test_fuzz_findings_parse_with_their_parts(raw: bytes) -> None:
    """What the fuzzer found is read, not given up: the attachment or text part is there."""
    parsed = parse_or_none(raw)
    assert parsed is not None and parsed.from_addr == "a@x.fi"
    assert parsed.attachments or parsed.text


@pytest.mark.xfail(strict=False, reason="issue 11 items 2 and 6: addresses read with whitespace or control "
                   "characters in them (From: a b@x.fi gives 'a b@x.fi')")
@settings(max_examples=examples(150))
@given(hostile_message())
def test_parsed_addresses_are_plain_addr_specs(raw: bytes) -> None:
    parsed = parse_or_none(raw)
    if parsed is not None:
        check_addresses(parsed)
