"""The web form's decisions (core.webform): what a submission must hold, its token, its mail."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from maild.core import webform
from maild.core.parse import parse_message

SECRET = b"test-secret"
GOOD = {"name": "Maija Meikäläinen", "email": "maija@example.fi", "subject": "Jäsenmaksu",
        "message": "Hei,\r\npaljonko jäsenmaksu on?\r\n", "token": "t"}


def test_a_good_submission_is_read_and_cleaned() -> None:
    submission, errors = webform.read(GOOD)
    assert errors == {} and submission is not None
    assert (submission.name, submission.email, submission.subject) == ("Maija Meikäläinen", "maija@example.fi", "Jäsenmaksu")
    assert submission.message == "Hei,\npaljonko jäsenmaksu on?"


@pytest.mark.parametrize("changes, errors", [
    ({"email": ""}, {"email": "missing"}),
    ({"subject": "  ", "message": ""}, {"subject": "missing", "message": "missing"}),
    ({"email": "maija"}, {"email": "invalid"}),
    ({"email": "maija@localhost"}, {"email": "invalid"}),
    ({"email": "Maija <maija@example.fi>"}, {"email": "invalid"}),
    ({"email": "maija@example.fi, eve@evil.example"}, {"email": "invalid"}),
    ({"email": "maija@example.fi\r\nBcc: eve@evil.example"}, {"email": "invalid"}),
    ({"message": "x" * 20_001}, {"message": "too_long"}),
    ({"name": "n" * 201}, {"name": "too_long"}),
])
def test_bad_submissions_name_each_wrong_field(changes: dict[str, str], errors: dict[str, str]) -> None:
    submission, found = webform.read({**GOOD, **changes})
    assert submission is None and found == errors


WRITTEN = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)


def test_header_breaks_in_name_and_subject_stay_in_their_header() -> None:
    submission, _ = webform.read({**GOOD, "name": "Eve\r\nBcc: x@evil.example", "subject": "Hei\nBcc: y@evil.example"})
    assert submission is not None
    raw = webform.to_mail(submission, "n1", "jasenpalvelu@liitto.fi", "liitto.fi", "192.0.2.1", WRITTEN)
    parsed, message = parse_message(raw)
    assert message.get_all("Bcc") is None
    assert parsed.from_addr == "maija@example.fi" and parsed.subject == "Hei Bcc: y@evil.example"
    assert parsed.to == ("jasenpalvelu@liitto.fi",) and parsed.cc == ()


def test_the_mail_carries_the_text_and_a_message_id_from_the_token() -> None:
    submission, _ = webform.read(GOOD)
    assert submission is not None
    parsed, message = parse_message(webform.to_mail(submission, "abc", "jasenpalvelu@liitto.fi", "liitto.fi", "192.0.2.1", WRITTEN))
    assert parsed.message_id == "web.abc@liitto.fi" and parsed.text == "Hei,\npaljonko jäsenmaksu on?"
    assert parsed.from_name == "Maija Meikäläinen" and "192.0.2.1" in message["Received"]


def test_tokens_are_ours_fresh_and_untampered() -> None:
    token = webform.new_token(SECRET, now=1_000_000)
    nonce = webform.token_nonce(SECRET, token, now=1_000_100)
    assert nonce and nonce == token.split(".")[1]
    assert webform.token_nonce(b"other", token, now=1_000_100) is None
    assert webform.token_nonce(SECRET, token, now=1_000_000 + webform.TOKEN_MAX_AGE_SECONDS + 1) is None
    stamp, nonce, mac = token.split(".")
    assert webform.token_nonce(SECRET, f"{stamp}.{nonce}x.{mac}", now=1_000_100) is None
    assert webform.token_nonce(SECRET, "", now=1_000_100) is None
    assert webform.token_nonce(SECRET, "a.b.c", now=1_000_100) is None


@pytest.mark.parametrize("subject, stored", [
    ("Re: [JP#1] Palkkasaatava", "Re: (JP#1) Palkkasaatava"),
    ("Asia[ jp # 12 ]jatkuu", "Asia( jp # 12 )jatkuu"),
    ("[JP#\u0661] arabialainen numero", "(JP#\u0661) arabialainen numero"),  # the threader's \\d reads it as 1
    ("Hinta [alv 24 %] ja #1", "Hinta [alv 24 %] ja #1"),
])
def test_a_ticket_tag_in_the_subject_never_threads_a_post(subject: str, stored: str) -> None:
    from maild.core.threader import subject_tags

    submission, _ = webform.read({**GOOD, "subject": subject})
    assert submission is not None and submission.subject == stored
    assert subject_tags(submission.subject, "JP") == ()


def test_one_page_posted_twice_is_one_message_by_its_content() -> None:
    """A reload after a restart, or two instances behind one proxy, each store the post: the
    two copies differ only in their trace header, so the duplicate check stores one ticket."""
    from maild.core.parse import content_fingerprint

    submission, _ = webform.read(GOOD)
    assert submission is not None
    token = webform.new_token(SECRET, now=1_000_000)
    written = webform.token_written(token)
    assert written == datetime.fromtimestamp(1_000_000, timezone.utc)
    first = webform.to_mail(submission, "abc", "jasenpalvelu@liitto.fi", "liitto.fi", "192.0.2.1", written,
                            now=written + timedelta(minutes=3))
    again = webform.to_mail(submission, "abc", "jasenpalvelu@liitto.fi", "liitto.fi", "198.51.100.7", written,
                            now=written + timedelta(hours=2))
    assert first != again and content_fingerprint(first) == content_fingerprint(again)
    edited, _ = webform.read({**GOOD, "message": "Toinen kysymys."})
    assert edited is not None
    changed = webform.to_mail(edited, "abc", "jasenpalvelu@liitto.fi", "liitto.fi", "192.0.2.1", written)
    assert content_fingerprint(changed) != content_fingerprint(first)  # new words: not a copy
