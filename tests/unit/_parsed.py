"""A ``Parsed`` built with the standard library alone, for classifier tests.

``maild.core.parse.parse_message`` is the real parser and the corpus tests use it. This one
fills only what ``classify`` reads (headers, From, subject, threading ids) and never fails, so
classification can also be tested on mail that the real parser sends to the quarantine.
"""

from __future__ import annotations

import email
import email.header
import email.message
import email.policy
import email.utils
import re

from maild.mail import Parsed


def stdlib_parse(raw: bytes) -> tuple[Parsed, email.message.Message]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        headers.setdefault(name.lower(), []).append(_decoded(value))
    first = {name: values[0] for name, values in headers.items()}
    from_name, from_addr = email.utils.parseaddr(first.get("from", ""))
    message_ids = _ids(first.get("message-id", ""))
    parsed = Parsed(
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=_ids(first.get("in-reply-to", "")),
        references=_ids(" ".join(headers.get("references", []))),
        subject=first.get("subject", ""),
        from_addr=from_addr.lower() if "@" in from_addr else "",
        from_name=from_name,
        to=(),
        cc=(),
        reply_to=(),
        date=None,
        headers={name: tuple(values) for name, values in headers.items()},
        text="",
        html=None,
    )
    return parsed, message


def _decoded(value: str) -> str:
    try:
        text = str(email.header.make_header(email.header.decode_header(value)))
    except Exception:  # bad charset names and broken encoded words stay as they are
        text = value
    return re.sub(r"\r?\n[ \t]+", " ", text).strip()


def _ids(value: str) -> tuple[str, ...]:
    return tuple(re.findall(r"<([^<>\s]+)>", value))
