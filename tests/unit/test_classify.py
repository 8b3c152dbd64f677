"""Who wrote it (docs/mail.md#machines, 4.4): every real message in tests/corpus is classified as its
folder says, apart from the documented exceptions below, and the header rules hold one by one."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any, get_args

import pytest

from maild.core.classify import CHECKS, LOOP_HEADER, classify, machine_address
from maild.core.parse import parse_message
from maild.mail import Envelope, MachineKind, Verdict
from tests.unit._parsed import stdlib_parse

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
OWN_ADDRESSES = frozenset({"jasenpalvelu@liitto.fi", "Tyottomyyskassa@Liitto.fi"})
IMAP = Envelope(source="imap")  # no envelope sender known: Return-Path stands in for it

FOLDER_KINDS: dict[str, MachineKind] = {
    "bounces": "bounce",
    "auto_replies": "auto_reply",
    "lists": "list",
    "normal": "normal",
}
MINIMUM_FILES = {"bounces": 25, "auto_replies": 12, "lists": 4, "normal": 10, "broken": 10}

# Real messages whose verdict differs from their folder on purpose. Keep the reason honest.
EXCEPTIONS: dict[str, tuple[MachineKind, str]] = {
    "bounces/socgen_reply_style_bounce.eml": (
        "normal",
        "a bounce written as 'RE: ...' from an ordinary address with a non-null Return-Path and "
        "no report structure: only its prose says bounce, and prose alone never decides",
    ),
}


def _corpus_cases() -> list[Any]:
    cases = []
    for folder, kind in FOLDER_KINDS.items():
        for path in sorted((CORPUS / folder).glob("*.eml")):
            name = f"{folder}/{path.name}"
            cases.append(pytest.param(path, EXCEPTIONS.get(name, (kind, ""))[0], id=name))
    return cases


@pytest.mark.parametrize(("path", "expected"), _corpus_cases())
def test_corpus_message_is_classified_as_its_folder(path: Path, expected: MachineKind) -> None:
    parsed, message = parse_message(path.read_bytes())
    verdict = classify(parsed, IMAP, message, OWN_ADDRESSES)
    assert verdict.kind == expected, verdict.reason
    assert bool(verdict.reason) == verdict.is_machine


@pytest.mark.parametrize("folder", sorted(MINIMUM_FILES))
def test_corpus_folder_is_large_enough(folder: str) -> None:
    assert len(list((CORPUS / folder).glob("*.eml"))) >= MINIMUM_FILES[folder]


def test_every_exception_names_a_corpus_file() -> None:
    assert all((CORPUS / name).is_file() for name in EXCEPTIONS)


@pytest.mark.parametrize("path", sorted((CORPUS / "broken").glob("*.eml")), ids=lambda p: p.name)
def test_broken_mail_is_classified_without_error(path: Path) -> None:
    parsed, message = stdlib_parse(path.read_bytes())
    assert classify(parsed, IMAP, message, OWN_ADDRESSES).kind in get_args(MachineKind)


def test_stage_order_is_loop_bounce_declared_auto_reply_list_sender_name() -> None:
    kinds = [kind for kind, _ in itertools.groupby(check.kind for check in CHECKS)]
    assert kinds == ["loop", "bounce", "auto_reply", "list", "auto_reply"]


def verdict(
    headers: Sequence[str] = (),
    subject: str = "Jäsenmaksu",
    sender: str = "Matti Meikäläinen <matti@example.fi>",
    mail_from: str | None = None,
    body: str = "Hei, jäsenmaksuni on maksettu kahdesti.",
) -> Verdict:
    """Classify a small hand-written message with the given extra header lines."""
    head = [f"From: {sender}", "To: jasenpalvelu@liitto.fi", f"Subject: {subject}",
            "Message-ID: <a1@example.fi>", "Content-Type: text/plain; charset=utf-8", *headers]
    raw = ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()
    parsed, message = parse_message(raw)
    envelope = Envelope(source="smtp", mail_from=mail_from) if mail_from is not None else IMAP
    return classify(parsed, envelope, message, OWN_ADDRESSES)


HEADER_CASES = [
    ("member mail", {}, "normal"),
    ("Auto-Submitted: no", {"headers": ["Auto-Submitted: no"]}, "normal"),
    ("Auto-Submitted: auto-generated", {"headers": ["Auto-Submitted: auto-generated"]}, "auto_reply"),
    ("auto-replied with comment", {"headers": ["Auto-Submitted: auto-replied (vacation)"]}, "auto_reply"),
    ("null sender in the envelope", {"mail_from": ""}, "auto_reply"),
    ("null Return-Path, envelope unknown", {"headers": ["Return-Path: <>"]}, "auto_reply"),
    ("SMTP envelope wins over a stale Return-Path",
     {"headers": ["Return-Path: <>"], "mail_from": "matti@example.fi"}, "normal"),
    ("noreply@", {"sender": "Kela <noreply@kela.fi>"}, "auto_reply"),
    ("no-reply@", {"sender": "no-reply@example.com"}, "auto_reply"),
    ("do-not-reply@", {"sender": "do-not-reply@example.com"}, "auto_reply"),
    ("donotreply@", {"sender": "DoNotReply@example.com"}, "auto_reply"),
    ("a name that starts with no", {"sender": "norberto@example.com"}, "normal"),
    ("MAILER-DAEMON writing no bounce", {"sender": "MAILER-DAEMON@example.fi", "subject": "Hei"}, "auto_reply"),
    ("postmaster writing by hand", {"sender": "postmaster@example.fi", "subject": "Kysymys"}, "auto_reply"),
    ("postmaster as envelope sender", {"mail_from": "postmaster@example.fi"}, "auto_reply"),
    ("our own queue address", {"sender": "jasenpalvelu@liitto.fi"}, "loop"),
    ("our own address, plus tag and other case", {"sender": "Jasenpalvelu+T0K3N@LIITTO.fi"}, "loop"),
    ("own address given in mixed case", {"sender": "tyottomyyskassa@liitto.fi"}, "loop"),
    ("another maild's mail", {"headers": [f"{LOOP_HEADER}: jasenasiat@toinenliitto.fi"]}, "loop"),
    ("loop before auto-reply", {"sender": "jasenpalvelu@liitto.fi", "headers": ["Auto-Submitted: auto-replied"]},
     "loop"),
    ("X-Auto-Response-Suppress: OOF", {"headers": ["X-Auto-Response-Suppress: OOF"]}, "auto_reply"),
    ("X-Auto-Response-Suppress: All", {"headers": ["X-Auto-Response-Suppress: All"]}, "auto_reply"),
    ("X-Auto-Response-Suppress without auto-replies", {"headers": ["X-Auto-Response-Suppress: DR, RN, NRN"]},
     "normal"),
    ("X-Autoreply: yes", {"headers": ["X-Autoreply: yes"]}, "auto_reply"),
    ("X-Autorespond", {"headers": ["X-Autorespond: vacation"]}, "auto_reply"),
    ("X-Autoreply: no", {"headers": ["X-Autoreply: no"]}, "normal"),
    ("Precedence: auto_reply", {"headers": ["Precedence: auto_reply"]}, "auto_reply"),
    ("Precedence: junk", {"headers": ["Precedence: junk"]}, "list"),
    ("Precedence: bulk", {"headers": ["Precedence: bulk"]}, "list"),
    ("Precedence: list", {"headers": ["Precedence: list"]}, "list"),
    ("List-Id", {"headers": ["List-Id: Jäsenkirje <jasenkirje.liitto.fi>"]}, "list"),
    ("List-Unsubscribe alone", {"headers": ["List-Unsubscribe: <mailto:u@example.com>"]}, "normal"),
    ("List-Unsubscribe one-click",
     {"headers": ["List-Unsubscribe: <https://example.com/u>", "List-Unsubscribe-Post: List-Unsubscribe=One-Click"]},
     "list"),
    ("List-Unsubscribe with Feedback-ID",
     {"headers": ["List-Unsubscribe: <https://example.com/u>", "Feedback-ID: 1:2:campaign:esp"]}, "list"),
    ("noreply newsletter is a list", {"sender": "noreply@uutiset.fi", "headers": ["List-Id: <uutiset.fi>"]}, "list"),
    ("vacation responder with Precedence: bulk is an auto-reply",
     {"headers": ["Precedence: bulk", "Auto-Submitted: auto-replied"]}, "auto_reply"),
]


@pytest.mark.parametrize(("kwargs", "expected"), [pytest.param(k, e, id=i) for i, k, e in HEADER_CASES])
def test_header_rules(kwargs: dict[str, Any], expected: MachineKind) -> None:
    assert verdict(**kwargs).kind == expected


REPLY = "In-Reply-To: <ack-17@liitto.fi>"

SUBJECT_CASES = [
    ("a member on holiday writes", "Olen lomalla, soitan myöhemmin", [], "", "normal"),
    ("a member's subject is the phrase itself", "Olen lomalla", [], "", "normal"),
    ("vacation subject answering our mail", "Olen lomalla", [REPLY], "", "auto_reply"),
    ("Outlook prefix alone", "Automaattinen vastaus: Jäsenmaksu", [], "", "normal"),
    ("Outlook prefix answering our mail", "Automaattinen vastaus: Jäsenmaksu", [REPLY], "", "auto_reply"),
    ("a member answering an auto-reply", "VS: Automaattinen vastaus: Jäsenmaksu", [REPLY], "", "normal"),
    ("Swedish", "Autosvar: Medlemsavgift", ["References: <ack-17@liitto.fi>"], "", "auto_reply"),
    ("German with Precedence: bulk", "Abwesenheitsnotiz: Beitrag", ["Precedence: bulk"], "", "auto_reply"),
    ("English, body says so", "Out of Office: Membership", [], "This is an automatic reply.", "auto_reply"),
    ("Finnish, body says so", "Poissaoloilmoitus", [], "Tämä on automaattinen vastaus.", "auto_reply"),
    ("the phrase later in the subject", "Jäsenmaksu (olen lomalla)", [REPLY], "", "normal"),
]


@pytest.mark.parametrize(
    ("subject", "headers", "body", "expected"),
    [pytest.param(s, h, b, e, id=i) for i, s, h, b, e in SUBJECT_CASES],
)
def test_out_of_office_subject_is_only_a_supporting_signal(
    subject: str, headers: list[str], body: str, expected: MachineKind
) -> None:
    assert verdict(headers, subject=subject, body=body or "Hei").kind == expected


def _member_forward(subject: str, bounce: Path) -> bytes:
    message = EmailMessage()
    message["From"] = "Matti Meikäläinen <matti@example.fi>"
    message["To"] = "jasenpalvelu@liitto.fi"
    message["Subject"] = subject
    message.set_content("Sain tällaisen virheilmoituksen, kun yritin lähettää teille viestin. Mitä teen?")
    message.add_attachment(parse_message(bounce.read_bytes())[1], disposition="attachment")
    return message.as_bytes()


def test_member_forwarding_a_dsn_as_attachment_gets_a_ticket() -> None:
    raw = _member_forward("VL: Undelivered Mail Returned to Sender", CORPUS / "bounces/postfix_dsn_550.eml")
    parsed, message = parse_message(raw)
    assert classify(parsed, IMAP, message, OWN_ADDRESSES).kind == "normal"


def test_member_pasting_a_bounce_into_a_forward_gets_a_ticket() -> None:
    bounce_text = (CORPUS / "bounces/qmail_failure_notice.eml").read_text("utf-8", "replace")
    assert verdict(subject="Fwd: failure notice", body=bounce_text).kind == "normal"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("matti@example.fi", None),
        ("noreplyer.matti@example.fi", None),
        ("", "null sender"),
        ("MAILER-DAEMON@mx.example.fi", "system sender mailer-daemon@mx.example.fi"),
        ("postmaster@example.fi", "system sender postmaster@example.fi"),
        ("no-reply@verkkokauppa.example", "no-reply sender no-reply@verkkokauppa.example"),
        ("DoNotReply@pankki.example", "no-reply sender donotreply@pankki.example"),
        ("tyottomyyskassa+x7@liitto.fi", "our own address tyottomyyskassa@liitto.fi"),
    ],
)
def test_machine_address_says_why_no_automatic_mail_goes_there(address: str, reason: str | None) -> None:
    assert machine_address(address, OWN_ADDRESSES) == reason
