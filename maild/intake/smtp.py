"""The inbound SMTP listener: a thin aiosmtpd adapter over the spool.

250 only after the raw message is committed; 451 when it cannot be stored; 550 for a
recipient domain we do not accept (never an open relay); 552 over the size limit
(aiosmtpd's ``data_size_limit``). Limits (docs/guarantees.md): 452 for recipients beyond
``max_recipients``, 421 for a connection beyond ``max_connections``, and 421 (then the
connection is closed) for a session idle for ``timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope as SmtpEnvelope, Session as SmtpSession

from maild.config import Smtp
from maild.intake.smtp_data import TooMuchData, read_data
from maild.mail import Envelope
from maild.supervise import Tracker

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

    def __init__(
        self, accept: Accept, accept_domains: list[str], max_recipients: int = 100, health: Tracker | None = None
    ) -> None:
        self.accept = accept
        self.domains = frozenset(d.lower().rstrip(".") for d in accept_domains)
        self.max_recipients = max_recipients
        self.health = health or Tracker("listener")  # stored (ok) or not (the error)
        self.in_flight = 0

    async def handle_RCPT(
        self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not domain_accepted(address, self.domains):
            return "550 5.7.1 Relaying denied: not a domain of this server"
        if len(envelope.rcpt_tos) >= self.max_recipients:  # RFC 5321 4.5.3.1.10: the client sends the rest later
            return "452 4.5.3 Too many recipients"
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
            self.health.failed(exc)
            return "451 4.3.0 Temporary storage failure, please try again later"
        finally:
            self.in_flight -= 1
        self.health.ok()
        return f"250 2.0.0 Ok: queued as {inbound_id}"


class Sessions:
    """The SMTP sessions open at once, shared by the listener's connections."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def admit(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        self.open -= 1


class MaildSMTP(SMTP):
    """aiosmtpd's protocol, lenient about line length, with a session limit and an idle timeout.

    RFC 5321 caps lines at 1000 octets, but real senders break it (HTML mail on one line,
    broken clients), and a member's mail refused on a technicality is worse than a long
    line: accept lines up to 1 MiB; the size limit still bounds the whole message.

    Idle means no bytes from the client (aiosmtpd counts from the last command, which would
    cut a big message still arriving): each read notes the time, and the timer, when it
    fires early, waits for the rest.
    """

    line_length_limit = 1 << 20

    def __init__(self, handler: IntakeHandler, sessions: Sessions, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sessions = sessions
        self.admitted = False
        self.last_read = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:  # the connection itself, not its STARTTLS upgrade
            self.admitted = self.sessions.admit()
            self.last_read = self.loop.time()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self.admitted:
            self.admitted = False
            self.sessions.leave()
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        self.last_read = self.loop.time()
        super().data_received(data)

    async def _handle_client(self) -> None:
        """aiosmtpd's session, or 421 when too many are open already."""
        if self.admitted:
            await super()._handle_client()
            return
        log.warning("%s: refused, %d SMTP sessions open already", self.session and self.session.peer, self.sessions.open)
        await self.push("421 4.3.2 Too many connections, try again later")
        assert self.transport is not None
        self.transport.close()

    def _timeout_cb(self) -> None:
        idle = self.loop.time() - self.last_read
        if idle < self._timeout_duration:
            self._reset_timeout(self._timeout_duration - idle)
            return
        log.info("%s: idle for %.0f s; closing", self.session and self.session.peer, idle)
        self._writer.write(b"421 4.4.2 Idle too long, closing connection\r\n")
        super()._timeout_cb()

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


async def start_listener(handler: IntakeHandler, smtp: Smtp, hostname: str) -> asyncio.AbstractServer:
    """Listen on ``smtp.listen``; each connection gets its own aiosmtpd protocol instance."""
    loop = asyncio.get_running_loop()
    sessions = Sessions(smtp.max_connections)
    host, port = smtp.host_port()

    def factory() -> Any:
        return MaildSMTP(
            handler,
            sessions,
            data_size_limit=smtp.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="maild",
            timeout=smtp.timeout_seconds,
        )

    return await loop.create_server(factory, host=host, port=port, reuse_address=True)
