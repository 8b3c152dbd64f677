"""The duplicate rule's identity of a message: its whole content below the trace headers (docs/mail.md#threading)."""

from __future__ import annotations

from email.message import EmailMessage

from maild.core import threader
from maild.core.parse import content_fingerprint, parse_message
from maild.mail import Envelope


def scan(subject: str, pdf: bytes, body: str = "Skannattu asiakirja.") -> bytes:
    """What a scanner sends: no Message-ID, the same sender, date and text every time."""
    msg = EmailMessage()
    msg["From"] = "scanner@toimisto.fi"
    msg["To"] = "jasenpalvelu@liitto.fi"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 24 Nov 2026 10:00:00 +0200"
    msg.set_content(body)
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="scan.pdf")
    msg.set_boundary("scanner-boundary")  # a scanner's boundary does not change
    return bytes(msg)


def test_different_subject_or_attachment_is_different_content() -> None:
    first = scan("Jäsenhakemus", b"%PDF-1.4 one")
    assert content_fingerprint(first) != content_fingerprint(scan("Eroilmoitus", b"%PDF-1.4 one"))
    assert content_fingerprint(first) != content_fingerprint(scan("Jäsenhakemus", b"%PDF-1.4 two"))
    assert content_fingerprint(first) == content_fingerprint(scan("Jäsenhakemus", b"%PDF-1.4 one"))


def test_line_ends_trace_headers_and_refolding_do_not_matter() -> None:
    raw = scan("Jäsenhakemus", b"%PDF-1.4 one").replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
    as_lf = raw.replace(b"\r\n", b"\n")
    traced = (
        b"Return-Path: <scanner@toimisto.fi>\nDelivered-To: jasenpalvelu@liitto.fi\nX-Original-To: j@liitto.fi\n"
        b"Received: from mx by imap;\n\tTue, 24 Nov 2026 10:00:01 +0200\nAuthentication-Results: mx; dkim=pass\n"
        b"DKIM-Signature: v=1; a=rsa-sha256; b=abc\n" + as_lf
    )
    refolded = raw.replace(b"To: jasenpalvelu@liitto.fi", b"To:\r\n  jasenpalvelu@liitto.fi")
    assert len({content_fingerprint(r) for r in (raw, as_lf, traced, traced.rstrip(b"\n") + b"\n\n", refolded)}) == 1


def test_stamps_of_hosted_mailboxes_do_not_matter() -> None:
    """The same mail fetched from two Microsoft 365 mailboxes (it was sent to two queues)."""
    raw = scan("Jäsenhakemus", b"%PDF-1.4 one")
    stamps = [
        b"X-MS-Exchange-Organization-Network-Message-Id: 1111\nX-MS-Exchange-CrossTenant-id: aaa\n"
        b"ARC-Seal: i=1; a=rsa-sha256; s=arcselector; cv=none; b=xyz\nX-Forefront-Antispam-Report: CIP:1.2.3.4\n"
        b"X-Microsoft-Antispam: BCL:0;\nReceived-SPF: Pass (protection.outlook.com)\n",
        b"X-MS-Exchange-Organization-Network-Message-Id: 2222\nX-MS-Exchange-CrossTenant-id: bbb\n"
        b"ARC-Seal: i=1; a=rsa-sha256; s=other; cv=none; b=uvw\nX-Spam-Status: No\nX-Received: by 10.0.0.1\n",
    ]
    assert len({content_fingerprint(stamp + raw) for stamp in stamps} | {content_fingerprint(raw)}) == 1


def test_any_other_header_counts() -> None:
    raw = scan("Jäsenhakemus", b"%PDF-1.4 one")
    assert content_fingerprint(raw) != content_fingerprint(b"X-Mailer: other\n" + raw)
    assert content_fingerprint(raw) != content_fingerprint(raw.replace(b"scanner@", b"skanneri@"))


def test_fingerprints_are_marked_new_and_fit_the_column() -> None:
    fingerprint = content_fingerprint(scan("a", b"b"))
    assert fingerprint.startswith("v2:") and len(fingerprint) == 64


def test_without_message_id_only_the_new_fingerprint_can_match() -> None:
    parsed, _ = parse_message(scan("Jäsenhakemus", b"%PDF-1.4 one"))
    keys = threader.keys(parsed, Envelope("smtp"), "JP", frozenset())
    assert keys.message_id is None and keys.fingerprint == parsed.fingerprint
    # an old row of the same sender, date and body (the old fingerprint) is no duplicate without a Message-ID
    assert threader.choose(keys, threader.Found(same_message_id=(keys.legacy_fingerprint,))).action == "new"
    assert threader.choose(keys, threader.Found(same_message_id=(keys.fingerprint,))).action == "duplicate"


def test_an_old_row_with_the_same_message_id_still_counts() -> None:
    parsed, _ = parse_message(b"Message-ID: <m@x>\nFrom: a@x.fi\nSubject: s\n\nb\n")
    keys = threader.keys(parsed, Envelope("smtp"), "JP", frozenset())
    assert threader.choose(keys, threader.Found(same_message_id=(keys.legacy_fingerprint,))).action == "duplicate"
    assert threader.choose(keys, threader.Found(same_message_id=("v2:other",))).collision


def test_line_ends_straddling_chunks_and_messages_without_body() -> None:
    from maild.core import parse

    body = b"x" * (parse._CHUNK - 1) + b"\r\n" + b"y\r\n" * 10 + b"\r\n\r\n"
    raw = b"From: a@x.fi\r\nSubject: iso\r\n\r\n" + body
    assert content_fingerprint(raw) == content_fingerprint(raw.replace(b"\r\n", b"\n"))
    assert content_fingerprint(raw) != content_fingerprint(raw.replace(b"y", b"z"))
    assert content_fingerprint(b"From: a@x.fi\r\n") == content_fingerprint(b"From: a@x.fi\n\n")
    assert content_fingerprint(b"From: a@x.fi\r\n\r\nb\rc") == content_fingerprint(b"From: a@x.fi\n\nb\nc\n")
