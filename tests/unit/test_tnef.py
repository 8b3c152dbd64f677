"""Outlook's winmail.dat unpacked into its files (docs/coming.md#staff-daily-work), and hostile TNEF kept as it is."""

from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

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


IMESSAGE = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"  # an attached message's prefix
ATT_MAPI_PROPS, ATT_ATTACHMENT = 0x00069003, 0x00069005


def _files_in_a_child(payload: bytes, seconds: float = 20, memory: int = 1 << 30) -> str:
    """``tnef.files(payload)`` in a child process with limits on its time and memory: its result,
    or how it failed (a hostile file must not need either limit)."""
    code = ("import sys; from maild.core import tnef; r = tnef.files(sys.stdin.buffer.read()); "
            "print(None if r is None else [name for name, _ in r])")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    try:
        done = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, timeout=seconds,
                              preexec_fn=limit, env={**os.environ, "PYTHONPATH": str(Path(tnef.__file__).parents[2])})
    except subprocess.TimeoutExpired:
        return f"still running after {seconds} s"
    return done.stdout.decode().strip() if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.decode()[-300:]}"


def test_a_huge_property_count_in_a_few_bytes_is_refused_at_once() -> None:
    """tnefparse believes the count: 4 billion turns of a loop for a 37-byte file."""
    payload = tnef.SIGNATURE + b"\x00\x00" + _attribute(LVL_MESSAGE, ATT_MAPI_PROPS, struct.pack("<I", 0xFFFFFFFF))
    assert _files_in_a_child(payload) == "None"


def test_a_huge_multi_value_count_does_not_fill_the_memory() -> None:
    """One multi-valued short with a count of 4 billion: tnefparse makes an object per value."""
    props = struct.pack("<IHHI", 1, 0x1002, 0x0001, 0xFFFFFFFF)
    payload = tnef.SIGNATURE + b"\x00\x00" + _attribute(LVL_MESSAGE, ATT_MAPI_PROPS, props)
    assert _files_in_a_child(payload) == "None"


def _with_attached_message(inner: bytes) -> bytes:
    """A winmail.dat whose one attachment is a message (MAPI_ATTACH_DATA_OBJ), itself TNEF."""
    value = IMESSAGE + inner
    props = struct.pack("<IHHII", 1, 0x000D, 0x3701, 1, len(value)) + value + b"\x00" * (-len(value) % 4)
    return (tnef.SIGNATURE + b"\x00\x00" + _attribute(LVL_ATTACHMENT, ATT_RENDDATA, b"\x01\x00" + b"\x00" * 12)
            + _attribute(LVL_ATTACHMENT, ATT_ATTACHMENT, props))


def test_an_attached_message_of_many_tiny_attributes_is_not_unpacked_in_quadratic_time() -> None:
    """tnefparse parses an attached message too: its attributes count against the same limit."""
    inner = tnef.SIGNATURE + b"\x00\x00" + _attribute(LVL_MESSAGE, 0x00020001, b"x") * 400_000
    started = time.monotonic()
    assert _files_in_a_child(_with_attached_message(inner)) == "None"
    assert time.monotonic() - started < 10
    small = tnef.SIGNATURE + b"\x00\x00" + _attribute(LVL_MESSAGE, 0x00020001, b"x") * 10
    assert [name for name, _ in tnef.files(_with_attached_message(small)) or []] == ["attachment"]  # a small one is read


def test_property_lists_as_outlook_writes_them_are_unpacked() -> None:
    """The check reads named, multi-valued and string properties as tnefparse does."""
    long_name = "Pitkä tiedostonimi.pdf".encode("cp1252") + b"\x00"
    named = struct.pack("<HH", 0x0003, 0x8001) + b"G" * 16 + struct.pack("<II", 0, 7) + struct.pack("<i", 5)
    multi = struct.pack("<HHI", 0x1002, 0x0002, 3) + struct.pack("<hhh", 1, 2, 3) + b"\x00\x00"
    string = struct.pack("<HHII", 0x001E, 0x3707, 1, len(long_name)) + long_name + b"\x00" * (-len(long_name) % 4)
    message = _attribute(LVL_MESSAGE, ATT_MAPI_PROPS, struct.pack("<I", 2) + named + multi)
    attachment = _attribute(LVL_ATTACHMENT, ATT_ATTACHMENT, struct.pack("<I", 1) + string)
    payload = winmail(("PITKA.PDF", PDF))
    codepage = _attribute(LVL_MESSAGE, 0x00069007, struct.pack("<II", 1252, 0))  # attOemCodepage
    payload = payload[:6] + codepage + message + payload[6:] + attachment
    assert tnef.files(payload) == [("Pitkä tiedostonimi.pdf", PDF)]
