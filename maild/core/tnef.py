"""Outlook's ``winmail.dat`` (TNEF): the files inside it, so staff see a PDF, not a blob.

Outlook sends TNEF when rich text is on; other mail clients show one ``winmail.dat`` that
nobody can open. ``files`` reads it with tnefparse. Whatever goes wrong (a broken or hostile
TNEF, an unknown layout) leaves ``None``, and the caller keeps ``winmail.dat`` itself:
the raw message stays the durable copy either way.
"""

from __future__ import annotations

import logging
import struct

log = logging.getLogger("maild.tnef")

CONTENT_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
SIGNATURE = struct.pack("<I", 0x223E9F78)
# tnefparse slices the rest of the data for every attribute: a file of many tiny attributes
# would take quadratic time. Real ones have dozens; anything past this is not unpacked.
MAX_ATTRIBUTES = 5_000
_HEADER = 9  # level (1), attribute id (4), length (4); a checksum (2) follows the data


def named(filename: str, content_type: str) -> bool:
    """Whether an attachment says it is TNEF (its bytes are checked by ``files``)."""
    return content_type.lower() in CONTENT_TYPES or filename.lower() == "winmail.dat"


def _attributes(data: bytes) -> int:
    """How many attributes the file holds, counted from their headers alone."""
    offset, count = 6, 0
    while offset + _HEADER + 2 <= len(data):
        (length,) = struct.unpack_from("<I", data, offset + 5)
        offset += _HEADER + length + 2
        count += 1
        if count > MAX_ATTRIBUTES:
            break
    return count


def files(data: bytes) -> list[tuple[str, bytes]] | None:
    """The (file name, content) pairs inside a TNEF file, or None when it cannot be unpacked
    or holds no file (then the caller keeps the TNEF file as it is)."""
    if not data.startswith(SIGNATURE):
        return None
    if _attributes(data) > MAX_ATTRIBUTES:
        log.warning("winmail.dat kept as it is: more than %d attributes", MAX_ATTRIBUTES)
        return None
    try:
        from tnefparse import TNEF  # imported when needed: most mail has no TNEF

        tnef = TNEF(data, do_checksum=False)
        found = [(_name(item), bytes(item.data)) for item in tnef.attachments if item.data]
    except Exception as exc:  # noqa: BLE001 - hostile input: any failure keeps the original
        log.warning("winmail.dat kept as it is: %s: %s", type(exc).__name__, exc)
        return None
    return found or None


def _name(item: object) -> str:
    """The long file name when Outlook gave one, else the 8.3 title; bytes in UTF-8 when they
    are, else Windows-1252 (tnefparse decodes them as UTF-8 only and fails on "ä")."""
    from tnefparse import properties

    long_names = [a.data for a in getattr(item, "mapi_attrs", ()) if a.name == properties.MAPI_ATTACH_LONG_FILENAME]
    for value in (*long_names, getattr(item, "_name", b"")):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                value = value.decode("windows-1252", "replace")
        if isinstance(value, str) and value.strip("\x00 "):
            return value.strip("\x00 ")
    return "attachment"
