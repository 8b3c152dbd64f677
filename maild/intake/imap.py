"""Poll shared mailboxes over IMAP: a thin aioimaplib adapter over the spool (docs/configuration.md and 6).

One task per ``[[imap]]`` entry, each with a connection of its own, so one broken server
stalls nobody else. After login and SELECT, a cycle is::

    UID SEARCH above last_uid -> UID FETCH (BODY.PEEK[]) in batches -> accept the batch
    (returns once durably committed, in mailbox order) -> save last_uid -> one after-action

and then a wait: IMAP IDLE when the server offers it and ``idle = true``, else (and at most)
``poll_seconds``. A message is moved, flagged or deleted only after its ``accept`` returned;
one that could not be stored is left untouched and fetched again at the next attempt. Any
network or protocol error ends the connection, and the poller reconnects after an
exponential backoff with jitter; a refused login is retried slowly.

``after = "flag"`` leaves messages in the folder. People reading a shared mailbox set
``\\Seen`` themselves, so "unseen" cannot mean "not stored": maild sets ``\\Seen`` plus the
keyword ``$MaildStored``, and every search skips that keyword. The saved UID keeps the
search to new mail; the keyword keeps a rescan (UIDVALIDITY changed, state lost) from
fetching again what was stored.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

import aioimaplib
import sqlalchemy as sa
from aioimaplib.aioimaplib import Command, Response, quoted

from maild.config import ConfigError, Imap, Settings
from maild.core.addresses import mailboxes
from maild.intake.imap_state import FolderState, load_state, save_state
from maild.mail import Envelope
from maild.oauth2 import TokenError, token_source, with_token
from maild.supervise import Backoff, Supervisor, Tracker
from maild.supervise import describe as describe_error

log = logging.getLogger("maild.imap")

# Store a batch durably, in the order given; per message the inbound id or the error.
Accept = Callable[[list[tuple[bytes, Envelope]]], Awaitable[list[int | BaseException]]]

STORED_KEYWORD = "$MaildStored"
STORED_FLAGS = f"(\\Seen {STORED_KEYWORD})"
# aioimaplib parses a response recursively, one call per line, and a FETCH response is held in
# memory whole: a batch is at most this many messages and (unless one message is bigger) bytes.
BATCH_UIDS = 100
BATCH_BYTES = 8 * 1024 * 1024
COMMAND_SECONDS = 60.0  # for FETCH: the longest silence while data is due
REIDLE_SECONDS = 29 * 60  # RFC 2177: re-issue IDLE at least every 29 minutes
RETRY_SECONDS = (1.0, 300.0)  # network and protocol errors: first delay, cap
LOGIN_RETRY_SECONDS = (120.0, 3600.0)  # refused logins: never hammer the server
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To")
HEADER_LIMIT = 256 * 1024

UID_RE = re.compile(rb"\bUID (\d+)")
SIZE_RE = re.compile(rb"\bRFC822\.SIZE (\d+)")
UIDVALIDITY_RE = re.compile(rb"\[UIDVALIDITY (\d+)\]")


class ImapError(Exception):
    """The server answered NO or BAD, or the conversation broke off."""


class CommandFailed(ImapError):
    """The server answered NO or BAD; the connection itself still works."""


class LoginRefused(ImapError):
    """Credentials were refused (or cannot be read): retried slowly."""


class StoreFailed(Exception):
    """A fetched message could not be stored; it stays in the folder for the next attempt."""


def start_pollers(
    settings: Settings, accept: Accept, engine: sa.Engine, supervisor: Supervisor
) -> list[asyncio.Task[None]]:
    """One supervised task per ``[[imap]]`` entry (``imap:<name>``); each returns after
    ``stopping`` once its batch is stored."""
    # aioimaplib reports routine protocol chatter (untagged responses it ignores) at INFO.
    logging.getLogger("aioimaplib").setLevel(logging.WARNING)
    tasks = []
    for box in settings.imap:
        poller = Poller(box, accept, engine, supervisor.stopping, str(settings.path(box.ca_file)) if box.ca_file else None)
        tasks.append(supervisor.spawn(f"imap:{box.name}", poller.run))
    return tasks


async def stop_pollers(tasks: list[asyncio.Task[None]], timeout: float) -> None:
    """Wait for the pollers to finish their current batch (``stopping`` is set); cancel the late.

    A poller cancelled inside a batch has moved nothing that was not stored; what it stored
    without moving is recognised as stored at the next start.
    """
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=timeout)
    for task in late:
        log.warning("%s: still busy after %.0f s; cancelled", task.get_name(), timeout)
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)


class Poller:
    """Polls one mailbox until ``stopping`` is set. Network, protocol and storage errors are
    logged and retried here (reconnecting after a backoff); anything else is raised, for the
    supervisor to log and start the poller again."""

    def __init__(
        self, box: Imap, accept: Accept, engine: sa.Engine, stopping: asyncio.Event, ca_file: str | None
    ) -> None:
        self.box = box
        self.accept = accept
        self.engine = engine
        self.stopping = stopping
        self.ca_file = ca_file
        self.retry = Backoff(*RETRY_SECONDS)
        self.login_retry = Backoff(*LOGIN_RETRY_SECONDS)
        self.health = Tracker(f"imap:{box.name}")

    async def run(self, health: Tracker | None = None) -> None:
        box = self.box
        self.health = health or self.health
        log.info("mailbox %s: polling %s as %s on %s:%d (%s)", box.name, box.folder, box.username, box.host, box.port, box.security)
        while not self.stopping.is_set():
            delay = await self._attempt()
            if delay:
                await first_done(self.stopping.wait(), timeout=delay)
        log.info("mailbox %s: stopped", box.name)

    async def _attempt(self) -> float:
        """One connection from login to its end; returns the seconds to wait before the next."""
        name = self.box.name
        session = None
        try:
            session = await self._connect()
            if session is not None:
                await self._poll(session)
                await session.logout()
            return 0.0
        except LoginRefused as exc:
            delay = self.login_retry.next()
            log.error("mailbox %s: %s; check the credentials; next try in %.0f s", name, exc, delay)
            self.health.failed(exc)
            return delay
        except StoreFailed as exc:
            delay = self.retry.next()
            log.error("mailbox %s: %s; next try in %.1f s", name, exc, delay)
            self.health.failed(exc)
            return delay
        except (OSError, ImapError, aioimaplib.AioImapException) as exc:  # TimeoutError is an OSError
            delay = self.retry.next()
            log.warning("mailbox %s: %s; reconnecting in %.1f s", name, describe(exc), delay)
            self.health.failed(describe(exc))
            return delay
        finally:
            if session is not None:
                session.abort()

    async def _connect(self) -> Session | None:
        """A logged-in session, or None when maild stops first."""
        task = asyncio.ensure_future(connect(self.box, self.ca_file))
        if await first_done(task, self.stopping.wait()) is not task:
            return None
        session = task.result()
        self.login_retry.reset()
        return session

    async def _poll(self, session: Session) -> None:
        box = self.box
        state = await self._resume(await session.select(box.folder))
        await self._prepare_target(session)
        await self._finish_after_actions(session, state.last_uid)
        while not self.stopping.is_set():
            state = await self._sync(session, state)
            self.retry.reset()
            self.health.ok()
            await session.wait_for_news(box.poll_seconds, self.stopping, box.idle)

    async def _resume(self, uidvalidity: int) -> FolderState:
        """The saved state, or a fresh one (a full scan) when there is none or UIDVALIDITY changed."""
        box = self.box
        saved = await asyncio.to_thread(load_state, self.engine, box.name, box.folder)
        if saved is not None and saved.uidvalidity == uidvalidity:
            return saved
        if saved is not None:
            log.warning(
                "mailbox %s: UIDVALIDITY of %s changed from %d to %d; rescanning the folder "
                "(messages already stored are recognised by Message-ID)",
                box.name, box.folder, saved.uidvalidity, uidvalidity,
            )
        state = FolderState(uidvalidity, 0)
        await asyncio.to_thread(save_state, self.engine, box.name, box.folder, state)
        return state

    async def _prepare_target(self, session: Session) -> None:
        """Create the folder to move to when missing. A failure is logged, not fatal: storing
        goes on, and the moves fail (and are logged) until the folder exists."""
        if self.box.after.startswith("move:"):
            try:
                await session.ensure_folder(self.box.after[5:])
            except CommandFailed as exc:
                log.error("mailbox %s: %s", self.box.name, exc)

    @property
    def _unmarked(self) -> tuple[str, ...]:
        """Search criteria that leave out what ``after = "flag"`` marked as stored."""
        return ("UNKEYWORD", STORED_KEYWORD) if self.box.after == "flag" else ()

    async def _finish_after_actions(self, session: Session, last_uid: int) -> None:
        """Apply the after-action to messages stored earlier but still waiting for it (a crash
        between commit and move, a failed MOVE): everything up to ``last_uid`` is stored."""
        if last_uid == 0:
            return
        waiting = await session.search("UID", f"1:{last_uid}", *self._unmarked)
        waiting = [uid for uid in waiting if uid <= last_uid]
        if waiting:
            log.info("mailbox %s: %d stored messages still waiting for %s", self.box.name, len(waiting), self.box.after)
            await self._after(session, waiting)

    async def _sync(self, session: Session, state: FolderState) -> FolderState:
        """Fetch and store everything above ``last_uid``; returns the new state.

        ``last_uid`` moves only over stored messages: a UID that the server left out of a
        reply (of sizes or of messages) holds it below, so that it is fetched again."""
        await session.noop()  # lets the server report what arrived since the last command
        found = await session.search("UID", f"{state.last_uid + 1}:*", *self._unmarked)
        uids = [uid for uid in found if uid > state.last_uid]  # "n:*" also matches the highest UID
        hold: int | None = None  # the first UID found but not stored: last_uid stays below it
        for chunk in chunks(uids, BATCH_UIDS):
            if self.stopping.is_set():
                break
            done: set[int] = set()
            for batch in by_size(chunk, await session.sizes(chunk), BATCH_BYTES):
                stored, failure = await self._store_batch(session, batch)
                done.update(stored)
                hold = hold or next((uid for uid in chunk if uid <= batch[-1] and uid not in done), None)
                state = await self._save(state, hold - 1 if hold else batch[-1])
                if stored:
                    log.info("mailbox %s: stored %d messages (UID %d-%d)", self.box.name, len(stored), stored[0], stored[-1])
                    await self._after(session, stored)  # exactly these: stored, so safe to move
                if failure:
                    raise failure
            hold = hold or next((uid for uid in chunk if uid not in done), None)  # sizes left out at its end
        return state

    async def _store_batch(self, session: Session, uids: list[int]) -> tuple[list[int], StoreFailed | None]:
        """Fetch and store; returns the UIDs stored and, if one could not be, why."""
        fetched = await session.fetch(uids)
        missing = sorted(set(uids) - {uid for uid, _ in fetched})
        if missing:
            log.warning("mailbox %s: the server sent no message for UID %s; fetched again later",
                        self.box.name, uid_set(missing))
        results = await self.accept([(raw, imap_envelope(raw, self.box)) for _, raw in fetched])
        failed = {uid: result for (uid, _), result in zip(fetched, results) if isinstance(result, BaseException)}
        stored = [uid for uid, _ in fetched if uid not in failed]
        if not failed:
            return stored, None
        first = min(failed)
        return stored, StoreFailed(f"could not store UID {first}: {describe(failed[first])}; it stays in {self.box.folder}")

    async def _save(self, state: FolderState, last_uid: int) -> FolderState:
        """Remember that everything up to ``last_uid`` is stored (when that is news)."""
        if last_uid <= state.last_uid:
            return state
        state = FolderState(state.uidvalidity, last_uid)
        await asyncio.to_thread(save_state, self.engine, self.box.name, self.box.folder, state)
        return state

    async def _after(self, session: Session, uids: list[int]) -> None:
        """Move, flag or delete stored messages. A refusal does not stop intake: they are stored,
        the saved UID keeps them from being fetched again, and the next connection retries."""
        after = self.box.after
        try:
            if after == "flag":
                await session.add_flags(uids, STORED_FLAGS)
            elif after == "delete":
                await session.delete(uids)
            else:
                await session.move(uids, after[5:])
        except CommandFailed as exc:
            log.error(
                "mailbox %s: %s; %d stored messages stay in %s until the next connection",
                self.box.name, exc, len(uids), self.box.folder,
            )


async def connect(box: Imap, ca_file: str | None) -> Session:
    """Connect (TLS, STARTTLS or plain), log in and read the capabilities.

    XOAUTH2: a refused token is replaced by a fresh one once, on a new connection (servers may
    close or slow down one with a failed login); a second refusal is a refused login like a
    wrong password. No token: a set-up problem is a refused login too, a network problem a
    connection error.
    """
    if box.oauth2 is None:
        return await open_session(box, ca_file, lambda session: session.login(box.username, box_password(box)))

    async def with_xoauth2(token: str) -> Session:
        return await open_session(box, ca_file, lambda session: session.xoauth2(box.username, token))

    try:
        return await with_token(token_source(box.oauth2), with_xoauth2, LoginRefused, f"mailbox {box.name}: {box.host}")
    except TokenError as exc:
        raise (ImapError if exc.transient else LoginRefused)(f"no OAuth2 token: {exc}") from None


async def open_session(box: Imap, ca_file: str | None, log_in: Callable[[Session], Awaitable[None]]) -> Session:
    """A connection, greeted, under TLS as configured, and logged in by ``log_in``."""
    lost = asyncio.Event()
    context = tls_context(ca_file) if box.security != "none" else None
    client = aioimaplib.IMAP4(
        box.host, box.port, timeout=COMMAND_SECONDS, conn_lost_cb=lambda _exc: lost.set(),
        ssl_context=context if box.security == "tls" else None,
    )
    session = Session(client, lost)
    try:
        await session.unless_lost(client.wait_hello_from_server())
        if context is not None and box.security == "starttls":
            await session.starttls(context, box.host)
        await log_in(session)
    except BaseException:
        session.abort()
        raise
    return session


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verify the server's certificate and name: against the system CAs, or ``ca_file``."""
    return ssl.create_default_context(cafile=ca_file)


