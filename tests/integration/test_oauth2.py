"""OAuth2 (XOAUTH2) logins, for real (docs/operations.md): the microsoft and google providers against a
local identity provider that checks their grants as Entra ID and Google do, the command
provider with small scripts, a Dovecot whose oauth2 passdb asks that provider whether a token
is good, and a smarthost (aiosmtpd) that accepts XOAUTH2 the same way.

Every test that logs also checks that no token and no client secret reaches a log line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
import sqlite3
import ssl
import stat
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlmodel import Session, select

from maild.app import App
from maild.config import ConfigError, OAuth2, load_settings
from maild.oauth2 import REFETCH_SECONDS, Token, TokenError, TokenSource, provider_fetch, with_token
from maild.store import db
from maild.store.tables import Outbox
from tests.conftest import free_port
from tests.integration.dovecot import Account, Dovecot
from tests.integration.oauth2_endpoints import (
    CLIENT_ID,
    GOOGLE_SCOPE,
    JWT_BEARER,
    MICROSOFT_SCOPE,
    TENANT,
    IdentityProvider,
    unb64url,
)
from tests.integration.smtp_sink import SinkHandler, self_signed
from tests.integration.test_outbound import drain, ticket_with_mail
from tests.mailgen import mail

BOX = "jasenpalvelu@liitto.fi"
SECRET_ENV = "OAUTH_TEST_CLIENT_SECRET"  # not MAILD_*: those are configuration overrides


@pytest.fixture
def idp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityProvider]:
    """The identity provider, trusted by requests (msal, google-auth) in this process and in
    the daemons it starts, with the right client secret in the environment."""
    provider = IdentityProvider.start(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(provider.cert))
    monkeypatch.setenv(SECRET_ENV, provider.state.client_secret)
    yield provider
    provider.stop()


def microsoft(idp: IdentityProvider, **changes: str) -> OAuth2:
    fields = {"provider": "microsoft", "tenant": TENANT, "client_id": CLIENT_ID, "client_secret_env": SECRET_ENV,
              "token_url": idp.microsoft_token_url, **changes}
    return OAuth2(**fields)


def google(idp: IdentityProvider, key_file: Path, subject: str = BOX) -> OAuth2:
    return OAuth2(provider="google", service_account_file=str(key_file), subject=subject, token_url=idp.google_token_url)


def fetch(config: OAuth2, timeout: float = 10.0) -> Token:
    return asyncio.run(provider_fetch(config, timeout)())


def fetch_error(config: OAuth2, timeout: float = 10.0) -> TokenError:
    with pytest.raises(TokenError) as caught:
        fetch(config, timeout)
    return caught.value


def toml_table(config: OAuth2, header: str) -> str:
    keys = config.model_dump(exclude_defaults=True)
    keys["provider"] = config.provider
    return f"[{header}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())


def leaks(text: str, idp: IdentityProvider, *more: str) -> list[str]:
    """Tokens and secrets that appear in ``text``."""
    return [secret for secret in (*idp.state.tokens, idp.state.client_secret, *more) if secret in text]


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


# --- the providers against the identity provider ---------------------------------------------


def test_microsoft_client_credentials_grant(idp: IdentityProvider) -> None:
    token = fetch(microsoft(idp))
    assert token.value == idp.state.tokens[-1] and 3500 < token.lifetime <= 3599
    assert token.value not in repr(token)
    (request,) = idp.state.token_requests
    assert request["grant_type"] == "client_credentials" and request["client_id"] == CLIENT_ID
    assert request["client_secret"] == idp.state.client_secret and request["scope"] == MICROSOFT_SCOPE


def test_google_jwt_bearer_grant_with_domain_wide_delegation(idp: IdentityProvider, tmp_path: Path) -> None:
    key_file = idp.service_account_file(tmp_path / "sa.json")
    idp.state.delegated.add(BOX)
    token = fetch(google(idp, key_file))
    assert token.value == idp.state.tokens[-1] and 3500 < token.lifetime <= 3600
    # the endpoint verified the signature; here the claims it was given, as a record
    (request,) = idp.state.token_requests
    assert request["grant_type"] == JWT_BEARER
    claims = json.loads(unb64url(request["assertion"].split(".")[1]))
    assert claims["sub"] == BOX and claims["scope"] == GOOGLE_SCOPE


def test_command_prints_the_token(tmp_path: Path) -> None:
    script = executable(tmp_path / "token.sh", "#!/bin/sh\necho '  at.from-command  '\n")
    token = fetch(OAuth2(provider="command", token_command=f"{script} --mailbox {BOX}"))
    assert token.value == "at.from-command"


def executable(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# --- bad input: a clear error, never a secret --------------------------------------------------


def test_a_wrong_client_secret_is_named_and_not_repeated(idp: IdentityProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "wrong~secret~value")
    error = fetch_error(microsoft(idp))
    assert "invalid_client: AADSTS7000215: Invalid client secret provided" in str(error)
    assert "wrong~secret~value" not in str(error) and "[redacted]" in str(error)  # the endpoint echoed it
    assert not error.transient and "Trace ID" not in str(error)


def test_a_revoked_app_is_named(idp: IdentityProvider) -> None:
    idp.state.app_exists = False
    error = fetch_error(microsoft(idp))
    assert f"microsoft token endpoint {idp.microsoft_token_url}: unauthorized_client: AADSTS700016" in str(error)
    assert not error.transient and not leaks(str(error), idp)


def test_a_token_endpoint_that_does_not_answer_is_a_transient_error(idp: IdentityProvider) -> None:
    idp.state.delay = 5
    started = time.monotonic()
    error = fetch_error(microsoft(idp), timeout=1)
    assert time.monotonic() - started < 4
    assert error.transient and "timed out" in str(error).lower()


def test_a_missing_client_secret_says_which(idp: IdentityProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV)
    assert f"environment variable {SECRET_ENV} is not set" in str(fetch_error(microsoft(idp)))
    assert idp.state.token_requests == []


def test_google_refuses_an_undelegated_subject_and_a_foreign_key(idp: IdentityProvider, tmp_path: Path) -> None:
    old_key = idp.service_account_file(tmp_path / "old.json")
    new_key = idp.service_account_file(tmp_path / "new.json")  # the endpoint now knows this key only
    error = fetch_error(google(idp, new_key, subject="someone@liitto.fi"))
    assert "unauthorized_client: Client is unauthorized to retrieve access tokens" in str(error)
    idp.state.delegated.add(BOX)
    assert "invalid_grant: Invalid JWT Signature." in str(fetch_error(google(idp, old_key)))
    assert str(tmp_path / "missing.json") in str(fetch_error(google(idp, tmp_path / "missing.json")))


def test_a_failing_command_is_named_without_what_it_printed(tmp_path: Path) -> None:
    failing = executable(tmp_path / "fail.sh", "#!/bin/sh\necho at.partial\necho 'vault: at.partial locked' >&2\nexit 3\n")
    error = fetch_error(OAuth2(provider="command", token_command=str(failing)))
    assert str(error) == "token_command: exit status 3: vault: [redacted] locked"
    silent = executable(tmp_path / "silent.sh", "#!/bin/sh\nexit 0\n")
    assert "did not print one access token" in str(fetch_error(OAuth2(provider="command", token_command=str(silent))))


def test_a_hanging_command_is_ended_with_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    hanging = executable(tmp_path / "hang.sh", f"#!/bin/sh\nsleep 60 &\necho $! > {pid_file}\nwait\n")
    started = time.monotonic()
    error = fetch_error(OAuth2(provider="command", token_command=str(hanging)), timeout=1)
    assert error.transient and str(error) == "token_command: no token within 1 s"
    assert time.monotonic() - started < 5
    child = int(pid_file.read_text())
    wait_for(lambda: not running(child), timeout=5)


def running(pid: int) -> bool:
    """Whether a process runs (a zombie, waiting for whoever adopted it, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# --- the cache and the one retry ---------------------------------------------------------------


@dataclass
class Counted:
    """A provider that hands out numbered tokens (or fails), on a clock the test moves."""

    now: float = 1000.0
    lifetime: float = 3600.0
    failing: bool = False
    fetched: list[str] = field(default_factory=list)

    async def __call__(self) -> Token:
        if self.failing:
            self.fetched.append("error")
            raise TokenError("endpoint down", transient=True)
        self.fetched.append(f"t{len(self.fetched) + 1}")
        return Token(self.fetched[-1], self.lifetime)

    def source(self) -> TokenSource:
        return TokenSource(self, clock=lambda: self.now)


class Refused(Exception):
    pass


def test_a_token_is_kept_until_a_minute_before_it_expires() -> None:
    provider = Counted()
    source = provider.source()

    async def go() -> list[str]:
        got = [await source.token()]
        provider.now += 3600 - 61
        got.append(await source.token())
        provider.now += 2
        got.append(await source.token())
        return got

    assert asyncio.run(go()) == ["t1", "t1", "t2"]


def test_a_refused_token_is_fetched_again_once() -> None:
    provider = Counted()
    source = provider.source()
    tried: list[str] = []

    async def login(token: str) -> str:
        tried.append(token)
        if token == "t1":
            raise Refused(token)
        return token

    assert asyncio.run(with_token(source, login, Refused, "server")) == "t2"
    assert tried == ["t1", "t2"] and provider.fetched == ["t1", "t2"]


def test_connections_refused_together_share_the_one_new_token() -> None:
    provider = Counted()
    source = provider.source()
    tried: list[str] = []

    async def login(token: str) -> str:
        tried.append(token)
        await asyncio.sleep(0)  # both connections have their token before either hears back
        if token == "t1":
            raise Refused(token)
        return token

    async def two() -> list[str]:
        return list(await asyncio.gather(with_token(source, login, Refused, "server"), with_token(source, login, Refused, "server")))

    assert asyncio.run(two()) == ["t2", "t2"]
    assert sorted(tried) == ["t1", "t1", "t2", "t2"] and provider.fetched == ["t1", "t2"]


def test_a_burst_of_refusals_asks_the_endpoint_once_a_minute() -> None:
    provider = Counted()
    source = provider.source()

    async def refuse(token: str) -> None:
        raise Refused(token)

    async def attempts(count: int) -> None:
        for _ in range(count):
            with pytest.raises(Refused):
                await with_token(source, refuse, Refused, "server")

    asyncio.run(attempts(5))  # five mails in a row, each refused
    assert provider.fetched == ["t1", "t2"]
    provider.now += REFETCH_SECONDS
    asyncio.run(attempts(1))
    assert provider.fetched == ["t1", "t2", "t3"]


def test_after_a_failed_fetch_the_endpoint_rests() -> None:
    provider = Counted(failing=True)
    source = provider.source()

    async def ask() -> None:
        with pytest.raises(TokenError, match="endpoint down"):
            await source.token()

    for _ in range(3):
        asyncio.run(ask())
    assert provider.fetched == ["error"]
    provider.now += 5
    asyncio.run(ask())
    provider.now += 5  # the rest doubled to 10 s
    asyncio.run(ask())
    assert provider.fetched == ["error", "error"]
    provider.failing = False
    provider.now += 5
    assert asyncio.run(source.token()) == "t3"


# --- IMAP: a Dovecot that checks tokens with the identity provider -----------------------------


@contextlib.contextmanager
def oauth2_dovecot(idp: IdentityProvider, mailbox: str = BOX) -> Iterator[tuple[Dovecot, Account]]:
    server = Dovecot.start(oauth2_introspection=idp.introspection_url(mailbox))
    try:
        yield server, server.add_user(mailbox)  # the password is for the test's own APPENDs
    finally:
        server.stop()


def xoauth2_mailbox(server: Dovecot, account: Account, oauth2: OAuth2, name: str = "jasenpalvelu") -> str:
    return server.imap_toml(account, name=name, password="") + 'auth = "xoauth2"\n' + toml_table(oauth2, "imap.oauth2")


def ticket_subjects(config: Path) -> list[str]:
    database = config.parent.parent / "maild.db"  # the daemon fixture's sqlite_url
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
        return [row[0] for row in conn.execute("select subject from tickets")]


def test_imap_logs_in_with_xoauth2_and_a_revoked_token_is_replaced_once(idp: IdentityProvider, daemon) -> None:  # type: ignore[no-untyped-def]
    idp.state.policy.add(BOX)  # the application access policy lets the app at this mailbox
    idp.state.revoke_next = 1  # the first token is revoked before maild uses it
    with oauth2_dovecot(idp) as (server, account):
        server.append(account, mail(subject="Jäsenmaksu"))
        running = daemon(extra=xoauth2_mailbox(server, account, microsoft(idp)))
        wait_for(lambda: ticket_subjects(running.config) == ["Jäsenmaksu"])
        wait_for(lambda: server.messages(account, "Processed"))
        assert server.messages(account) == []
    first, second = idp.state.tokens
    assert [(token, active) for _, token, active in idp.state.introspected[:2]] == [(first, False), (second, True)]
    log = running.log.read_text()
    assert f"mailbox jasenpalvelu: 127.0.0.1 refused the OAuth2 token; trying once more with a new one" in log
    assert not leaks(log, idp), log


def test_imap_refused_tokens_a_wrong_secret_and_no_endpoint_are_logged_clearly_and_backed_off(  # type: ignore[no-untyped-def]
    idp: IdentityProvider, daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No access policy for the mailbox: every token is refused. The second mailbox has a wrong
    # secret; the third a token endpoint where nothing listens.
    monkeypatch.setenv("OAUTH_TEST_WRONG_SECRET", "wrong~secret~value")
    nowhere = f"https://127.0.0.1:{free_port()}/{TENANT}/oauth2/v2.0/token"
    with oauth2_dovecot(idp) as (server, account):
        running = daemon(extra="".join([
            xoauth2_mailbox(server, account, microsoft(idp), name="refused"),
            xoauth2_mailbox(server, account, microsoft(idp, client_secret_env="OAUTH_TEST_WRONG_SECRET"), name="wrongsecret"),
            xoauth2_mailbox(server, account, microsoft(idp, token_url=nowhere), name="unreachable"),
        ]))

        def said(mailbox: str, then: str) -> list[str]:
            return [line for line in running.log.read_text().splitlines() if f"mailbox {mailbox}:" in line and then in line]

        refused = wait_for(lambda: said("refused", "next try"))
        wrong = wait_for(lambda: said("wrongsecret", "next try"))
        unreachable = wait_for(lambda: said("unreachable", "reconnecting in"))
        time.sleep(1.5)  # time for retries, if the backoff did not hold them
        assert running.proc.poll() is None
        socket.create_connection(("127.0.0.1", running.port), timeout=5).close()  # the daemon works on
    assert f"XOAUTH2 login as {BOX} refused: [AUTHENTICATIONFAILED]" in refused[0]
    assert "no OAuth2 token: microsoft token endpoint" in wrong[0]
    assert "invalid_client: AADSTS7000215: Invalid client secret provided ([redacted])." in wrong[0]
    assert f"no OAuth2 token: microsoft token endpoint {nowhere}: ConnectionError" in unreachable[0]
    assert len(idp.state.tokens) == 2  # the refused mailbox: one token, then once more, then rest
    assert len(said("refused", "next try")) == len(said("wrongsecret", "next try")) == 1
    log = running.log.read_text()
    assert not leaks(log, idp, "wrong~secret~value"), log
    assert "Traceback" not in log


# --- SMTP: a smarthost that accepts XOAUTH2 ----------------------------------------------------


@dataclass
class XOAuth2Smarthost(SinkHandler):
    """A sink that takes AUTH XOAUTH2 only: the token must be one the identity provider issued
    for the user (as Exchange Online and Gmail check theirs). A refusal is reported as they do:
    a JSON status as a challenge, then 535 once the client answers it."""

    accepts: Callable[[str, str], bool] = lambda user, token: False
    attempts: list[tuple[str, bool]] = field(default_factory=list)

    async def auth_XOAUTH2(self, server, args):  # type: ignore[no-untyped-def]
        blob = base64.b64decode(args[1]) if len(args) > 1 else await server.challenge_auth("")
        fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        ok = self.accepts(user, token)
        self.attempts.append((user, ok))
        if ok:
            return AuthResult(success=True, auth_data=user)
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer", "scope": GOOGLE_SCOPE}))
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted")


@pytest.fixture
def smarthost(tmp_path: Path, idp: IdentityProvider) -> Iterator[tuple[XOAuth2Smarthost, int, Path]]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = XOAuth2Smarthost(accepts=lambda user, token: idp.state.active(token, user))
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
        auth_required=True, auth_require_tls=True, auth_exclude_mechanism=["LOGIN", "PLAIN"],
    )
    controller.start()
    yield handler, port, cert
    controller.stop()


@pytest.fixture
def google_outbound(make_instance, idp: IdentityProvider, smarthost, tmp_path: Path) -> App:  # type: ignore[no-untyped-def]
    handler, port, cert = smarthost
    key_file = idp.service_account_file(tmp_path / "sa.json")
    idp.state.delegated.add(BOX)
    extra = textwrap.dedent(f"""
        [outbound]
        transport = "smtp://127.0.0.1:{port}"
        starttls = true
        ca_file = "{cert}"
        username = "{BOX}"
        auth = "xoauth2"
        """) + toml_table(google(idp, key_file), "outbound.oauth2")
    instance = App(load_settings(str(make_instance(f"sqlite:///{tmp_path / 'maild.db'}", extra=extra))))
    db.upgrade(instance.settings.database_url)
    return instance


def outbox_rows(app: App) -> list[Outbox]:
    with Session(app.engine) as session:
        return list(session.exec(select(Outbox).order_by(Outbox.id)))


def test_smtp_sends_through_the_smarthost_with_xoauth2_replacing_a_revoked_token(  # type: ignore[no-untyped-def]
    google_outbound: App, idp: IdentityProvider, smarthost, caplog: pytest.LogCaptureFixture
) -> None:
    handler, _, _ = smarthost
    ticket_with_mail(google_outbound, count=2)
    idp.state.revoke_next = 1
    with caplog.at_level(logging.INFO, logger="maild"):
        drain(google_outbound.sender(), 2.0)
    assert [row.state for row in outbox_rows(google_outbound)] == ["sent", "sent"]
    assert len(handler.received) == 2 and handler.attempts[:2] == [(BOX, False), (BOX, True)]
    assert len(idp.state.tokens) == 2
    assert "smarthost 127.0.0.1 refused the OAuth2 token; trying once more with a new one" in caplog.text
    assert not leaks(caplog.text, idp)


def test_smtp_refused_tokens_keep_the_mail_queued_and_ask_the_endpoint_twice(  # type: ignore[no-untyped-def]
    google_outbound: App, idp: IdentityProvider, smarthost, caplog: pytest.LogCaptureFixture
) -> None:
    handler, _, _ = smarthost
    handler.accepts = lambda user, token: False  # the app lost its right to send as the mailbox
    ticket_with_mail(google_outbound, to=("a@example.fi", "b@example.fi", "c@example.fi"))  # one mail, three rows
    with caplog.at_level(logging.DEBUG):
        drain(google_outbound.sender(), 2.0)
    rows = outbox_rows(google_outbound)
    assert [row.state for row in rows] == ["queued"] * 3 and handler.received == []
    assert all(row.last_error and row.last_error.startswith("authentication failed: 535 5.7.8") for row in rows)
    assert len(idp.state.tokens) == 2  # three refusals in a burst: one token, then one more
    assert not leaks(caplog.text + "".join(row.last_error or "" for row in rows), idp), caplog.text


def test_smtp_without_a_token_keeps_the_mail_queued_with_the_reason(  # type: ignore[no-untyped-def]
    google_outbound: App, idp: IdentityProvider, smarthost
) -> None:
    handler, _, _ = smarthost
    idp.state.delegated.clear()  # domain-wide delegation withdrawn in the Admin console
    ticket_with_mail(google_outbound)
    drain(google_outbound.sender(), 1.5)
    (row,) = outbox_rows(google_outbound)
    assert row.state == "queued" and handler.attempts == []
    assert row.last_error == (
        f"no OAuth2 token: google token endpoint {idp.google_token_url}: unauthorized_client: Client is unauthorized "
        "to retrieve access tokens using this method, or client not authorized for any of the scopes requested."
    )


def test_a_missing_client_secret_stops_the_sender_at_start(make_instance, idp: IdentityProvider, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV)
    extra = f'\n[outbound]\ntransport = "smtp://127.0.0.1:25"\nusername = "{BOX}"\nauth = "xoauth2"\n'
    app = App(load_settings(str(make_instance(f"sqlite:///{tmp_path / 'maild.db'}", extra=extra + toml_table(microsoft(idp), "outbound.oauth2")))))
    with pytest.raises(ConfigError, match=f"environment variable {SECRET_ENV} is not set"):
        app.sender()
