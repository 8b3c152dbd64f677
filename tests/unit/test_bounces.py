"""What a bounce says (docs/mail.md#bounces): every real bounce in tests/corpus names a failed recipient,
apart from the documented exceptions; no human mail is read as a bounce; VERP round-trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from maild.core.bounces import (
    Bounce,
    heuristic_failures,
    original_message_id,
    parse_bounce,
    verp_address,
    verp_token,
)
from maild.core.classify import classify
from maild.core.parse import parse_message
from maild.mail import Envelope
from tests.unit._parsed import stdlib_parse

CORPUS = Path(__file__).resolve().parent.parent / "corpus"

# Real bounces that name no recipient that can be read, and why.
NO_RECIPIENT = {
    "ndr_returned_message_no_recipient.eml": "the NDR only says 'one or more of the recipients are "
    "not a valid user'; the attached original's To is a bare group name, and the failed address "
    "shows only in a Received line (original_message_id() still finds the bounced message)",
    "sendmail_dsn_truncated_boundary.eml": "the boundary parameter is cut off ('bo'), so no MIME "
    "part of the report can be found",
}


def _bounce(path: Path) -> Bounce | None:
    return parse_bounce(parse_message(path.read_bytes())[1])


def _files(folder: str) -> list[Path]:
    return sorted((CORPUS / folder).glob("*.eml"))


@pytest.mark.parametrize(
    "path", [p for p in _files("bounces") if p.name not in NO_RECIPIENT], ids=lambda p: p.name
)
def test_corpus_bounce_names_its_failed_recipients(path: Path) -> None:
    bounce = _bounce(path)
    assert bounce is not None and bounce.recipients
    assert all(r == r.lower() and "@" in r for r in bounce.recipients)
    assert bounce.action in ("failed", "delayed")
    assert bounce.permanent == (bounce.action == "failed" and not (bounce.status or "5").startswith("4"))


@pytest.mark.parametrize("name", sorted(NO_RECIPIENT))
def test_documented_bounces_without_a_readable_recipient(name: str) -> None:
    assert _bounce(CORPUS / "bounces" / name) is None


def test_original_message_id_is_found_even_without_a_recipient() -> None:
    message = parse_message((CORPUS / "bounces/ndr_returned_message_no_recipient.eml").read_bytes())[1]
    assert original_message_id(message) == "ea184277-2081-cdae-1478-0639bb427e8c@our-domain.de"


FACTS: dict[str, dict[str, Any]] = {
    "postfix_dsn_550.eml": {
        "recipients": ("anne.person@dom.ain",), "status": "5.0.0", "action": "failed", "permanent": True,
        "original_message_id": "200210211625.12753.b.a.dude@example.com",
    },
    "dsn_delayed_atlas_cz.eml": {
        "recipients": ("userx@example.cz",), "status": "4.4.1", "action": "delayed", "permanent": False,
        "original_message_id": "pfchbtkf3j0p7prf0sp45vi21fro3bs7ad@4ax.com",
    },
    "mailsite_quota_malformed_dsn.eml": {  # the MTA gave up, but a full mailbox is no bad address
        "recipients": ("abh@netpar.com.br",), "status": "4.2.2", "action": "failed", "permanent": False,
        "original_message_id": "004801d1fc84$01c934ac$b247f0b7$@infospacemail.com",
    },
    "sendmail_dsn_crlf_docomo.eml": {
        "recipients": ("azumakuniyuki@ntt.docomo.example.ne.jp",), "status": "5.2.0", "permanent": True,
        "diagnostic": "550 Unknown user azumakuniyuki@ntt.docomo.example.ne.jp",
        "original_message_id": "202211010823.2A18N1ql028769@nijo.example.jp",
    },
    "netscape_messaging_server_dsn.eml": {"recipients": ("aaaaa@corel.com", "bbbbb@corel.com")},
    "exim_unknown_user_plain.eml": {  # no DSN: flufl.bounce heuristics, id from the quoted copy
        "recipients": ("userx@its.example.nl",), "status": "5.1.1", "action": "failed",
        "original_message_id": "19990920022322.A19735@stereo.rotzorg.org",
    },
    "sendmail_over_quota_auto_submitted.eml": {
        "recipients": ("cn06ajt@mailgrp1.leeds.ac.uk",), "status": "5.2.2",
        "original_message_id": "20100406233824.78950B58223@server2.dianomi.co.uk",
    },
    "gmail_delivery_status_delay.eml": {"action": "delayed", "permanent": False},
    "yahoo_dsn_5_1_1.eml": {"recipients": ("bogus-address@example.net",), "status": "5.1.1"},
}


@pytest.mark.parametrize("name", sorted(FACTS))
def test_bounce_facts(name: str) -> None:
    bounce = _bounce(CORPUS / "bounces" / name)
    assert bounce is not None
    assert {field: getattr(bounce, field) for field in FACTS[name]} == FACTS[name]


@pytest.mark.parametrize(
    "path", _files("normal") + _files("auto_replies") + _files("lists"), ids=lambda p: p.parent.name + "/" + p.name
)
def test_no_human_or_automatic_reply_reads_as_a_bounce(path: Path) -> None:
    assert _bounce(path) is None


@pytest.mark.parametrize("path", _files("broken"), ids=lambda p: p.name)
def test_broken_mail_never_breaks_bounce_parsing(path: Path) -> None:
    _, message = stdlib_parse(path.read_bytes())
    parse_bounce(message)
    heuristic_failures(message)


def dsn(per_recipient: str, extra_part: str = "") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.fi\r\nTo: bounces+T1@liitto.fi\r\nSubject: Delivery Status Notification\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nReport.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.fi\r\n\r\n"
        f"{per_recipient}\r\n{extra_part}--b--\r\n"
    ).encode()


def test_original_recipient_is_preferred_over_the_rewritten_final_one() -> None:
    raw = dsn("Original-Recipient: rfc822;Matti@Example.fi\r\nFinal-Recipient: rfc822; <matti.m@mbox.example.fi>\r\n"
              "Action: failed\r\nStatus: 5.1.1 (bad destination mailbox address)\r\n"
              "Diagnostic-Code: smtp; 550 5.1.1 <matti.m@mbox.example.fi>:\r\n  Recipient address rejected\r\n")
    bounce = parse_bounce(parse_message(raw)[1])
    assert bounce == Bounce(
        recipients=("matti@example.fi",), status="5.1.1", action="failed", permanent=True,
        diagnostic="550 5.1.1 <matti.m@mbox.example.fi>: Recipient address rejected", original_message_id=None,
    )


def test_failed_recipients_win_over_delayed_ones_and_are_listed_once() -> None:
    raw = dsn("Final-Recipient: rfc822; a@example.fi\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n"
              "Final-Recipient: rfc822; b@example.fi\r\nAction: failed\r\nStatus: 5.2.1\r\n\r\n"
              "Final-Recipient: rfc822; b@example.fi\r\nAction: failed\r\nStatus: 5.2.1\r\n")
    bounce = parse_bounce(parse_message(raw)[1])
    assert bounce is not None and (bounce.recipients, bounce.action) == (("b@example.fi",), "failed")


def test_success_notification_is_a_bounce_to_classify_but_names_no_failure() -> None:
    raw = dsn("Final-Recipient: rfc822; a@example.fi\r\nAction: delivered\r\nStatus: 2.0.0\r\n")
    parsed, message = parse_message(raw)
    assert classify(parsed, Envelope(source="smtp", mail_from=""), message, frozenset()).kind == "bounce"
    assert parse_bounce(message) is None


def test_original_message_id_from_text_rfc822_headers() -> None:
    headers = "--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: jasenpalvelu@liitto.fi\r\nMessage-ID: <ack-17@liitto.fi>\r\n\r\n"
    raw = dsn("Final-Recipient: rfc822; a@example.fi\r\nAction: failed\r\nStatus: 5.1.1\r\n", headers)
    bounce = parse_bounce(parse_message(raw)[1])
    assert bounce is not None and bounce.original_message_id == "ack-17@liitto.fi"


@pytest.mark.parametrize(
    ("address", "prefix", "token"),
    [
        ("bounces+a1B2c3@liitto.fi", "bounces", "a1B2c3"),
        ("<Bounces+a1B2c3@LIITTO.fi>", "bounces", "a1B2c3"),
        ("BOUNCES+t.1=x@liitto.fi", "bounces", "t.1=x"),
        ("palautukset+abc@liitto.fi", "palautukset", "abc"),
        ("bounces@liitto.fi", "bounces", None),
        ("bounces+@liitto.fi", "bounces", None),
        ("jasenpalvelu+abc@liitto.fi", "bounces", None),
        ("not an address", "bounces", None),
    ],
)
def test_verp_token(address: str, prefix: str, token: str | None) -> None:
    assert verp_token(address, prefix) == token


def test_verp_address_round_trips() -> None:
    address = verp_address("tk-42.x", "liitto.fi")
    assert address == "bounces+tk-42.x@liitto.fi"
    assert verp_token(address) == "tk-42.x"
    assert verp_token(verp_address("abc", "liitto.fi", local_prefix="palautukset"), "palautukset") == "abc"


@pytest.mark.parametrize("token", ["", "a@b", "a b", "a+b", "ä"])
def test_verp_address_refuses_tokens_that_are_not_plain_atoms(token: str) -> None:
    with pytest.raises(ValueError):
        verp_address(token, "liitto.fi")
