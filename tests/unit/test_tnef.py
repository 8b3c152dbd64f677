"""Outlook's winmail.dat unpacked into its files (docs/coming.md#staff-daily-work), and hostile TNEF kept as it is."""

from __future__ import annotations

import struct
import time
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from maild.core import tnef
from maild.core.parse import parse_message

LVL_MESSAGE, LVL_ATTACHMENT = 1, 2
ATT_VERSION, ATT_RENDDATA, ATT_TITLE, ATT_DATA = 0x00089006, 0x00069002, 0x00018010, 0x0006800F


def _attribute(level: int, attribute: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BII", level, attribute, len(data)) + data + struct.pack("<H", checksum)


def winmail(*files: tuple[str, bytes]) -> bytes:
    """A TNEF file as Outlook writes one: the signature, a key, the version, then for each
    file its rendering data (which starts an attachment), title and data."""
    out = tnef.SIGNATURE + struct.pack("<H", 0x1234) + _attribute(LVL_MESSAGE, ATT_VERSION, struct.pack("<I", 0x10000))
    for name, data in files:
        out += _attribute(LVL_ATTACHMENT, ATT_RENDDATA, b"\x01\x00" + b"\x00" * 12)
        out += _attribute(LVL_ATTACHMENT, ATT_TITLE, name.encode("cp1252") + b"\x00")
        out += _attribute(LVL_ATTACHMENT, ATT_DATA, data)
    return out


def outlook_mail(payload: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Outlook Käyttäjä <outlook@example.fi>"
    msg["To"] = "jasenpalvelu@liitto.fi"
    msg["Subject"] = "Hakemus liitteenä"
    msg.set_content("Hei, hakemukseni liitteenä.")
    msg.add_attachment(payload, maintype="application", subtype="ms-tnef", filename="winmail.dat")
    return bytes(msg)


PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"%%EOF\n"


def test_winmail_dat_becomes_the_files_inside_it() -> None:
    parsed, _ = parse_message(outlook_mail(winmail(("Jäsenhakemus.pdf", PDF), ("palkka.txt", b"3000 e"))))
    assert [(a.filename, a.content_type, a.data) for a in parsed.attachments] == [
        ("Jäsenhakemus.pdf", "application/pdf", PDF),
        ("palkka.txt", "text/plain", b"3000 e"),
    ]
    assert parsed.text == "Hei, hakemukseni liitteenä."


def test_a_broken_or_empty_winmail_dat_is_kept_as_it_is() -> None:
    for payload in (tnef.SIGNATURE + b"\x00\x01" + b"\xff" * 40, winmail(), b"not tnef at all"):
        parsed, _ = parse_message(outlook_mail(payload))
        assert [(a.filename, a.data) for a in parsed.attachments] == [("winmail.dat", payload)]


def test_a_winmail_dat_of_many_tiny_attributes_is_not_unpacked_in_quadratic_time() -> None:
    payload = tnef.SIGNATURE + b"\x00\x00" + _attribute(LVL_MESSAGE, 0x00010001, b"x") * 400_000
    started = time.monotonic()
    assert tnef.files(payload) is None
    assert time.monotonic() - started < 5


def test_control_characters_in_a_name_are_cleaned() -> None:
    parsed, _ = parse_message(outlook_mail(winmail(("lasku\x1b[31m.pdf", PDF))))
    assert "\x1b" not in parsed.attachments[0].filename and parsed.attachments[0].data == PDF


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_after_the_signature_give_files_or_the_original(tail: bytes) -> None:
    payload = tnef.SIGNATURE + tail
    parsed, _ = parse_message(outlook_mail(payload))
    assert parsed.attachments  # never lost: the original or what was inside
    if len(parsed.attachments) == 1 and parsed.attachments[0].filename == "winmail.dat":
        assert parsed.attachments[0].data == payload
