"""Report benchmark: `maild report` over N tickets created in one year, on SQLite or PostgreSQL.

Fills a fresh database with N tickets spread over 2026 (three queues, one confidential; 80%
answered, 70% resolved, categories and matched rules as rules set them, three channels),
numbered in the order they came in, and their events (created, relayed, status), then times
building the report over the whole year, as ``maild report --from 2026-01-01 --to
2026-12-31`` does, and rendering its HTML. The issue's target: 1,000,000 tickets in under
10 s on SQLite.

    .venv/bin/python bench/report.py [-n 1000000] [--db FILE | --url URL] [--runs 3]

``--db``/``--url`` are filled when they hold no tickets yet, else reused: run once to fill,
then again to measure the report alone (peak memory is the process's, filling included).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from maild.report.build import make_report  # noqa: E402
from maild.report.html import page  # noqa: E402
from maild.rules.loader import parse_rules  # noqa: E402
from maild.store import db  # noqa: E402

RULES = """\
queues:
  jasenasiat: {name: Jäsenasiat, address: jasenpalvelu@liitto.fi, staff: [maija@liitto.fi, pekka@liitto.fi], default: true, leads: [johtaja@liitto.fi], language: fi}
  laskutus: {name: Laskutus, address: laskutus@liitto.fi, staff: [lasse@liitto.fi], language: fi}
  lakineuvonta: {name: Lakineuvonta, address: lakineuvonta@liitto.fi, staff: [juristi@liitto.fi], confidential: true, language: fi}
