"""Sweep benchmark: every scheduled sweep on a database of N tickets (10% open).

Fills a fresh SQLite database (or an empty PostgreSQL one) with N tickets spread over two
years (10% open, some pending, some resolved; 3% of the open ones still unanswered), then
times each sweep as of "now" (the first run sends what is due) and five minutes later (the
steady state of a daemon that sweeps every five minutes), and prints the peak RSS.

    .venv/bin/python bench/sweeps.py [-n 100000] [--db-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from maild.app import App
from maild.config import Settings
from maild.schedule import JOBS, run_job
from maild.store import db
from maild.store.tables import Ticket

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2027, 12, 7, 9, 0, tzinfo=timezone.utc)


def fill(engine: sa.Engine, n: int) -> None:
    rng = random.Random(7)
    rows = []
    for number in range(1, n + 1):
        created = NOW - timedelta(minutes=rng.randint(0, 2 * 365 * 24 * 60))
        roll = rng.random()
        status = "open" if roll < 0.05 else "new" if roll < 0.08 else "pending" if roll < 0.10 else "resolved" if roll < 0.12 else "closed"
        if status in ("new", "open", "pending"):
            created = NOW - timedelta(minutes=rng.randint(0, 30 * 24 * 60))
        rows.append({
            "number": number, "queue": rng.choice(["jasenasiat", "laskutus", "jasenhakemukset", "lakineuvonta"]),
            "status": status, "priority": rng.choice(["low", "normal", "normal", "high", "urgent"]),
            "subject": f"Asia {number}", "requester": f"jasen{number % 20000}@example.fi",
            "assignee": None if rng.random() < 0.5 else "maija@liitto.fi", "confidential": False, "tags": [],
            "other_queues": [], "cc": [], "created_at": created, "updated_at": created,
            "status_changed_at": created + timedelta(hours=rng.randint(0, 48)),
            "resolved_at": created if status in ("resolved", "closed") else None,
            # most open tickets have had their first answer; a few wait for one
            "first_response_at": None if rng.random() < 0.03 else created + timedelta(hours=2),
        })
        if len(rows) == 5000:
            with engine.begin() as conn:
                conn.execute(sa.insert(Ticket), rows)
            rows = []
    if rows:
        with engine.begin() as conn:
            conn.execute(sa.insert(Ticket), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--db-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maild-sweeps-") as tmp:
        url = args.db_url or f"sqlite:///{tmp}/maild.db"
        db.upgrade(url)
        settings = Settings(
            database={"url": url}, instance={"data_dir": f"{tmp}/var", "secret_key": "bench"},
            rules={"file": str(REPO / "rules.yaml"), "templates": str(REPO / "templates")},
        )
        app = App(settings)
        started = time.perf_counter()
        fill(app.engine, args.n)
        print(f"{args.n} tickets written in {time.perf_counter() - started:.1f} s")
        print(f"{'sweep':16} {'first run':>10} {'(due)':>7} {'next run':>10}")
        for name in JOBS:
            started = time.perf_counter()
            actions = run_job(app.pipeline, name, NOW)
            first = time.perf_counter() - started
            started = time.perf_counter()
            again = run_job(app.pipeline, name, NOW + timedelta(minutes=5))
            steady = time.perf_counter() - started
            print(f"{name:16} {first:9.2f}s {len(actions):7} {steady:9.2f}s  ({len(again)} due)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
