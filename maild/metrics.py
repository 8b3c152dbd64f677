"""Prometheus metrics at ``[metrics] listen`` (docs/operations.md), read from the database at scrape time.

Counting in the database rather than in process memory keeps the numbers right across the
daemon's two processes (listener and spool processor), across restarts and across several
instances on one PostgreSQL database: every instance reports the same totals. A scrape costs a
handful of indexed counts; answers are reused for ``CACHE_SECONDS`` so that scrapes in quick
succession do not add load.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlmodel import Session, func, select

from maild.store import backlog, health
from maild.store.tables import Counter, Inbound, utcnow

CACHE_SECONDS = 5.0


def _filed_outcome(state: str, error: str | None) -> str:
    if state == "quarantined":
        return "quarantined"
    return "duplicate" if (error or "").startswith("duplicate") else "filed"


class DatabaseCollector(Collector):
    """maild's metrics, counted in the database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > CACHE_SECONDS:
                self._cached = (time.monotonic(), self._read())
            yield from self._cached[1]

    def _read(self) -> list[Metric]:
        received = CounterMetricFamily("maild_messages_received", "Messages durably stored, by source.", labels=["source"])
        filed = CounterMetricFamily("maild_messages_filed", "Stored messages processed, by outcome.", labels=["outcome"])
        failed = CounterMetricFamily("maild_outbox_failed", "Outgoing mails that failed for good.")
        pending = GaugeMetricFamily("maild_spool_pending", "Stored messages waiting to be filed.")
        queued = GaugeMetricFamily("maild_outbox_queued", "Outgoing mails waiting to be sent.")
        quarantine = GaugeMetricFamily("maild_quarantine_messages", "Messages kept in the quarantine.")
        lookups = CounterMetricFamily("maild_member_lookup_failures", "Member lookup commands that failed or "
                                      "timed out (the mail was filed unlinked).")
        imap = GaugeMetricFamily("maild_imap_last_success_timestamp_seconds",
                                 "When each IMAP mailbox was last polled successfully.", labels=["mailbox"])
        with Session(self.engine) as session:
            for source, count in session.exec(select(Inbound.source, func.count()).group_by(Inbound.source)):
                received.add_metric([source], count)
            outcomes: dict[str, int] = {}
            done = select(Inbound.state, Inbound.error, func.count()).where(Inbound.state != "pending")
            for state, error, count in session.exec(done.group_by(Inbound.state, Inbound.error)):
                outcome = _filed_outcome(state, error)
                outcomes[outcome] = outcomes.get(outcome, 0) + count
            for outcome, count in sorted(outcomes.items()):
                filed.add_metric([outcome], count)
            failed.add_metric([], backlog.failed_mail(session))
            pending.add_metric([], backlog.spool(session)[0])
            queued.add_metric([], backlog.outbox(session)[0])
            quarantine.add_metric([], backlog.quarantined(session))
            failures = session.exec(select(Counter.value).where(Counter.name == "member_lookup_failures")).first()
            lookups.add_metric([], failures or 0)
        latest: dict[str, float] = {}
        for row in health.read(self.engine, utcnow()):  # of every instance, alive or not
            if row["name"].startswith("imap:") and row["last_success_at"]:
                mailbox = row["name"].removeprefix("imap:")
                latest[mailbox] = max(latest.get(mailbox, 0.0), row["last_success_at"].timestamp())
        for mailbox, stamp in sorted(latest.items()):
            imap.add_metric([mailbox], stamp)
        return [received, filed, failed, pending, queued, quarantine, lookups, imap]


def serve(engine: sa.Engine, listen: str) -> Any:
    """Start the HTTP endpoint (``/metrics``) in a thread of this process; raises OSError
    when the address cannot be bound, so a daemon that cannot serve metrics does not start."""
    from prometheus_client import start_http_server

    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(engine))
    server, _thread = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=registry)
    return server