def box_password(box: Imap) -> str:
    try:
        return box.secret()
    except (ConfigError, OSError) as exc:
        raise LoginRefused(f"cannot read the password: {exc}") from exc


class Session:
    """One connection. Every command fails at once when the connection is lost, and any
    error makes the whole session unusable: the poller drops it and reconnects."""

    def __init__(self, client: aioimaplib.IMAP4, lost: asyncio.Event) -> None:
        self.client = client
        self.lost = lost

    @property
    def capabilities(self) -> set[str]:
        return {item.upper() for item in self.client.protocol.capabilities}

    async def unless_lost(self, awaitable: Awaitable[Any], timeout: float | None = COMMAND_SECONDS) -> Any:
        command = asyncio.ensure_future(awaitable)
        winner = await first_done(command, self.lost.wait(), timeout=timeout)
        if winner is command:
            return command.result()
        if winner is None:
            raise TimeoutError(f"no answer from the server within {timeout:.0f} s")
        raise ImapError("connection lost")

    async def call(self, what: str, awaitable: Awaitable[Response], timeout: float | None = COMMAND_SECONDS) -> Response:
        """Run a command; anything but OK raises CommandFailed naming the command."""
        response = await self.unless_lost(awaitable, timeout)
        if response.result != "OK":
            raise CommandFailed(f"{what}: {response.result} {last_text(response)}")
        return response

    async def starttls(self, context: ssl.SSLContext, host: str) -> None:
        """Upgrade the connection; never fall back to plain text."""
        if "STARTTLS" not in self.capabilities:
            raise ImapError("the server does not offer STARTTLS")
        protocol = self.client.protocol
        await self.call("STARTTLS", protocol.execute(Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)))
        upgrade = protocol.loop.start_tls(protocol.transport, protocol, context, server_hostname=host)
        protocol.transport = await self.unless_lost(upgrade)
        await self.unless_lost(protocol.capability())  # RFC 3501: capabilities may differ under TLS

    async def login(self, username: str, password: str) -> None:
        await self._authenticated(f"login as {username}", self.client.login(quoted(username), password))

    async def xoauth2(self, username: str, token: str) -> None:
        """AUTHENTICATE XOAUTH2 with the initial response (aioimaplib's own ``xoauth2`` waits
        forever when the server answers a refusal with a challenge, as Dovecot and Gmail do)."""
        protocol = self.client.protocol
        command = SaslCommand(protocol, "XOAUTH2", xoauth2_response(username, token))
        await self._authenticated(f"XOAUTH2 login as {username}", protocol.execute(command, scrub=command.args[1]))

    async def _authenticated(self, what: str, awaitable: Awaitable[Response]) -> None:
        response = await self.unless_lost(awaitable)
        if response.result != "OK":
            text = last_text(response)
            if "[UNAVAILABLE]" in text:  # RFC 5530: temporary, not the credentials
                raise ImapError(f"{what}: {text}")
            raise LoginRefused(f"{what} refused: {text}")
        self.client.protocol.state = aioimaplib.AUTH  # LOGIN sets it itself; AUTHENTICATE does not
        await self.unless_lost(self.client.protocol.capability())  # they change after login

    async def select(self, folder: str) -> int:
        """Select the folder; returns its UIDVALIDITY."""
        response = await self.call(f"SELECT {folder}", self.client.select(mailbox_arg(folder)))
        for line in response.lines:
            match = UIDVALIDITY_RE.search(line)
            if match:
                return int(match[1])
        raise ImapError(f"SELECT {folder}: the server sent no UIDVALIDITY")

    async def noop(self) -> None:
        await self.call("NOOP", self.client.noop())

    async def search(self, *criteria: str) -> list[int]:
        response = await self.call("UID SEARCH", self.client.uid_search(*criteria, charset=None))
        return parse_search(response.lines)

    async def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        response = await self.call("UID FETCH (RFC822.SIZE)", self.client.uid("fetch", uid_set(uids), "(UID RFC822.SIZE)"))
        return parse_sizes(response.lines)

    async def fetch(self, uids: Sequence[int]) -> list[tuple[int, bytes]]:
        """The raw messages, without setting \\Seen; the timeout applies to silence only."""
        response = await self.call(
            "UID FETCH (BODY.PEEK[])", self.client.uid("fetch", uid_set(uids), "(UID BODY.PEEK[])"), timeout=None
        )
        return parse_bodies(response.lines)

    async def add_flags(self, uids: Sequence[int], flags: str) -> None:
        await self.call("UID STORE", self.client.uid("store", uid_set(uids), "+FLAGS.SILENT", flags))

    async def delete(self, uids: Sequence[int]) -> None:
        """Mark deleted and expunge: only these UIDs with UIDPLUS, else the folder's deleted mail."""
        await self.add_flags(uids, "(\\Deleted)")
        if "UIDPLUS" in self.capabilities:
            await self.call("UID EXPUNGE", self.client.uid("expunge", uid_set(uids)))
        else:
            await self.call("EXPUNGE", self.client.expunge())

    async def move(self, uids: Sequence[int], folder: str) -> None:
        """UID MOVE where offered, else COPY and delete."""
        target = mailbox_arg(folder)
        if "MOVE" in self.capabilities:
            await self.call(f"UID MOVE {folder}", self.client.uid("move", uid_set(uids), target))
            return
        await self.call(f"UID COPY {folder}", self.client.uid("copy", uid_set(uids), target))
        await self.delete(uids)

    async def ensure_folder(self, folder: str) -> None:
        name = mailbox_arg(folder)
        listed = await self.call(f"LIST {folder}", self.client.list('""', name))
        if len(listed.lines) < 2:  # only the tagged "List completed"
            await self.call(f"CREATE {folder}", self.client.create(name))

    @property
    def can_idle(self) -> bool:
        return "IDLE" in self.capabilities

    async def wait_for_news(self, seconds: float, stopping: asyncio.Event, idle: bool = True) -> None:
        """Return when the server reports a change (IDLE), after ``seconds``, or when maild stops."""
        if not (idle and self.can_idle):
            await first_done(stopping.wait(), self.lost.wait(), timeout=seconds)
            return
        command = await self.unless_lost(self.client.idle_start(timeout=REIDLE_SECONDS))
        pushed = self.client.wait_server_push(REIDLE_SECONDS)
        await first_done(pushed, stopping.wait(), self.lost.wait(), timeout=min(seconds, REIDLE_SECONDS))
        if not self.lost.is_set():
            self.client.idle_done()
        await self.call("IDLE", command)

    async def logout(self) -> None:
        await self.call("LOGOUT", self.client.logout(), timeout=10)

    def abort(self) -> None:
        """Drop the connection (idempotent), including one still being made."""
        self.client._client_task.cancel()  # aioimaplib starts connecting in IMAP4.__init__
        transport = self.client.protocol.transport
        if transport is not None:
            transport.close()


