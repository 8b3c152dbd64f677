"""Proof of a staff sender by Authentication-Results (RFC 8601; contract 4.5, ``authres``). Pure.

Only the topmost header from a trusted authserv-id counts: anything below it (or from an
untrusted id) may have been written by the sender.
"""

from __future__ import annotations

import re

_RESULT = re.compile(r"\b(dmarc|dkim)\s*=\s*(\w+)([^;]*)", re.IGNORECASE)
_PROP = re.compile(r"header\.(from|d|i)\s*=\s*\"?([^\s;\"]+)", re.IGNORECASE)


def authserv_id(header: str) -> str:
    return header.split(";", 1)[0].strip().split()[0].lower() if header.strip() else ""


def _aligned(domain: str, from_domain: str) -> bool:
    domain = domain.lower().lstrip("@").split("@")[-1]
    return domain == from_domain or from_domain.endswith("." + domain)


def proves_sender(headers: tuple[str, ...], trusted: frozenset[str], from_domain: str) -> bool:
    """True when the topmost trusted Authentication-Results shows dmarc=pass for the From
    domain, or a dkim=pass whose signing domain is aligned with it."""
    from_domain = from_domain.lower()
    for header in headers:  # in message order: the topmost first
        if authserv_id(header) not in trusted:
            continue
        for method, result, props in _RESULT.findall(header.split(";", 1)[1] if ";" in header else ""):
            if result.lower() != "pass":
                continue
            values = {key.lower(): value for key, value in _PROP.findall(props)}
            domain = values.get("from") if method.lower() == "dmarc" else values.get("d") or values.get("i")
            if domain and _aligned(domain, from_domain):
                return True
        return False
    return False
