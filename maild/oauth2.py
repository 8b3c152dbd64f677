"""OAuth2 access tokens for XOAUTH2 logins to IMAP and SMTP servers (docs/operations.md).

Three providers, as ``[... .oauth2] provider`` names them:

- ``microsoft``: msal's client-credentials flow (app-only access) against the tenant's token
  endpoint, by default ``https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`` with
  the scope ``https://outlook.office365.com/.default``.
- ``google``: google-auth's service account with domain-wide delegation: a JWT signed with the
  account's key, for ``subject`` (the mailbox), traded at the token endpoint for a token with
  the scope ``https://mail.google.com/``.
- ``command``: a program that prints an access token on stdout.

A ``TokenSource`` keeps a token until shortly before it expires. When a server refuses it,
``with_token`` has it fetched again once (it may have been revoked before its time). The
libraries' network calls block, so they run in a thread, bounded by ``REQUEST_SECONDS``.

A token or a client secret never reaches a log line: ``Token`` hides its value from
``repr``, and every error message built from what an endpoint or a program said is scrubbed
of the secrets that the request carried.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TypeVar

from maild.config import MICROSOFT_TOKEN_PATH, ConfigError, OAuth2

log = logging.getLogger("maild.oauth2")

MARGIN_SECONDS = 60.0  # a token is fetched again this long before it expires
REQUEST_SECONDS = 30.0  # a token endpoint or command that takes longer has failed
COMMAND_TOKEN_SECONDS = 300.0  # a command says nothing of expiry: ask it again after this
FAILURE_HOLD_SECONDS = (5.0, 300.0)  # after a failed fetch the endpoint rests: first, cap (doubling)
REFETCH_SECONDS = 60.0  # refusals fetch a new token at most this often (a queue of mail is one burst)
MESSAGE_CHARS = 300  # of what an endpoint or a program says, this much goes into an error

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_SCOPE = "https://mail.google.com/"
# Error codes of RFC 6749 5.2 and Microsoft that say "try again later", not "fix the setup"
TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})

T = TypeVar("T")


class TokenError(Exception):
    """No token could be had. The message says why, without secrets. ``transient``: a network
    problem or an endpoint that is down (retry soon), else the set-up (retry slowly)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    lifetime: float  # seconds, from when it was received


Fetch = Callable[[], Awaitable[Token]]


