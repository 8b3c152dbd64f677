"""Staff proof by Authentication-Results: only the topmost header of a trusted server counts,
read as RFC 8601 syntax (a result in a comment or a quoted string is text)."""

from __future__ import annotations

import time

import pytest

from maild.core.authres import MAX_HEADER_CHARS, proves_sender
from maild.core.parse import parse_message
from tests.mailgen import mail

TRUSTED = frozenset({"mx.liitto.fi"})
PASS = "mx.liitto.fi; spf=pass smtp.mailfrom=liitto.fi; dkim=pass header.d=liitto.fi; dmarc=pass header.from=liitto.fi"
GMAIL = ("mx.liitto.fi; dkim=pass header.i=@liitto.fi header.s=google header.b=Xyz0+/ab;"
         " spf=pass (mx.liitto.fi: domain of maija@liitto.fi designates 192.0.2.1 as permitted sender)"
         " smtp.mailfrom=maija@liitto.fi; dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=liitto.fi")
M365 = ("mx.liitto.fi; spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=liitto.fi; dkim=pass (signature was"
        " verified) header.d=liitto.fi;dmarc=pass action=none header.from=liitto.fi;compauth=pass reason=100")


@pytest.mark.parametrize(
    ("headers", "proven"),
    [
        ((PASS,), True),
        ((GMAIL,), True),
        ((M365,), True),  # Microsoft's `action=none` is not RFC 8601 syntax; the rest is read
        (("mx.liitto.fi; dmarc=pass (p=reject) header.from=liitto.fi",), True),
        (("mx.liitto.fi; dkim=pass header.i=@liitto.fi; dmarc=none",), True),
        (("mx.liitto.fi; dkim=pass header.i=maija@liitto.fi",), True),
        (("mx.liitto.fi; dmarc=fail header.from=liitto.fi",), False),
        (("mx.liitto.fi; dmarc=pass",), False),  # no header.from: for which domain?
        (("mx.liitto.fi; dmarc=pass header.from=evil.example",), False),
        (("mx.liitto.fi; dmarc=pass header.from=mail.liitto.fi",), False),  # DMARC's From is exact
        (("mx.liitto.fi; dkim=pass header.d=mail.liitto.fi",), False),  # signer more specific than From
        (("mx.liitto.fi; dkim=pass header.d=evilliitto.fi",), False),  # a suffix, not a parent domain
        (("mx.liitto.fi; dkim=pass header.d=liitto.fi header.i=@evil.example",), False),  # every domain must align
        (("mx.liitto.fi; dkim=pass header.s=sel",), False),  # no signing domain
        (("mx.liitto.fi; dkim=pass header.d=evil.example; dmarc=fail header.from=liitto.fi",), False),
        (("mx.liitto.fi; none",), False),
        # comments and quoted strings are text, not results (the regex parser believed them)
        (("mx.liitto.fi; dkim=fail (dkim=pass header.d=liitto.fi) header.d=evil.example",), False),
        (("mx.liitto.fi; dkim=fail (dkim=pass header.d=liitto.fi)",), False),
        (("mx.liitto.fi; dkim=fail (bad signature; dkim=pass header.d=liitto.fi )",), False),
        (("mx.liitto.fi; spf=fail (dkim=pass header.d=liitto.fi ) smtp.mailfrom=evil.example",), False),
        (("mx.liitto.fi; spf=fail smtp.helo=\"dkim=pass header.d=liitto.fi\"",), False),
        (("mx.liitto.fi; auth=fail smtp.auth=\"x;dmarc=pass header.from=liitto.fi\"",), False),
        (("mx.liitto.fi; dmarc=fail (; dmarc=pass header.from=liitto.fi) header.from=liitto.fi",), False),
        (("mx.liitto.fi; dkim=fail header.b=\"x; dkim=pass header.d=liitto.fi\" header.d=evil.example",), False),
        (("mx.liitto.fi; spf=pass (nested (comment; dmarc=pass header.from=liitto.fi)) smtp.mailfrom=x",), False),
        (("mx.liitto.fi (dmarc=pass header.from=liitto.fi); spf=none",), False),
        (("mx.liitto.fi; dkim=fail reason=\"dkim=pass header.d=liitto.fi\" header.d=evil.example",), False),
        # unparseable: proves nothing, and nothing below it is read
        (("mx.liitto.fi; dkim=fail (unclosed dkim=pass header.d=liitto.fi",), False),
        (("mx.liitto.fi; dkim=fail (\u00e4; dkim=pass header.d=liitto.fi) header.d=x",), False),
        (("mx.liitto.fi; dkim=pass header.d=liitto.fi ]garbage[",), False),
        (("mx.liitto.fi dkim=pass header.d=liitto.fi",), False),
        (("", PASS), False),
        (("mx.liitto.fi; dkim=fail (broken", PASS), False),  # perhaps our MTA's own, above a forged one
        (("evil.example; dkim=pass (broken", PASS), False),
        # several headers: the topmost trusted one decides
        (("mx.liitto.fi; dmarc=fail header.from=liitto.fi", PASS), False),  # a forged pass below the real one
        ((PASS, "mx.liitto.fi; dmarc=fail header.from=liitto.fi"), True),
        (("evil.example; dmarc=pass header.from=liitto.fi",), False),  # untrusted server
        (("evil.example; dmarc=pass header.from=liitto.fi", "mx.liitto.fi; dmarc=fail header.from=liitto.fi"), False),
        (("relay.liitto.fi; spf=none", PASS), True),  # an untrusted later hop above ours is passed over
        (("relay.liitto.fi; spf=none smtp.mailfrom=x (lenient", PASS), True),  # read leniently: still not ours
        (("mx.liitto.fi.evil.example; dmarc=pass header.from=liitto.fi",), False),
        # case and folding, as RFC 8601 allows
        (("MX.Liitto.FI; DMARC=PASS Header.From=LIITTO.FI",), True),
        (("mx.liitto.fi;\r\n\tdkim=pass\r\n header.d=liitto.fi",), True),
        (("mx.liitto.fi 1; dmarc=pass header.from=liitto.fi",), True),  # with a version
        (("mx.liitto.fi; dkim = pass header . d = liitto.fi",), True),
        ((), False),
    ],
)
def test_proves_sender(headers: tuple[str, ...], proven: bool) -> None:
    assert proves_sender(headers, TRUSTED, "liitto.fi") is proven


