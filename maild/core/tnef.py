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
# ... and what those slices copy in all (an embedded message's attributes count too): a few
# attributes before 25 MB of data copy under a gigabyte; 5,000 of them copied 100 GB (9 s).
MAX_COPIED = 2 << 30
MAX_NESTING = 4  # messages attached to messages attached to ...
_HEADER = 9  # level (1), attribute id (4), length (4); a checksum (2) follows the data
# Attributes that tnefparse reads as MAPI property lists (``decode_mapi``), whose counts it
# believes: a count of 4 billion in a 40-byte file is 4 billion turns of a Python loop, or
# (a multi-valued short) 4 billion objects in memory. ``_check`` refuses such a file first.
_PROPERTIES = (0x9003, 0x9005)  # attMAPIProps, attAttachment
_RECIPIENTS = 0x9004  # attRecipTable: a row count, then a property list per row
_FIXED = {0x0002: 2, 0x000B: 2, 0x0003: 4, 0x0004: 4, 0x000A: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8,
          0x0014: 8, 0x0040: 8, 0x0048: 16}  # MAPI property type -> bytes per value
_VARIABLE = frozenset({0x0000, 0x000D, 0x001E, 0x001F, 0x0102})  # each value: a length, then bytes
_ATTACH_DATA_OBJ = 0x3701
_EMBEDDED = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"  # an attached message
_U16, _U32 = struct.Struct("<H"), struct.Struct("<I")


class _Hostile(Exception):
    """A TNEF file that tnefparse would spend unbounded time or memory on."""


class _Cost:
    def __init__(self) -> None:
        self.attributes = 0
        self.copied = 0


def named(filename: str, content_type: str) -> bool:
    """Whether an attachment says it is TNEF (its bytes are checked by ``files``)."""
    return content_type.lower() in CONTENT_TYPES or filename.lower() == "winmail.dat"


def _check(data: memoryview, cost: _Cost, depth: int = 0) -> None:
    """Walk the file as tnefparse will, from the headers and counts alone (linear time), and
    raise ``_Hostile`` when its work would not be bounded by the file's size."""
    if depth > MAX_NESTING:
        raise _Hostile(f"messages nested more than {MAX_NESTING} deep")
    offset = 6
    while offset + 12 < len(data):  # tnefparse's loop: offset + MIN_OBJ_SIZE < len(data)
        cost.attributes += 1
        cost.copied += len(data) - offset
        if cost.attributes > MAX_ATTRIBUTES:
            raise _Hostile(f"more than {MAX_ATTRIBUTES} attributes")
        if cost.copied > MAX_COPIED:
            raise _Hostile("its attributes would copy more than 2 GB")
        (name,) = _U16.unpack_from(data, offset + 1)
        (length,) = _U32.unpack_from(data, offset + 5)
        end = offset + min(len(data) - offset, length + _HEADER + 2)
        body = data[offset + _HEADER:end - 2]
        if name in _PROPERTIES:
            _properties(body, 0, cost, depth)
        elif name == _RECIPIENTS and len(body) >= 4:
            (rows,) = _U32.unpack_from(body, 0)
            if rows > len(body) // 4:
                raise _Hostile(f"{rows} recipients in {len(body)} bytes")
            at = 4
            for _ in range(rows):
                at = _properties(body, at, cost, depth)
        offset = end


def _properties(body: memoryview, offset: int, cost: _Cost, depth: int) -> int:
    """One MAPI property list as ``tnefparse.mapi.decode_mapi`` reads it; returns where it ends."""
    try:
        (count,) = _U32.unpack_from(body, offset)
        offset += 4
        if count > (len(body) - offset) // 4:  # a property takes 4 bytes at least
            raise _Hostile(f"{count} properties in {len(body) - offset} bytes")
        for _ in range(count):
            if offset >= len(body):
                break
            kind, name = _U16.unpack_from(body, offset)[0], _U16.unpack_from(body, offset + 2)[0]
            offset += 4
            if name >= 0x8000:  # a named property: a GUID, then a number or a name
                (named_kind,) = _U32.unpack_from(body, offset + 16)
                offset += 20
                if named_kind:
                    (size,) = _U32.unpack_from(body, offset)
                    offset += 4 + size + (-size % 4)
                else:
                    offset += 4
            multi = None
            if kind & 0x1000:
                kind ^= 0x1000
                (multi,) = _U32.unpack_from(body, offset)
                offset += 4
            values = multi or 1
            if kind in _FIXED:
                size = _FIXED[kind] * values
                if size > len(body) - offset:
                    raise _Hostile(f"{values} values of {_FIXED[kind]} bytes in {len(body) - offset} bytes")
                offset += size + (2 if values % 2 and _FIXED[kind] == 2 else 0)
            elif kind in _VARIABLE:
                if values > (len(body) - offset) // 4:
                    raise _Hostile(f"{values} values in {len(body) - offset} bytes")
                for _ in range(values):
                    items = 1
                    if not multi:
                        (items,) = _U32.unpack_from(body, offset)
                        offset += 4
                        if items > (len(body) - offset) // 4:
                            raise _Hostile(f"{items} values in {len(body) - offset} bytes")
                    for _ in range(items):
                        (size,) = _U32.unpack_from(body, offset)
                        value = body[offset + 4:offset + 4 + size]
                        offset += 4 + size + (-size % 4)
                        if name == _ATTACH_DATA_OBJ and bytes(value[:len(_EMBEDDED)]) == _EMBEDDED:
                            _check(value[len(_EMBEDDED):], cost, depth + 1)  # tnefparse parses it too
            else:
                return len(body)  # an unknown type: tnefparse stops reading the list here
    except struct.error:  # the list runs past its data: tnefparse stops there too
        return len(body)
    return offset


def files(data: bytes) -> list[tuple[str, bytes]] | None:
    """The (file name, content) pairs inside a TNEF file, or None when it cannot be unpacked
    or holds no file (then the caller keeps the TNEF file as it is)."""
    if not data.startswith(SIGNATURE):
        return None
    try:
        _check(memoryview(data), _Cost())
    except (_Hostile, struct.error, RecursionError) as exc:
        log.warning("winmail.dat kept as it is: %s", exc)
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