sla: {urgent: 4h, high: 1d, normal: 3d, low: 5d}
business_hours: {days: [mon, tue, wed, thu, fri], hours: "08:00-16:00", holidays: FI}
rules: []
"""
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
QUEUES = [("jasenasiat", ("maija@liitto.fi", "pekka@liitto.fi")), ("laskutus", ("lasse@liitto.fi",)),
          ("lakineuvonta", ("juristi@liitto.fi",))]
CATEGORIES = [("eroaminen", "Eroamiset"), ("laskutus", "Laskut"), ("jäsenhakemus", "Hakemukset"), (None, None)]
CHANNELS = ["smtp", "imap", "pipe"]


def fill(engine: sa.Engine, n: int) -> None:
    rng = random.Random(15)
    tickets, events = [], []
    year = 365 * 86400
    postgres = engine.dialect.name == "postgresql"
    fmt = "%Y-%m-%d %H:%M:%S.%f" + ("+00:00" if postgres else "")  # SQLite: naive UTC, as UTCDateTime stores

    def as_json(name: str) -> str:
        return f"CAST(:{name} AS JSON)" if postgres else f":{name}"
    # tickets are numbered as they come in, so their creation times rise with their numbers
    arrivals = sorted(rng.randrange(year - 86400 * 14) for _ in range(n))
    with engine.begin() as conn:
        for number, arrival in enumerate(arrivals, start=1):
            created = START + timedelta(seconds=arrival)
            queue, staff = QUEUES[number % 3]
            category, rule = rng.choice(CATEGORIES)
            answered = created + timedelta(minutes=rng.randrange(10, 5 * 1440)) if rng.random() < 0.8 else None
            resolved = answered + timedelta(minutes=rng.randrange(10, 5 * 1440)) if answered and rng.random() < 0.87 else None
            status = "resolved" if resolved else ("pending" if answered else "new")
            changed = resolved or answered or created
            assignee = rng.choice(staff) if rng.random() < 0.9 else None
            tickets.append({
                "id": number, "number": number, "queue": queue, "status": status,
                "priority": rng.choice(["normal", "normal", "high", "low", "urgent"]), "category": category,
                "subject": f"Asia {number}", "requester": f"m{number}@example.fi", "assignee": assignee,
                "confidential": queue == "lakineuvonta", "tags": "[]", "other_queues": "[]", "cc": "[]",
                "created_at": created.strftime(fmt), "updated_at": changed.strftime(fmt),
                "resolved_at": resolved.strftime(fmt) if resolved else None, "closed_at": None,
                "status_changed_at": changed.strftime(fmt),
                "first_response_at": answered.strftime(fmt) if answered else None})
            hits = [{"name": rule, "index": 0, "actions": {"category": category}}] if rule else []
            events.append({"ticket_id": number, "at": created.strftime(fmt), "actor": "m@example.fi", "kind": "created",
                           "data": json.dumps({"source": rng.choice(CHANNELS), "queue": queue, "rules": hits})})
            if answered:
                who = assignee or staff[0]
                events.append({"ticket_id": number, "at": answered.strftime(fmt), "actor": who, "kind": "relayed",
                               "data": '{"to": []}'})
                events.append({"ticket_id": number, "at": answered.strftime(fmt), "actor": who, "kind": "status",
                               "data": '{"old": "new", "new": "pending"}'})
            if resolved:
                events.append({"ticket_id": number, "at": resolved.strftime(fmt), "actor": "maild", "kind": "status",
                               "data": '{"old": "pending", "new": "resolved"}'})
            if len(tickets) >= 50_000 or number == n:
                conn.execute(sa.text(
                    "INSERT INTO tickets (id, number, queue, status, priority, category, subject, requester, assignee,"
                    " confidential, tags, other_queues, cc, created_at, updated_at, resolved_at, closed_at,"
                    " status_changed_at, first_response_at) VALUES (:id, :number, :queue, :status, :priority,"
                    f" :category, :subject, :requester, :assignee, :confidential, {as_json('tags')},"
                    f" {as_json('other_queues')}, {as_json('cc')}, :created_at, :updated_at, :resolved_at, :closed_at,"
                    " :status_changed_at, :first_response_at)"),
                    tickets)
                conn.execute(sa.text("INSERT INTO events (ticket_id, at, actor, kind, data) VALUES"
                                     f" (:ticket_id, :at, :actor, :kind, {as_json('data')})"), events)
                tickets, events = [], []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1_000_000)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--db", help="an SQLite file to fill (or reuse when it has the tickets already)")
    where.add_argument("--url", help="a database URL instead, e.g. an empty PostgreSQL database")
    parser.add_argument("--runs", type=int, default=1, help="build the report this many times")
    args = parser.parse_args()
    if args.url:
        url = args.url
    else:
        path = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="maild-report-bench-")) / "maild.db"
        url = f"sqlite:///{path}"
    db.upgrade(url)
    engine = db.make_engine(url)
    with engine.connect() as conn:
        fresh = not conn.execute(sa.text("SELECT count(*) FROM tickets")).scalar()
    if fresh:
        started = time.perf_counter()
        fill(engine, args.n)
        if engine.dialect.name == "postgresql":  # as autovacuum would soon: the planner's figures
            with engine.begin() as conn:
                conn.execute(sa.text("ANALYZE"))
        print(f"filled {args.n} tickets in {time.perf_counter() - started:.1f} s ({engine.url!r})")
    rules = parse_rules(RULES, "rules.yaml")
    now = datetime(2027, 1, 15, tzinfo=timezone.utc)
    times = []
    for _ in range(args.runs):
        started, cpu = time.perf_counter(), time.process_time()
        with Session(engine) as session:
            document = make_report(session, rules, "Europe/Helsinki", "JP", date(2026, 1, 1), date(2026, 12, 31), now)
        times.append(time.perf_counter() - started)
        print(f"report over {document['overall']['created']} tickets on {engine.dialect.name}: {times[-1]:.2f} s "
              f"(CPU of this process {time.process_time() - cpu:.2f} s)", flush=True)
    started = time.perf_counter()
    html = page(document, "Jäsenpalvelu", "fi")
    rendered = time.perf_counter() - started
    overall = document["overall"]
    print(f"best {min(times):.2f} s, median {statistics.median(times):.2f} s of {len(times)}; HTML {len(html) // 1024} kB "
          f"in {rendered:.2f} s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB"
          + (" (filling included)" if fresh else ""))
    print(f"  resolved {overall['resolved']}, backlog {overall['backlog']}, first response "
          f"{overall['first_response_hours']}, SLA met {overall['sla_met_percent']} %")


if __name__ == "__main__":
    main()