def test_a_parent_signing_domain_proves_a_subdomain_sender() -> None:
    assert proves_sender(("mx.liitto.fi; dkim=pass header.d=liitto.fi",), TRUSTED, "mail.liitto.fi")
    assert not proves_sender(("mx.liitto.fi; dkim=pass header.d=liitto.fi",), TRUSTED, "")


def test_encoded_words_are_not_decoded_into_results() -> None:
    """RFC 2047 decoding would turn the failing signature's domain into a second, passing result."""
    forged = "mx.liitto.fi; dkim=fail header.d==?utf-8?q?x=3B_dkim=3Dpass_header.d=3Dliitto.fi?="
    comment = "mx.liitto.fi; spf=pass (=?utf-8?q?x=29=3B_dkim=3Dpass_header.d=3Dliitto.fi_=28?=) smtp.mailfrom=x"
    for header in (forged, comment):
        raw = f"Authentication-Results: {header}\r\n".encode() + mail(sender="maija@liitto.fi")
        parsed, _ = parse_message(raw)
        assert parsed.authentication_results == (header,)
        assert not proves_sender(parsed.authentication_results, TRUSTED, "liitto.fi")


def test_headers_are_read_in_message_order_and_unfolded() -> None:
    raw = (b"Authentication-Results: relay.liitto.fi; none\r\n"
           b"Authentication-Results: mx.liitto.fi;\r\n\tdkim=pass header.d=liitto.fi\r\n" + mail(sender="maija@liitto.fi"))
    parsed, _ = parse_message(raw)
    assert parsed.authentication_results == ("relay.liitto.fi; none", "mx.liitto.fi;\tdkim=pass header.d=liitto.fi")
    assert proves_sender(parsed.authentication_results, TRUSTED, "liitto.fi")


def test_hostile_headers_take_bounded_time() -> None:
    """The parser is quadratic in a header's length: long headers are refused, not read."""
    long_pass = "mx.liitto.fi; " + "spf=none (x); " * 2000 + "dkim=pass header.d=liitto.fi"
    assert len(long_pass) > MAX_HEADER_CHARS
    nested = "mx.liitto.fi; spf=pass " + "(" * 3000 + ")" * 3000 + "; dkim=pass header.d=liitto.fi"
    many = ("evil.example; " + "spf=none (x); " * 280 + "dkim=pass header.d=liitto.fi",) * 1000 + (PASS,)
    started = time.monotonic()
    assert not proves_sender((long_pass,), TRUSTED, "liitto.fi")
    assert not proves_sender((nested,), TRUSTED, "liitto.fi")
    assert not proves_sender(many, TRUSTED, "liitto.fi")  # a trusted header is not below a thousand others
    assert time.monotonic() - started < 5
