"""Who is erased, and what stands in their place. Pure: no I/O, no ORM.

A person is known by an address (lower-case) and the names mail gave them. Their address is
replaced by a pseudonym that is the same for the same address (an HMAC under the instance's
secret key), so that a ticket's skeleton keeps "one requester" in counts; names are blanked.
The pseudonym is pseudonymous, not anonymous: whoever holds the secret key and the address
can compute it again and so tell that this address once wrote (README, "Privacy").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ERASED_DOMAIN = "invalid"  # RFC 2606: never deliverable
NAME_MARK = "[erased]"
MIN_NAME_LENGTH = 5
# an address is found whole: not inside a longer one (mattimatti@..., matti@example.fi.com)
_BEFORE, _AFTER = r"(?<![\w.+-])", r"(?![\w-]|\.[\w-])"


def pseudonym(secret: bytes, address: str) -> str:
    """``erased-<hmac>@invalid``: stable per address, not the address."""
    digest = hmac.new(secret, b"erase:" + address.strip().lower().encode("utf-8"), hashlib.sha256).hexdigest()
    return f"erased-{digest[:20]}@{ERASED_DOMAIN}"


def is_pseudonym(address: str) -> bool:
    return address.startswith("erased-") and address.endswith("@" + ERASED_DOMAIN)


def usable_names(names: Iterable[str], addresses: Iterable[str] = ()) -> tuple[str, ...]:
    """The names worth replacing inside text: whole display names (two words or more, five
    letters or more), longest first. A first name alone would take other people's "Matti"
    with it; the address itself is no name."""
    skip = {a.lower() for a in addresses}
    found = {" ".join(n.split()) for n in names}
    usable = (n for n in found if len(n) >= MIN_NAME_LENGTH and " " in n and n.lower() not in skip)
    return tuple(sorted(usable, key=len, reverse=True))


@dataclass(frozen=True)
class Scrubber:
    """Replaces addresses (each by its pseudonym) and names (by ``[erased]``, or by nothing
    where a whole value is the name) in strings, JSON values and raw bytes."""

    pseudonyms: dict[str, str]  # address (lower-case) -> pseudonym
    names: tuple[str, ...] = ()
    _address_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _name_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _bytes_re: re.Pattern[bytes] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        addresses = sorted(self.pseudonyms, key=len, reverse=True)
        object.__setattr__(self, "_address_re", _alternation(addresses, _BEFORE, _AFTER))
        object.__setattr__(self, "_name_re", _alternation(self.names))
        encoded = b"|".join(map(re.escape, (a.encode("utf-8") for a in addresses)))
        object.__setattr__(self, "_bytes_re", re.compile(
            _BEFORE.encode() + b"(?:" + encoded + b")" + _AFTER.encode(), re.IGNORECASE) if addresses else None)

    @property
    def address_pattern(self) -> re.Pattern[bytes] | None:
        """The addresses, as a bytes pattern for files."""
        return self._bytes_re

    @property
    def needles(self) -> tuple[str, ...]:
        """What a query looks for: every address and name."""
        return (*self.pseudonyms, *self.names)

    def text(self, value: str, names: bool = True) -> str:
        """``value`` with every address replaced; with ``names``, every name too."""
        if self._address_re is not None:
            value = self._address_re.sub(lambda m: self.pseudonyms[m.group().lower()], value)
        if names and self._name_re is not None:
            if self._name_re.fullmatch(value.strip()):
                return ""
            value = self._name_re.sub(NAME_MARK, value)
        return value

    def value(self, value: Any, names: bool = True) -> Any:
        """A JSON value (or plain string) with every string in it scrubbed, keys included."""
        if isinstance(value, str):
            return self.text(value, names)
        if isinstance(value, list):
            return [self.value(item, names) for item in value]
        if isinstance(value, dict):
            return {self.text(key, names) if isinstance(key, str) else key: self.value(item, names)
                    for key, item in value.items()}
        return value

    def raw(self, data: bytes) -> bytes:
        """Raw mail with every address replaced (case-insensitively, as bytes)."""
        if self._bytes_re is None:
            return data
        return self._bytes_re.sub(lambda m: self.pseudonyms[m.group().decode("utf-8").lower()].encode("ascii"), data)

    def mentions(self, value: Any, names: bool = True) -> bool:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self._bytes_re is not None and self._bytes_re.search(bytes(value)) is not None
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if self._address_re is not None and self._address_re.search(text):
            return True
        return names and self._name_re is not None and self._name_re.search(text) is not None


def _alternation(words: Iterable[str], before: str = "", after: str = "") -> re.Pattern[str] | None:
    words = [w for w in words if w]
    if not words:
        return None
    return re.compile(before + "(?:" + "|".join(map(re.escape, words)) + ")" + after, re.IGNORECASE)
