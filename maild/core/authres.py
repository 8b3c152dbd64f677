"""Proof of a staff sender by Authentication-Results (RFC 8601; docs/mail.md#staff, ``authres``). Pure.

The headers are read by the ``authres`` library, an RFC 8601 parser: a ``dkim=pass`` inside a
comment or a quoted string is text, not a result.

Which header counts: the receiving MTA adds its Authentication-Results at the top, above
everything the sender wrote, and a sender can write one that names our MTA's authserv-id too.
So the headers are read from the top: one from an untrusted authserv-id (added after ours, by
a later hop) is passed over, and the first one from a trusted id decides; those below it are
never looked at. A header that cannot be parsed ends the search and proves nothing: whose it
is cannot be known, and it may be our MTA's own, broken by what the sender put into it, above
a forged one.

What it must show, for the domain of the From address:
- ``dmarc=pass`` with ``header.from`` that domain; or
- ``dkim=pass`` with ``header.d`` (and ``header.i``'s domain, when given) that domain or a parent
  of it: ``d=liitto.fi`` proves ``From: x@mail.liitto.fi``. This is DMARC's relaxed alignment
  in one direction only, and needs no public suffix list: whoever holds a parent domain holds
  its subdomains anyway, while a subdomain's signature (``d=news.liitto.fi``) does not prove
  ``From: x@liitto.fi``, since subdomains are often handed to mailing services.
"""

from __future__ import annotations

import authres
import authres.core
import authres.dmarc

MAX_HEADER_CHARS = 4096  # the parser takes time quadratic in the length: 0.1 s at most here
MAX_HEADERS = 8  # ours is at the top, below at most a few of later hops

_PARSER = authres.FeatureContext(authres.dmarc)


def parse(header: str) -> authres.core.AuthenticationResultsHeader | None:
    """One header's value parsed, or None when it cannot be (too long, or not RFC 8601)."""
    value = header.strip()
    if len(value) > MAX_HEADER_CHARS:
        return None
    try:
        return _PARSER.parse_value(value)
    except Exception:  # the parser raises its own errors and, on deep nesting, RecursionError
        return None


def _domain(value: str) -> str:
    """The domain of a property value: ``liitto.fi``, ``@liitto.fi`` or ``user@liitto.fi``."""
    return value.rpartition("@")[2].strip().rstrip(".").lower()


def _aligned(signer: str, from_domain: str) -> bool:
    """The signing domain is the From domain or a parent of it."""
    return bool(signer) and (from_domain == signer or from_domain.endswith("." + signer))


def _passes(result: authres.core.AuthenticationResult, from_domain: str) -> bool:
    if (result.result or "").lower() != "pass":
        return False
    values: dict[str, list[str]] = {}
    for prop in result.properties:
        if (prop.type or "").lower() == "header":
            values.setdefault((prop.name or "").lower(), []).append(_domain(prop.value or ""))
    method = (result.method or "").lower()
    if method == "dmarc":
        return values.get("from", []) == [from_domain]
    if method == "dkim":
        signers = values.get("d", []) + values.get("i", [])
        return bool(signers) and all(_aligned(signer, from_domain) for signer in signers)
    return False


def proves_sender(headers: tuple[str, ...], trusted: frozenset[str], from_domain: str) -> bool:
    """True when the topmost Authentication-Results from a trusted authserv-id shows dmarc=pass
    for the From domain, or a dkim=pass whose signing domain is aligned with it.

    ``headers``: the raw values (no RFC 2047 decoding), in message order, the topmost first.
    """
    from_domain = from_domain.strip().rstrip(".").lower()
    if not from_domain:
        return False
    for header in headers[:MAX_HEADERS]:
        parsed = parse(header)
        if parsed is None:
            return False
        if parsed.authserv_id not in trusted:
            continue
        return any(_passes(result, from_domain) for result in parsed.results)
    return False
