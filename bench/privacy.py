"""Privacy benchmark: an erasure request and the retention sweep on a database of N tickets.

Fills a fresh SQLite database (or an empty PostgreSQL one) with N tickets, each with the
member's message (500 characters) and maild's acknowledgement, and an event; every member has
five tickets; two thirds of the tickets closed over two years ago. Then times
``maild members erase`` of one member (which reads every text column of every table, then
VACUUMs a SQLite file) and the first retention sweep (730 days, the shipped rules.yaml).

    .venv/bin/python bench/privacy.py [-n 100000] [--db-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from maild.app import App
from maild.config import Settings
from maild.privacy.request import erase_address
from maild.schedule import run_job
from maild.store import db
from maild.store.tables import Event, Message, Ticket

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2027, 12, 7, 9, 0, tzinfo=timezone.utc)
TEXT = ("Hei, osoitteeni on muuttunut ja haluaisin tietaa, miten jasenmaksu lasketaan. " * 7)[:500]


def fill(engine: sa.Engine, n: int) -> None:
    members = max(1, n // 5)
    for start in range(0, n, 5000):
        numbers = range(start + 1, min(n, start + 5000) + 1)
        with engine.begin() as conn:
            tickets = []
            for number in numbers:
                closed = NOW - timedelta(days=(number * 7919) % 1100)
                tickets.append({
                    "number": number, "queue": "jasenasiat", "status": "closed" if number % 3 else "open",
                    "priority": "normal", "subject": f"Asia {number}", "requester": f"jasen{number % members}@example.fi",
                    "confidential": False, "tags": [], "other_queues": [], "cc": [], "created_at": closed - timedelta(days=3),
                    "updated_at": closed, "status_changed_at": closed, "closed_at": closed if number % 3 else None})
            conn.execute(sa.insert(Ticket), tickets)
            ids = dict(conn.execute(sa.select(Ticket.number, Ticket.id).where(Ticket.number.between(numbers[0], numbers[-1]))).all())  # type: ignore[attr-defined]
            messages, events = [], []
            for row in tickets:
                ticket_id, member = ids[row["number"]], row["requester"]
                messages.append({"ticket_id": ticket_id, "direction": "in", "kind": "member", "from_addr": member,
                                 "from_name": f"Jasen {row['number'] % members} Sukunimi", "to": ["jasenpalvelu@liitto.fi"],
                                 "cc": [], "references": [], "subject": row["subject"], "text": TEXT, "created_at": row["created_at"]})
                messages.append({"ticket_id": ticket_id, "direction": "out", "kind": "ack", "from_addr": "jasenpalvelu@liitto.fi",
                                 "from_name": "", "to": [member], "cc": [], "references": [], "subject": row["subject"],
                                 "text": "Kiitos viestistasi. " * 10, "created_at": row["created_at"]})
                events.append({"ticket_id": ticket_id, "actor": member, "kind": "created", "data": {"queue": "jasenasiat"},
                               "at": row["created_at"]})
            conn.execute(sa.insert(Message), messages)
            conn.execute(sa.insert(Event), events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="tickets (default 100000)")
    parser.add_argument("--db-url", help="an empty database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maild-privacy-") as tmp:
        url = args.db_url or f"sqlite:///{tmp}/maild.db"
        db.upgrade(url)
        started = time.perf_counter()
        fill(db.make_engine(url), args.n)
        print(f"{args.n} tickets ({2 * args.n} messages) written in {time.perf_counter() - started:.1f} s")
        app = App(Settings(database={"url": url}, instance={"data_dir": f"{tmp}/var", "secret_key": "bench"},
                           rules={"file": str(REPO / "rules.yaml"), "templates": str(REPO / "templates")}))
        started = time.perf_counter()
        outcome = erase_address(app.engine, app.settings.data_dir, b"bench", "jasen7@example.fi", NOW)
        print(f"erase one member ({outcome.erased.tickets} tickets): {time.perf_counter() - started:.1f} s, "
              f"remaining {outcome.remaining or 'nothing'}")
        started = time.perf_counter()
        erased = run_job(app.pipeline, "retention", NOW)
        print(f"retention sweep, first run: {len(erased)} tickets erased in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        again = run_job(app.pipeline, "retention", NOW + timedelta(days=1))
        print(f"retention sweep, next day: {len(again)} tickets in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
