"""Sweep benchmark: every scheduled sweep on a database of N tickets (10% open).

Fills a fresh SQLite database (or an empty PostgreSQL one) with N tickets spread over two
years (10% open, some pending, some resolved; 3% of the open ones still unanswered), then
times each sweep as of "now" (the first run sends what is due) and five minutes later (the
steady state of a daemon that sweeps every five minutes). Each size is swept in a process of
its own, filled by another, so its peak RSS is that of the sweeps alone: it should not grow
with N.

    .venv/bin/python bench/sweeps.py [-n 10000 -n 100000] [--db-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

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


def app_for(url: str, tmp: str) -> App:
    return App(Settings(
        database={"url": url}, instance={"data_dir": f"{tmp}/var", "secret_key": "bench"},
        rules={"file": str(REPO / "rules.yaml"), "templates": str(REPO / "templates")},
    ))


def fill_database(url: str, n: int) -> None:
    fill(db.make_engine(url), n)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sweep_all(url: str, tmp: str, results: Any) -> None:
    """Every sweep twice (now, and five minutes later), in this process: times, due counts, RSS."""
    app = app_for(url, tmp)
    app.pipeline.engine.connect().close()
    rows, before = [], peak_rss_mb()
    for name in JOBS:
        started = time.perf_counter()
        first = run_job(app.pipeline, name, NOW)
        middle = time.perf_counter()
        again = run_job(app.pipeline, name, NOW + timedelta(minutes=5))
        rows.append((name, middle - started, len(first), time.perf_counter() - middle, len(again)))
    results.put({"rows": rows, "before": before, "peak": peak_rss_mb()})


def bench(n: int, db_url: str | None, spawn: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="maild-sweeps-") as tmp:
        url = db_url or f"sqlite:///{tmp}/maild.db"
        db.upgrade(url)
        started = time.perf_counter()
        filler = spawn.Process(target=fill_database, args=(url, n))
        filler.start()
        filler.join()
        print(f"\n{n} tickets written in {time.perf_counter() - started:.1f} s")
        results = spawn.Queue()
        sweeper = spawn.Process(target=sweep_all, args=(url, tmp, results))
        sweeper.start()
        outcome = results.get()
        sweeper.join()
    print(f"{'sweep':16} {'first run':>10} {'(due)':>7} {'next run':>10}")
    for name, first, due, steady, again in outcome["rows"]:
        print(f"{name:16} {first:9.2f}s {due:7} {steady:9.2f}s  ({again} due)")
    print(f"peak RSS of the sweeping process: {outcome['peak']:.0f} MB ({outcome['before']:.0f} MB before the first sweep)")
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, action="append", help="tickets (repeat for several sizes; default 10000 and 100000)")
    parser.add_argument("--db-url", help="an empty database (one size only)")
    args = parser.parse_args()
    sizes = args.n or [10_000, 100_000]
    if args.db_url and len(sizes) > 1:
        parser.error("--db-url takes one size (-n): the database must be empty")
    spawn = multiprocessing.get_context("spawn")
    peaks = {n: bench(n, args.db_url, spawn)["peak"] for n in sizes}
    if len(peaks) > 1:
        print("\npeak RSS by size: " + ", ".join(f"{n} tickets {peak:.0f} MB" for n, peak in peaks.items()))


if __name__ == "__main__":
    sys.exit(main())