class SaslCommand(Command):
    """AUTHENTICATE with an initial response (RFC 4959). A challenge after it is an error report
    (XOAUTH2's JSON status): answered with an empty response, the server ends the exchange
    with its tagged NO."""

    def __init__(self, protocol: aioimaplib.IMAP4ClientProtocol, mechanism: str, initial: str) -> None:
        super().__init__("AUTHENTICATE", protocol.new_tag(), mechanism, initial, loop=protocol.loop)
        self.protocol = protocol

    def append_to_resp(self, line: bytes, result: str = "Pending") -> None:
        super().append_to_resp(line, result)
        if result == "Pending" and line.startswith(b"+"):
            self.protocol.transport.write(b"\r\n")


def xoauth2_response(username: str, token: str) -> str:
    """The XOAUTH2 initial client response: ``user=U^Aauth=Bearer T^A^A`` in base64."""
    return base64.b64encode(f"user={username}\x01auth=Bearer {token}\x01\x01".encode()).decode("ascii")


async def first_done(*awaitables: Awaitable[Any], timeout: float | None = None) -> asyncio.Future[Any] | None:
    """Wait for the first to finish and cancel the others; returns it (the earliest given of
    those done), or None on timeout. Pass coroutines or tasks of your own: the rest are cancelled."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    return next((task for task in tasks if task.done() and not task.cancelled()), None)


def imap_envelope(raw: bytes, box: Imap) -> Envelope:
    return Envelope(source="imap", mail_from=None, recipients=envelope_recipients(raw, box.username), mailbox=box.name)


def envelope_recipients(raw: bytes, username: str) -> tuple[str, ...]:
    """Delivered-To and X-Original-To (the MTA's record of the envelope), then the mailbox's own
    address: what SMTP would have given as RCPT TO, so that queue selection works alike."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(header_block(raw))
    values = [str(value) for name in RECIPIENT_HEADERS for value in headers.get_all(name, [])]
    found = [mailbox.address for mailbox in mailboxes(values)]
    if "@" in username:
        found.append(username.lower())
    return tuple(dict.fromkeys(found))


def header_block(raw: bytes) -> bytes:
    """The header section alone (bounded), so that a big message is not decoded for two headers."""
    ends = [end for end in (raw.find(b"\r\n\r\n", 0, HEADER_LIMIT), raw.find(b"\n\n", 0, HEADER_LIMIT)) if end >= 0]
    return raw[: min(ends)] if ends else raw[:HEADER_LIMIT]


def chunks(items: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def by_size(uids: Sequence[int], sizes: dict[int, int], limit: int) -> list[list[int]]:
    """Consecutive groups of at most ``limit`` bytes (a bigger message goes alone); UIDs
    without a size have vanished since the search and are left out."""
    groups: list[list[int]] = []
    total = 0
    for uid in uids:
        if uid not in sizes:
            continue
        if not groups or total + sizes[uid] > limit:
            groups.append([])
            total = 0
        groups[-1].append(uid)
        total += sizes[uid]
    return groups


def uid_set(uids: Iterable[int]) -> str:
    """A compact IMAP sequence set: [1, 2, 3, 7] -> "1:3,7"."""
    runs: list[list[int]] = []
    for uid in sorted(uids):
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return ",".join(str(first) if first == last else f"{first}:{last}" for first, last in runs)


def parse_search(lines: list[Any]) -> list[int]:
    """UIDs from the untagged SEARCH lines (all but the last, tagged, line)."""
    return sorted(int(token) for line in lines[:-1] for token in bytes(line).split() if token.isdigit())


def parse_sizes(lines: list[Any]) -> dict[int, int]:
    sizes = {}
    for line in lines:
        uid, size = UID_RE.search(line), SIZE_RE.search(line)
        if uid and size:
            sizes[int(uid[1])] = int(size[1])
    return sizes


def parse_bodies(lines: list[Any]) -> list[tuple[int, bytes]]:
    """(UID, message) pairs: aioimaplib gives each literal as a bytearray between the line that
    announced it (``1 FETCH (UID 7 BODY[] {123}``) and the line that closes the item."""
    found = []
    for index, item in enumerate(lines):
        if not isinstance(item, bytearray) or index == 0 or b"BODY[]" not in lines[index - 1]:
            continue
        closing = lines[index + 1] if index + 1 < len(lines) else b""
        uid = UID_RE.search(lines[index - 1]) or UID_RE.search(closing)
        if uid:
            found.append((int(uid[1]), bytes(item)))
    return found


def last_text(response: Response) -> str:
    return bytes(response.lines[-1]).decode("utf-8", "replace") if response.lines else ""


def mailbox_arg(name: str) -> str:
    """A folder name as a quoted IMAP argument, in modified UTF-7 (RFC 3501 5.1.3)."""
    return quoted(imap_utf7(name))


def imap_utf7(name: str) -> str:
    """"Käsitelty" -> "K&AOQ-sitelty": printable ASCII stays, "&" becomes "&-", the rest is
    UTF-16 in base64 with "," for "/"."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).rstrip(b"=").replace(b"/", b",")
            out.append(f"&{encoded.decode('ascii')}-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, ImapError) and text:
        return text
    return describe_error(exc)
