"""Transports: where outgoing mail goes. SMTP (aiosmtplib, one reused connection) or a maildir.

``deliver`` answers with a ``Result``: sent, temporary (retry later) or permanent (5xx).
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlparse

import aiosmtplib

from maild.oauth2 import TokenError, TokenSource, with_token
from maild.store.private import make_dirs, write_file

Outcome = Literal["sent", "temporary", "permanent"]


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    detail: str = ""


class Transport(Protocol):
    async def deliver(self, return_path: str, recipient: str, raw: bytes) -> Result: ...

    async def close(self) -> None: ...


class MaildirTransport:
    """Writes each mail into a maildir, so a newcomer can read what maild sent.

    Delivery as the maildir convention has it (written in ``tmp``, renamed into ``new``), with
    private modes (docs/guarantees.md). Not fsynced: a killed process loses nothing, only a crash of the
    whole machine could (this transport is for trials and tests).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        for sub in ("tmp", "new", "cur"):
            make_dirs(path / sub, durable=True)

    async def deliver(self, return_path: str, recipient: str, raw: bytes) -> Result:
        envelope = f"Return-Path: <{return_path}>\r\nDelivered-To: {recipient}\r\n".encode()
        name = f"{time.time_ns() // 1000}.P{os.getpid()}R{uuid.uuid4().hex}.maild"
        await asyncio.to_thread(write_file, self.path / "new" / name, envelope + raw, durable=False, staging=self.path / "tmp")
        return Result("sent", "maildir")

    async def close(self) -> None:
        return None


class SmtpTransport:
    """A smarthost over SMTP: STARTTLS or implicit TLS, AUTH, one connection reused.

    With ``tokens``, AUTH is XOAUTH2 with its access token instead of the password.
    """

    def __init__(
        self, url: str, starttls: bool, username: str, password: str, ca_file: str = "", timeout: float = 60,
        tokens: TokenSource | None = None,
    ) -> None:
        parsed = urlparse(url)
        self.implicit_tls = parsed.scheme == "smtps"
        self.host = parsed.hostname or "localhost"
        self.port = parsed.port or (465 if self.implicit_tls else 25)
        self.starttls = starttls and not self.implicit_tls
        self.username = username
        self.password = password
        self.context = ssl.create_default_context(cafile=ca_file or None)
        self.timeout = timeout
        self.tokens = tokens
        self._smtp: aiosmtplib.SMTP | None = None

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        smtp = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, use_tls=self.implicit_tls, start_tls=self.starttls,
            tls_context=self.context, timeout=self.timeout,
        )
        await smtp.connect()
        if self.username:
            try:
                await self._log_in(smtp)
            except (aiosmtplib.SMTPException, TokenError):
                smtp.close()
                raise
        self._smtp = smtp
        return smtp

    async def _log_in(self, smtp: aiosmtplib.SMTP) -> None:
        """AUTH with the password, or XOAUTH2 with a token (a refused one is replaced once)."""
        if self.tokens is None:
            await smtp.login(self.username, self.password)
            return
        login = functools.partial(smtp.auth_xoauth2, self.username)
        await with_token(self.tokens, login, aiosmtplib.SMTPAuthenticationError, f"smarthost {self.host}")

    async def deliver(self, return_path: str, recipient: str, raw: bytes) -> Result:
        try:
            smtp = await self._connection()
            errors, response = await smtp.sendmail(return_path, [recipient], raw)
        except aiosmtplib.SMTPAuthenticationError as exc:  # our configuration, not the mail: keep it
            return Result("temporary", f"authentication failed: {exc.code} {exc.message}")
        except TokenError as exc:
            return Result("temporary", f"no OAuth2 token: {exc}")
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused else 550
            return Result("permanent" if code >= 500 else "temporary", str(refused or exc))
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500 and exc.code not in (421,):
                return Result("permanent", f"{exc.code} {exc.message}")
            await self._drop()
            return Result("temporary", f"{exc.code} {exc.message}")
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            await self._drop()
            return Result("temporary", f"{type(exc).__name__}: {exc}")
        return Result("sent", response)

    async def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            except Exception:  # a broken connection may fail to close; it is gone either way
                pass
            self._smtp = None

    async def close(self) -> None:
        if self._smtp is not None and self._smtp.is_connected:
            try:
                await self._smtp.quit()
            except aiosmtplib.SMTPException:
                pass
        self._smtp = None


def make_transport(
    url: str, starttls: bool, username: str, password: str, base: Path, ca_file: str = "", tokens: TokenSource | None = None
) -> Transport:
    """The transport a ``[outbound] transport`` URL names; a relative maildir is under ``base``."""
    path = maildir_path(url, base)
    if path is not None:
        return MaildirTransport(path)
    return SmtpTransport(url, starttls, username, password, ca_file, tokens=tokens)


def maildir_path(url: str, base: Path) -> Path | None:
    """The directory a ``maildir:PATH`` transport URL names (a relative one under ``base``)."""
    if not url.startswith("maildir:"):
        return None
    path = Path(url[len("maildir:"):])
    return path if path.is_absolute() else base / path