class TokenSource:
    """One provider's token, cached until ``MARGIN_SECONDS`` before it expires."""

    def __init__(self, fetch: Fetch, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = asyncio.Lock()  # concurrent logins share one fetch
        self._value = ""
        self._expires_at = 0.0
        self._refetched_at = -REFETCH_SECONDS
        self._failure: TokenError | None = None
        self._failures = 0
        self._rest_until = 0.0

    async def token(self) -> str:
        """The cached token, or a new one. Raises TokenError; after a failure the endpoint is
        left alone for a while (doubling) and the same error is raised without asking it."""
        async with self._lock:
            now = self._clock()
            if self._value and now < self._expires_at - MARGIN_SECONDS:
                return self._value
            if self._failure is not None and now < self._rest_until:
                raise TokenError(str(self._failure), self._failure.transient)
            try:
                token = await self._fetch()
            except TokenError as exc:
                self._failure, self._failures = exc, self._failures + 1
                first, cap = FAILURE_HOLD_SECONDS
                self._rest_until = self._clock() + min(cap, first * 2 ** (self._failures - 1))
                raise
            self._failure, self._failures = None, 0
            self._value, self._expires_at = token.value, self._clock() + token.lifetime
            return token.value

    def invalidate(self, token: str) -> None:
        """A server refused ``token``: forget it, so that the next ``token()`` fetches a new one.
        A token fetched because of a refusal less than ``REFETCH_SECONDS`` ago is kept: a burst
        of refusals (one per queued mail) asks the endpoint once."""
        now = self._clock()
        if token == self._value and now - self._refetched_at >= REFETCH_SECONDS:
            self._value, self._expires_at, self._refetched_at = "", 0.0, now


async def with_token(
    source: TokenSource, login: Callable[[str], Awaitable[T]], refused: type[BaseException], server: str
) -> T:
    """``login`` to ``server`` with the cached token; when it raises ``refused``, once more with
    a new token.

    A token can stop working before its time (revoked, the app's rights changed); only a
    second refusal, with a token fresh from the endpoint, is a real one.
    """
    token = await source.token()
    try:
        return await login(token)
    except refused:
        source.invalidate(token)
        fresh = await source.token()
        if fresh == token:  # refused again just now: nothing new to try
            raise
    log.info("%s refused the OAuth2 token; trying once more with a new one", server)
    return await login(fresh)


_sources: dict[str, TokenSource] = {}


def token_source(config: OAuth2) -> TokenSource:
    """The token source of an ``oauth2`` table: mailboxes with the same table share one."""
    key = config.model_dump_json()
    if key not in _sources:
        _sources[key] = TokenSource(provider_fetch(config))
    return _sources[key]


def provider_fetch(config: OAuth2, timeout: float = REQUEST_SECONDS) -> Fetch:
    """A coroutine function that fetches one token from the configured provider."""
    # Their DEBUG lines name endpoints and token requests; maild's own lines say what matters.
    for name in ("msal", "google.auth", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if config.provider == "command":
        return functools.partial(command_token, config.token_command, timeout)
    sync = microsoft_token if config.provider == "microsoft" else google_token
    return functools.partial(in_thread, sync, config, timeout)


async def in_thread(sync: Callable[[OAuth2, float], Token], config: OAuth2, timeout: float) -> Token:
    """Run a blocking provider in a thread; it gets ``timeout`` per request, and all of it
    (discovery, retries) a little more."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(sync, config, timeout), timeout * 2)
    except asyncio.TimeoutError:
        raise TokenError(f"{config.provider}: no token within {timeout * 2:.0f} s", transient=True) from None


def microsoft_token(config: OAuth2, timeout: float) -> Token:
    """Client credentials (app-only) from Microsoft Entra ID, by msal."""
    import msal  # here: only instances that use the provider load it
    import requests

    token_url = config.token_url or f"{MICROSOFT_AUTHORITY}/{config.tenant}{MICROSOFT_TOKEN_PATH}"
    where = f"microsoft token endpoint {token_url}"
    try:
        secret = config.client_secret()
    except ConfigError as exc:
        raise TokenError(str(exc)) from None
    try:
        # A new application each time: msal caches tokens itself, and a refused one must go.
        app = msal.ConfidentialClientApplication(
            config.client_id, client_credential=secret, authority=token_url.removesuffix(MICROSOFT_TOKEN_PATH),
            instance_discovery=False, timeout=timeout,
        )
        result = app.acquire_token_for_client(scopes=[config.scope or MICROSOFT_SCOPE])
    except requests.RequestException as exc:
        raise TokenError(f"{where}: {redact(describe(exc), secret)}", transient=True) from None
    except Exception as exc:  # msal raises ValueError for a tenant it cannot discover
        raise TokenError(f"{where}: {redact(describe(exc), secret)}") from None
    if "access_token" not in result:
        error = str(result.get("error", "no access token in the answer"))
        text = first_line(str(result.get("error_description", "")))
        raise TokenError(f"{where}: {redact(f'{error}: {text}', secret)}", transient=error in TRANSIENT_ERRORS)
    return Token(result["access_token"], float(result.get("expires_in", 3600)))


def google_token(config: OAuth2, timeout: float) -> Token:
    """A delegated token for ``subject`` from a service account's key, by google-auth."""
    import google.auth.exceptions
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    try:
        credentials = service_account.Credentials.from_service_account_file(
            config.service_account_file, scopes=[config.scope or GOOGLE_SCOPE], subject=config.subject
        )
    except (OSError, ValueError, KeyError) as exc:  # unreadable, not JSON, not a service account key
        raise TokenError(f"google: cannot use service_account_file {config.service_account_file}: {describe(exc)}") from None
    if config.token_url:
        credentials = credentials.with_token_uri(config.token_url)
    where = f"google token endpoint {config.token_url or '(token_uri of the service account file)'}"
    try:
        credentials.refresh(functools.partial(Request(), timeout=timeout))
    except google.auth.exceptions.RefreshError as exc:  # args: message, the endpoint's answer
        message = str(exc.args[0]) if exc.args else type(exc).__name__
        raise TokenError(f"{where}: {first_line(message)}", transient=bool(getattr(exc, "retryable", False))) from None
    except google.auth.exceptions.TransportError as exc:
        raise TokenError(f"{where}: {describe(exc)}", transient=True) from None
    expiry = credentials.expiry  # naive UTC
    lifetime = (expiry.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)).total_seconds() if expiry else 3600.0
    return Token(credentials.token, lifetime)


async def command_token(command: str, timeout: float) -> Token:
    """Run ``command`` (by the shell) and take its stdout, stripped, as the token."""
    try:
        proc = await asyncio.create_subprocess_shell(
            command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True,  # a timeout ends all it started
        )
    except OSError as exc:
        raise TokenError(f"token_command: cannot run: {describe(exc)}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError) as exc:  # too slow, or maild stops
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if isinstance(exc, asyncio.CancelledError):
            raise
        await proc.wait()
        raise TokenError(f"token_command: no token within {timeout:.0f} s", transient=True) from None
    token = out.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        said = redact(first_line(err.decode("utf-8", "replace")), token)
        raise TokenError(f"token_command: exit status {proc.returncode}" + (f": {said}" if said else ""))
    if not token or any(char.isspace() for char in token):
        raise TokenError("token_command: did not print one access token on stdout")
    return Token(token, COMMAND_TOKEN_SECONDS)


def redact(text: str, *secrets: str) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def first_line(text: str) -> str:
    """The first line of what an endpoint or a program said (Microsoft's go on with trace ids)."""
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    return line if len(line) <= MESSAGE_CHARS else line[:MESSAGE_CHARS] + "..."


def describe(exc: BaseException) -> str:
    text = first_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
