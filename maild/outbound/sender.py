"""The one place that sends: takes due outbox rows and delivers them through a transport.

Crash safety: a row is committed as ``sending`` before its SMTP transaction and as ``sent``
right after the server's 250. A crash between those two commits leaves the row in
``sending``; it is sent again once it is older than ``stale_after``. That window, one
mail per sender, is the least the protocol allows: SMTP has no way to ask a server
whether it already accepted a message.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session

from maild.outbound import outbox
from maild.outbound.transport import Result, Transport
from maild.store import tickets as store
from maild.store.tables import Outbox, Ticket, utcnow

log = logging.getLogger("maild.sender")

IDLE_SECONDS = 1.0
BATCH = 100


class Sender:
    def __init__(self, engine: sa.Engine, transport: Transport, stale_after: timedelta = timedelta(minutes=2)) -> None:
        self.engine = engine
        self.transport = transport
        self.stale_after = stale_after
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sender-db")

    def claim(self) -> list[tuple[int, str, str, bytes]]:
        with Session(self.engine, expire_on_commit=False) as session:
            rows = outbox.claim_due(session, utcnow(), BATCH, self.stale_after)
            return [(row.id or 0, row.return_path, row.recipient, row.raw) for row in rows]

    def record(self, row_id: int, result: Result) -> None:
        """Store what the transport said: sent, retry later, or failed for good."""
        with Session(self.engine) as session:
            row = session.get(Outbox, row_id)
            if row is None:
                return
            now = utcnow()
            row.last_error = None if result.outcome == "sent" else result.detail[:2000]
            if result.outcome == "sent":
                row.state, row.sent_at = "sent", now
            elif result.outcome == "temporary" and row.attempts < outbox.MAX_ATTEMPTS:
                row.state, row.next_attempt_at = "queued", now + outbox.backoff(row.attempts)
                log.warning("mail %s to %s deferred (attempt %d): %s", row_id, row.recipient, row.attempts, result.detail)
            else:
                row.state = "failed"
                log.error("mail %s to %s failed: %s", row_id, row.recipient, result.detail)
                self._record_failure(session, row, result)
            session.commit()

    @staticmethod
    def _record_failure(session: Session, row: Outbox, result: Result) -> None:
        if row.ticket_id is None:
            return
        ticket = session.get(Ticket, row.ticket_id)
        if ticket is None:
            return
        store.add_event(session, ticket, "delivery_failed", recipient=row.recipient, error=result.detail[:500], mail=row.kind)
        if row.recipient == ticket.requester:
            store.contact(session, row.recipient).undeliverable = True

    async def run(self, stopping: asyncio.Event) -> None:
        """Send until ``stopping``; the mail in flight is finished, the rest stays queued."""
        loop = asyncio.get_running_loop()
        while not stopping.is_set():
            rows = await loop.run_in_executor(self._db, self.claim)
            for index, (row_id, return_path, recipient, raw) in enumerate(rows):
                if stopping.is_set():
                    await loop.run_in_executor(self._db, self.release, [r[0] for r in rows[index:]])
                    break
                result = await self.transport.deliver(return_path, recipient, raw)
                await loop.run_in_executor(self._db, self.record, row_id, result)
            if not rows:
                try:
                    await asyncio.wait_for(stopping.wait(), IDLE_SECONDS)
                except asyncio.TimeoutError:
                    pass
        await self.transport.close()
        self._db.shutdown(wait=True)

    def release(self, row_ids: list[int]) -> None:
        """Give claimed but unsent rows back to the queue (at shutdown)."""
        with Session(self.engine) as session:
            session.execute(
                sa.update(Outbox).where(Outbox.id.in_(row_ids), Outbox.state == "sending")  # type: ignore[attr-defined]
                .values(state="queued", attempts=Outbox.attempts - 1)
            )
            session.commit()
