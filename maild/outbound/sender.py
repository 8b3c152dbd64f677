"""The one place that sends: takes due outbox rows and delivers them through a transport.

Crash safety: a row is committed as ``sending`` before its SMTP transaction and as ``sent``
right after the server's 250. A crash between those two commits leaves the row in
``sending``; it is sent again once it is older than ``stale_after``. That window, the one
mail in flight on each connection, is the least the protocol allows: SMTP has no way to
ask a server whether it already accepted a message.

Several connections deliver at once. Mail of one ticket stays in order all the same:
``claim_due`` never hands out a ticket's mail while an earlier one of it is unsent.

Rows are claimed up to ``CLAIM_ROWS`` to a transaction (each claim and each record is a
commit that holds SQLite's one write lock, which filing and intake need too). A claimed row
whose delivery has not begun within a quarter of ``stale_after`` of its claim goes back to
the queue unsent: the tail of a slow batch never waits long enough to look abandoned to
another instance (which would send it too), and a delivery that has begun has the other
three quarters, more than the SMTP transport's timeout with the default settings.

A database error ends ``run`` (its supervisor starts it again after a pause), except when
results are recorded: that is retried until it succeeds, the connections waiting, so that
a database that fails for a while never has a mail sent twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from maild.outbound import outbox
from maild.outbound.transport import Result, Transport
from maild.store import tickets as store
from maild.store.tables import Outbox, Ticket, utcnow
from maild.supervise import Backoff, Tracker, describe, pause

log = logging.getLogger("maild.sender")

IDLE_SECONDS = 1.0
HOLD_SECONDS = 0.1
HOLD_AT_MOST_SECONDS = 2.0  # then one batch goes out, busy or not
CLAIM_ROWS = 32  # due rows claimed in one transaction (never fewer than the connections)
START_WITHIN = 0.25  # of stale_after: a claimed row not begun by then goes back unsent
RECORD_RETRY_SECONDS = (0.5, 30.0)  # first delay, cap


Row = tuple[int, str, str, bytes]  # id, return path, recipient, raw


class Sender:
    def __init__(
        self, engine: sa.Engine, transport: Callable[[], Transport], stale_after: timedelta = timedelta(minutes=2),
        connections: int = 4,
    ) -> None:
        self.engine = engine
        self.transports = [transport() for _ in range(connections)]
        self.stale_after = stale_after
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sender-db")
        self._results: asyncio.Queue[tuple[int, Result, asyncio.Future[None]]] = asyncio.Queue()
        self.hold: Callable[[], bool] = lambda: False  # True while intake is busy: intake goes first

    def claim(self, now: datetime | None = None) -> list[Row]:
        """Up to ``CLAIM_ROWS`` due rows (at least one per connection), stamped ``sending`` at
        ``now`` in one transaction. See the module docstring for why a batch is safe."""
        with Session(self.engine, expire_on_commit=False) as session:
            rows = outbox.claim_due(session, now or utcnow(), max(CLAIM_ROWS, len(self.transports)), self.stale_after)
            return [(row.id or 0, row.return_path, row.recipient, row.raw) for row in rows]

    def record(self, results: list[tuple[int, Result]]) -> None:
        """Store what the transport said, for several rows in one commit: sent, retry later,
        or failed for good."""
        now = utcnow()
        with Session(self.engine) as session:
            sent = [row_id for row_id, result in results if result.outcome == "sent"]
            if sent:
                session.execute(
                    sa.update(Outbox).where(col(Outbox.id).in_(sent)).values(state="sent", sent_at=now, last_error=None)
                )
            for row_id, result in results:
                if result.outcome != "sent":
                    self._record_unsent(session, row_id, result, now)
            session.commit()

    def _record_unsent(self, session: Session, row_id: int, result: Result, now: datetime) -> None:
        row = session.get(Outbox, row_id)
        if row is None:
            return
        row.last_error = result.detail[:2000]
        if result.outcome == "temporary" and row.attempts < outbox.MAX_ATTEMPTS:
            row.state, row.next_attempt_at = "queued", now + outbox.backoff(row.attempts)
            log.warning("mail %s to %s deferred (attempt %d): %s", row_id, row.recipient, row.attempts, result.detail)
        else:
            row.state = "failed"
            log.error("mail %s to %s failed: %s", row_id, row.recipient, result.detail)
            self._record_failure(session, row, result, now)

    @staticmethod
    def _record_failure(session: Session, row: Outbox, result: Result, now: datetime) -> None:
        if row.ticket_id is None:
            return
        ticket = session.get(Ticket, row.ticket_id)
        if ticket is None:
            return
        store.add_event(session, ticket, "delivery_failed", recipient=row.recipient, error=result.detail[:500], mail=row.kind)
        if row.recipient == ticket.requester:
            store.mark_undeliverable(session, row.recipient, now)

    async def run(self, stopping: asyncio.Event, health: Tracker | None = None) -> None:
        """Send until ``stopping``; mail in flight is finished, the rest stays queued."""
        health = health or Tracker("sender")
        loop = asyncio.get_running_loop()
        recorder = asyncio.create_task(self._recorder(stopping, health))
        try:
            held_since: float | None = None
            while not stopping.is_set():
                if self.hold():  # intake first; but a steady trickle of mail must not stop all sending
                    held_since = held_since or time.monotonic()
                    if time.monotonic() - held_since < HOLD_AT_MOST_SECONDS:
                        await pause(stopping, HOLD_SECONDS)
                        continue
                held_since = None
                claimed_at, started = utcnow(), time.monotonic()
                rows = await loop.run_in_executor(self._db, self.claim, claimed_at)
                health.ok()
                if rows:
                    deadline = started + START_WITHIN * self.stale_after.total_seconds()
                    await self._deliver(rows, stopping, claimed_at, deadline)
                else:
                    await pause(stopping, IDLE_SECONDS)
        finally:
            recorder.cancel()
            for transport in self.transports:
                await transport.close()

    async def _deliver(self, rows: list[Row], stopping: asyncio.Event, claimed_at: datetime, deadline: float) -> None:
        """Send a claimed batch over all connections; what is left at ``stopping`` or at the
        ``deadline`` (``time.monotonic()``) for beginning a delivery goes back to the queue."""
        pending: asyncio.Queue[Row] = asyncio.Queue()
        for row in rows:
            pending.put_nowait(row)
        async with asyncio.TaskGroup() as group:  # one connection failing stops the others
            for transport in self.transports:
                group.create_task(self._work(transport, pending, stopping, deadline))
        unsent = [pending.get_nowait()[0] for _ in range(pending.qsize())]
        if unsent:
            await asyncio.get_running_loop().run_in_executor(self._db, self.release, unsent, claimed_at)

    async def _work(self, transport: Transport, pending: asyncio.Queue[Row], stopping: asyncio.Event,
                    deadline: float) -> None:
        """One connection's share of a claimed batch. Each result is committed before the
        connection sends its next mail: at most one unrecorded mail per connection."""
        while not stopping.is_set() and not pending.empty() and time.monotonic() < deadline:
            row_id, return_path, recipient, raw = pending.get_nowait()
            result = await transport.deliver(return_path, recipient, raw)
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            await self._results.put((row_id, result, done))
            await done

    async def _recorder(self, stopping: asyncio.Event, health: Tracker) -> None:
        """Commit delivery results as they come, together when several are waiting."""
        while True:
            batch = [await self._results.get()]
            while not self._results.empty():
                batch.append(self._results.get_nowait())
            await self._record_until_done([(row_id, result) for row_id, result, _ in batch], stopping, health)
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _record_until_done(self, results: list[tuple[int, Result]], stopping: asyncio.Event, health: Tracker) -> None:
        """Record, retrying with backoff while the database fails. Only when maild stops first
        do the rows stay ``sending``, to be sent again after ``stale_after``."""
        loop = asyncio.get_running_loop()
        backoff = Backoff(*RECORD_RETRY_SECONDS)
        while True:
            try:
                await loop.run_in_executor(self._db, self.record, results)
                return
            except Exception as exc:
                health.failed(exc)
                if stopping.is_set():
                    log.error("could not record the delivery of %d mails: %s; they are sent again after %s",
                              len(results), describe(exc), self.stale_after)
                    return
                delay = backoff.next()
                log.error("could not record the delivery of %d mails: %s; trying again in %.1f s",
                          len(results), describe(exc), delay)
                await pause(stopping, delay)

    def release(self, row_ids: list[int], claimed_at: datetime) -> None:
        """Give claimed but unsent rows back to the queue (at shutdown, or not begun in time);
        only rows still under this claim: one taken again by another instance is left alone."""
        with Session(self.engine) as session:
            session.execute(
                sa.update(Outbox).where(col(Outbox.id).in_(row_ids), Outbox.state == "sending",
                                        Outbox.claimed_at == claimed_at)
                .values(state="queued", attempts=Outbox.attempts - 1)
            )
            session.commit()
