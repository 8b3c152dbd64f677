"""The inbound SMTP listener: a thin aiosmtpd adapter over the spool.

250 only after the raw message is committed; 451 when it cannot be stored; 550 for a
recipient domain we do not accept (never an open relay); 552 over the size limit
(aiosmtpd's ``data_size_limit``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope as SmtpEnvelope, Session as SmtpSession

from maild.intake.smtp_data import TooMuchData, read_data
from maild.mail import Envelope

log = logging.getLogger("maild.smtp")

Accept = Callable[[bytes, Envelope], Awaitable[int]]


def domain_accepted(address: str, domains: frozenset[str]) -> bool:
    """Whether a recipient's domain is ours; an empty set accepts any domain."""
    if not domains:
        return True
    _, at, domain = address.rpartition("@")
    return bool(at) and domain.lower().rstrip(".") in domains


class IntakeHandler:
    """aiosmtpd handler: RCPT checks the domain, DATA spools durably."""

    def __init__(self, accept: Accept, accept_domains: list[str]) -> None:
        self.accept = accept
        self.domains = frozenset(d.lower().rstrip(".") for d in accept_domains)
        self.in_flight = 0

    async def handle_RCPT(
        self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not domain_accepted(address, self.domains):
            return "550 5.7.1 Relaying denied: not a domain of this server"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        ours = Envelope(
            source="smtp",
            mail_from=(envelope.mail_from or "").strip("<>"),
            recipients=tuple(a.lower() for a in envelope.rcpt_tos),
        )
        self.in_flight += 1
        try:
            inbound_id = await self.accept(raw, ours)
        except Exception as exc:
            log.error("could not store a message from %s: %s", ours.mail_from or "<>", exc)
            return "451 4.3.0 Temporary storage failure, please try again later"
        finally:
            self.in_flight -= 1
        return f"250 2.0.0 Ok: queued as {inbound_id}"


class MaildSMTP(SMTP):
    """aiosmtpd's protocol, lenient about line length.

    RFC 5321 caps lines at 1000 octets, but real senders break it (HTML mail on one line,
    broken clients), and a member's mail refused on a technicality is worse than a long
    line: accept lines up to 1 MiB; the size limit still bounds the whole message.
    """

    line_length_limit = 1 << 20

    async def smtp_DATA(self, arg: str) -> None:
        """DATA with the message read in blocks (``read_data``); the rest is aiosmtpd's flow."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await read_data(self._reader, self.data_size_limit)
        except TooMuchData:
            self._set_post_data_state()
            await self.push("552 5.3.4 Message too big for this server")
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)


async def start_listener(
    handler: IntakeHandler, host: str, port: int, max_message_bytes: int, hostname: str
) -> asyncio.AbstractServer:
    """Listen on host:port; each connection gets its own aiosmtpd protocol instance."""
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        return MaildSMTP(
            handler,
            data_size_limit=max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="maild",
            timeout=300,
        )

    return await loop.create_server(factory, host=host, port=port, reuse_address=True)
