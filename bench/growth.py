"""How filing slows as the database grows: the end-to-end rate (``bench/e2e.py``) on an empty
database and on one already holding 1,000,000 tickets, on SQLite and on PostgreSQL.

The seed is what years of use leave behind, written with one INSERT ... SELECT per table:
tickets (90% closed) of 300,000 members, each with its member's message, its
acknowledgement in the outbox (sent) and its ``created`` event; the ticket counter stands at
the last one, so the corpus's tickets follow from there (``gen_mail.py --first-id``). Every
check of the e2e run holds on the grown database too.

    python bench/growth.py [-n 1000] [--tickets 1000000] [--runs 1] [--pg URL] [--no-sqlite]

``--pg``: a PostgreSQL server URL; a database of its own is made for each run and dropped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e  # noqa: E402

SQLITE_SERIES = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count}) "


def seed(url: str, count: int) -> None:
    """``count`` old tickets with a message, an acknowledgement and an event each."""
    started = time.perf_counter()
    engine = sa.create_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    ts = "'2025-01-01 10:00:00.000000'" if sqlite else "TIMESTAMPTZ '2025-01-01 10:00:00+00'"
    json_empty = "'[]'" if sqlite else "'[]'::json"
    false = "0" if sqlite else "false"
    members = max(count * 3 // 10, 1)
    raw = "X'00'" if sqlite else "'\\x00'::bytea"

    def series(body: str) -> str:
        if sqlite:
            return SQLITE_SERIES.format(count=count) + body.replace("{FROM}", "FROM s")
        return body.replace("{FROM}", f"FROM generate_series(1, {count}) AS s(n)")

    requester = f"'seed' || mod(n, {members}) || '@example.fi'"
    statements = [
        series(f"INSERT INTO tickets (id, number, queue, status, priority, subject, requester, confidential, tags, "
               f"other_queues, cc, created_at, updated_at, status_changed_at) "
               f"SELECT n, n, 'jasenasiat', CASE mod(n, 10) WHEN 0 THEN 'open' ELSE 'closed' END, 'normal', "
               f"'Vanha asia ' || n, {requester}, {false}, {json_empty}, {json_empty}, {json_empty}, {ts}, {ts}, {ts} "
               f"{{FROM}}"),
        series(f"INSERT INTO contacts (address, name, created_at, undeliverable) "
               f"SELECT 'seed' || (n - 1) || '@example.fi', 'Jäsen ' || n, {ts}, {false} {{FROM}} WHERE n <= {members}"),
        series(f"INSERT INTO messages (id, ticket_id, direction, kind, message_id, fingerprint, from_addr, from_name, "
               f"\"to\", cc, subject, references, classification, text, created_at) "
               f"SELECT n, n, 'in', 'member', 'seed-' || n || '@example.fi', 'v2:seed' || n, {requester}, 'Jäsen', "
               f"{json_empty}, {json_empty}, 'Vanha asia ' || n, {json_empty}, 'normal', 'Hei, kysyisin asiasta.', {ts} "
               f"{{FROM}}"),
        series(f"INSERT INTO outbox (ticket_id, kind, created_at, return_path, recipient, raw, state, attempts, "
               f"next_attempt_at, sent_at) "
               f"SELECT n, 'ack', {ts}, 'bounces+seed@liitto.fi', {requester}, {raw}, 'sent', 1, {ts}, {ts} {{FROM}}"),
        series(f"INSERT INTO events (ticket_id, at, actor, kind, data) "
               f"SELECT n, {ts}, {requester}, 'created', {'json_object()' if sqlite else chr(39) + '{}' + chr(39) + '::json'} "
               f"{{FROM}}"),
    ]
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement.replace("references", '"references"'))
        conn.exec_driver_sql(f"INSERT INTO counters (name, value) VALUES ('ticket', {count})")
        if not sqlite:  # the sequences behind the explicit ids
            for table in ("tickets", "messages"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {count})")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
        if sqlite:  # the seed's WAL folded into the database now, not during the measured run
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    print(f"  seeded {count:,} tickets in {time.perf_counter() - started:.0f} s", flush=True)


def measure(label: str, n: int, runs: int, db_url: str | None, tickets: int) -> tuple[float, float]:
    """Median msgs/s and CPU ms per message of ``runs`` e2e runs on a database of ``tickets``."""
    directory = e2e.corpus(n, "[JP#{n}]", first_id=tickets + 1 if tickets else 1)
    manifest = json.loads((directory / "manifest.json").read_text())
    files = sorted(directory.glob("*.eml"))
    rates, cpus = [], []
    for _ in range(runs):
        prepare = (lambda url: seed(url, tickets)) if tickets else None
        result = e2e.run_once(files, manifest, db_url, None, prepare)
        rates.append(result["rate"])
        cpus.append(result["cpu_ms"])
        print(f"  {label}: {result['rate']:.0f} msgs/s, {result['cpu_ms']:.1f} ms CPU/msg"
              + "".join(f"\n  PROBLEM: {p}" for p in result["problems"]), flush=True)  # type: ignore[union-attr]
        if result["problems"]:
            sys.exit(1)
    return statistics.median(rates), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--pg", help="PostgreSQL server URL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    backends = ([] if args.no_sqlite else [("SQLite", None)]) + ([("PostgreSQL", args.pg)] if args.pg else [])
    for name, url in backends:
        print(f"{name}:", flush=True)
        empty, empty_cpu = measure("empty database", args.n, args.runs, url, 0)
        grown, grown_cpu = measure(f"{args.tickets:,} tickets", args.n, args.runs, url, args.tickets)
        print(f"{name}: empty {empty:.0f} msgs/s ({empty_cpu:.1f} ms CPU/msg), with {args.tickets:,} tickets "
              f"{grown:.0f} msgs/s ({grown_cpu:.1f} ms CPU/msg) = {100 * grown / empty:.0f}% of the empty rate, "
              f"{100 * empty_cpu / grown_cpu:.0f}% by CPU", flush=True)

if __name__ == "__main__":
    main()
