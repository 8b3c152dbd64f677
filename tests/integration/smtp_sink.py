"""A real SMTP server for outgoing mail in tests: aiosmtpd on loopback, STARTTLS with a
self-signed certificate, optional AUTH, and replies that tests can script per recipient."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SinkHandler:
    received: list[Received] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)  # recipient -> SMTP reply to RCPT

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        reply = self.replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 accepted"


@dataclass
class Sink:
    handler: SinkHandler
    controller: Controller
    port: int
    cert: Path

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def url(self, scheme: str = "smtp") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


USER, PASSWORD = "jasenpalvelu@liitto.fi", "salasana"


def _authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok)


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    """Start sinks: ``smtp_sink(auth=True)``; STARTTLS is offered, or TLS from the start."""
    started: list[Controller] = []
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def start(auth: bool = False, port: int | None = None, implicit_tls: bool = False) -> Sink:
        handler = SinkHandler()
        port = port or free_port()
        tls = {"ssl_context": context} if implicit_tls else {"tls_context": context, "require_starttls": auth}
        controller = Controller(
            handler, hostname="127.0.0.1", port=port, authenticator=_authenticator if auth else None,
            # aiosmtpd counts only STARTTLS as TLS; with TLS from the start the whole session is
            auth_required=auth, auth_require_tls=not implicit_tls, **tls,
        )
        controller.start()
        started.append(controller)
        return Sink(handler, controller, port, cert)

    yield start
    for controller in started:
        try:
            controller.stop()
        except AssertionError:  # already stopped by the test
            pass
