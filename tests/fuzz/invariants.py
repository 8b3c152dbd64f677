"""What must hold for every ``Parsed``, whatever bytes it came from.

Shared by the fuzz targets and the property tests; stdlib only, so that a fuzz target
starts fast.
"""

from __future__ import annotations

import re
from dataclasses import fields

from maild.mail import Parsed

_UNSAFE = re.compile(r"[\x00\ud800-\udfff]")
# An addr-spec as maild may use it: local@domain, no whitespace, no controls (C0, DEL, C1),
# no angle brackets, commas or further @ that would change where a header or command ends.
_ADDR_SPEC = re.compile(r"[^\s\x00-\x1f\x7f-\x9f<>,;@\"]+@[^\s\x00-\x1f\x7f-\x9f<>,;@\"()\[\]\\]+")


def strings_of(value: object) -> list[str]:
    """Every str inside a value: dataclass fields, tuples, dicts (keys and values)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in strings_of(key) + strings_of(item)]
    if isinstance(value, (tuple, list)):
        return [s for item in value for s in strings_of(item)]
    if hasattr(value, "__dataclass_fields__"):
        return [s for f in fields(value) for s in strings_of(getattr(value, f.name))]
    return []


def check_strings(parsed: Parsed) -> None:
    """No NUL and no lone surrogate anywhere: every database and encoder takes the text."""
    for text in strings_of(parsed):
        bad = _UNSAFE.search(text)
        assert bad is None, f"unsafe character {bad.group()!r} in {text[:200]!r}"


def is_addr_spec(address: str) -> bool:
    return _ADDR_SPEC.fullmatch(address) is not None


def check_addresses(parsed: Parsed) -> None:
    """Every address maild may answer or copy to is one plain addr-spec."""
    addresses = [a for a in (parsed.from_addr, *parsed.to, *parsed.cc, *parsed.reply_to) if a]
    for address in addresses:
        assert is_addr_spec(address), f"not an addr-spec: {address!r}"
