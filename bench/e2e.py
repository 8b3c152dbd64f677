"""End-to-end filing benchmark: `maild ingest` of a generated corpus in one process.

The corpus comes from the peer benchmark's generator (/work/shared/peers/gen_mail.py): Finnish
member mail, UTF-8 quoted-printable, RFC 2047 subjects, 90% new requests from distinct members
and 10% replies tagged with an earlier ticket; ``manifest.json`` says which ticket each message
belongs to. One `maild ingest FILE...` stores every file in the spool and files it (SQLite, one
queue with three staff, so each new ticket queues an acknowledgement and three notifications).

Prints msgs/s (net of the process start-up, measured separately as the peer's bench does),
CPU ms per message, and checks that every message is on the right ticket and every
acknowledgement and notification was queued. ``--peer`` runs django-helpdesk's bench on the
matching corpus right after and prints the ratio (absolute figures drift between hours).

    python bench/e2e.py [-n 1000] [--runs 3] [--peer] [--profile out.prof] [--db-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
PEERS = Path(os.environ.get("MAILD_PEERS", "/work/shared/peers"))
ADDRESS = "jasenpalvelu@liitto.fi"
STAFF = ("maija@liitto.fi", "pekka@liitto.fi", "anna@liitto.fi")

RULES = textwrap.dedent(
    f"""\
    queues:
      jasenasiat:
        name: Jäsenasiat
        address: {ADDRESS}
        staff: [{", ".join(STAFF)}]
        language: fi
        default: true
    sla: {{urgent: 4h, high: 1d, normal: 3d, low: 5d}}
    business_hours: {{days: [mon, tue, wed, thu, fri], hours: "08:00-16:00", holidays: FI}}
    rules:
      - name: Roskaposti
        if: {{subject: {{contains: [viagra]}}}}
        then: {{drop: true}}
    """
)


def corpus(n: int, tag: str | None, first_id: int = 1) -> Path:
    """The generated corpus of ``n`` messages (made once per size, tag and first ticket number)."""
    directory = Path(tempfile.gettempdir()) / f"maild-e2e-corpus-{n}-{'jp' if tag else 'dh'}-{first_id}"
    if not (directory / "manifest.json").is_file():
        args = [sys.executable, str(PEERS / "gen_mail.py"), str(n), str(directory), "--to", ADDRESS,
                "--first-id", str(first_id)]
        subprocess.run(args + (["--tag", tag] if tag else []), check=True, stdout=subprocess.DEVNULL)
    return directory


def instance(directory: Path, db_url: str | None) -> Path:
    """A config and rules in ``directory``; returns the config path."""
    (directory / "rules.yaml").write_text(RULES, encoding="utf-8")
    url = db_url or f"sqlite:///{directory}/maild.db"
    config = directory / "maild.toml"
    config.write_text(textwrap.dedent(f"""\
        [instance]
        data_dir = "var"
        hostname = "liitto.fi"
        secret_key = "bench-secret"
        tag_prefix = "JP"

        [database]
        url = "{url}"

        [rules]
        file = "rules.yaml"
        templates = "{REPO / 'templates'}"
        """), encoding="utf-8")
    return config


def maild(config: Path, *args: str, profile: str | None = None) -> tuple[float, float, str]:
    """Run the CLI; returns (wall s, CPU s of the child, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    prefix = ["-m", "cProfile", "-o", profile, "-m", "maild"] if profile else ["-m", "maild"]
    before = os.times()
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, *prefix, "--config", str(config), *args], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"maild {' '.join(args[:2])} failed: {proc.stderr[-2000:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, proc.stderr


def check(config: Path, db_url: str, manifest: dict) -> list[str]:
    """Every message on the ticket the manifest says; every ack and notification queued."""
    engine = sa.create_engine(db_url)
    problems = []
    with engine.connect() as conn:
        on = dict(conn.execute(sa.text(
            "select m.message_id, t.number from messages m join tickets t on t.id = m.ticket_id "
            "where m.direction = 'in' and m.inbound_id is not null")).all())
        outbox = dict(conn.execute(sa.text("select kind, count(*) from outbox where state = 'queued' group by kind")).all())
        quarantined = conn.execute(sa.text("select count(*) from quarantine")).scalar_one()
    engine.dispose()
    wrong = [m["file"] for m in manifest["messages"] if on.get(m["message_id"].strip("<>")) != m["ticket"]]
    if wrong:
        problems.append(f"{len(wrong)} messages not on their ticket, e.g. {wrong[:3]}")
    originals, replies = manifest["originals"], manifest["replies"]
    if outbox.get("ack", 0) != originals:
        problems.append(f"{outbox.get('ack', 0)} acknowledgements queued, expected {originals}")
    notifications = (originals + replies) * len(STAFF)
    if outbox.get("notification", 0) != notifications:
        problems.append(f"{outbox.get('notification', 0)} notifications queued, expected {notifications}")
    if quarantined:
        problems.append(f"{quarantined} messages quarantined")
    return problems


def fresh_db(db_url: str | None, directory: Path) -> str:
    """The database URL for one run, emptied: SQLite in the run's directory, or a new PostgreSQL
    database named after it (dropped by ``drop_db``)."""
    if not db_url:
        return f"sqlite:///{directory}/maild.db"
    name = f"maild_e2e_{os.getpid()}_{directory.name[-8:].lower()}"
    name = re.sub(r"[^a-z0-9_]", "_", name)
    admin = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return sa.engine.make_url(db_url).set(database=name).render_as_string(hide_password=False)


def drop_db(db_url: str) -> None:
    url = sa.engine.make_url(db_url)
    if url.get_backend_name() != "postgresql":
        return
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    admin.dispose()


def run_once(files: list[Path], manifest: dict, db_url: str | None, profile: str | None,
             prepare: Callable[[str], None] | None = None) -> dict[str, float]:
    """One measured run on a fresh instance; ``prepare(url)`` may fill the database first."""
    with tempfile.TemporaryDirectory(prefix="maild-e2e-") as tmp:
        directory = Path(tmp)
        url = fresh_db(db_url, directory)
        try:
            config = instance(directory, url)
            maild(config, "db", "upgrade")
            if prepare is not None:
                prepare(url)
            # start-up: the same command on one tiny message, in an instance of its own
            (directory / "probe").mkdir()
            probe_config = instance(directory / "probe", None)
            maild(probe_config, "db", "upgrade")
            probe = directory / "probe" / "probe.eml"
            probe.write_bytes(b"From: probe@example.fi\r\nTo: x@example.fi\r\nSubject: probe\r\n\r\nx\r\n")
            start_wall, start_cpu, _ = maild(probe_config, "ingest", "--recipient", ADDRESS, str(probe))
            wall, cpu, stderr = maild(config, "ingest", "--recipient", ADDRESS, *map(str, files), profile=profile)
            problems = check(config, url, manifest)
            n = len(files)
            net = max(wall - start_wall, 1e-9)
            return {"n": n, "wall": wall, "net": net, "rate": n / net, "cpu_ms": 1000 * (cpu - start_cpu) / n,
                    "startup": start_wall, "problems": problems}  # type: ignore[dict-item]
        finally:
            if db_url:
                drop_db(url)


def peer(n: int, runs: int) -> float:
    """django-helpdesk's median msgs/s on the matching corpus (its own bench script)."""
    directory = corpus(n, None)
    proc = subprocess.run(["bash", str(PEERS / "django_helpdesk" / "bench.sh"), str(directory), str(runs)],
                          capture_output=True, text=True, check=True)
    last = proc.stdout.strip().splitlines()[-1]
    print(last)
    found = re.search(r"= ([\d.]+) msgs/s", last)
    if not found:
        raise SystemExit(f"cannot read the peer's figure: {last}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peer", action="store_true", help="also run django-helpdesk's bench and print the ratio")
    parser.add_argument("--peer-runs", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of the (last) ingest run here")
    parser.add_argument("--db-url", help="a PostgreSQL server URL (a database is made and dropped); default SQLite")
    args = parser.parse_args()
    directory = corpus(args.n, "[JP#{n}]")
    manifest = json.loads((directory / "manifest.json").read_text())
    files = sorted(directory.glob("*.eml"))
    results = []
    for _ in range(args.runs):
        result = run_once(files, manifest, args.db_url, args.profile)
        results.append(result)
        print(f"run: {result['n']} msgs in {result['net']:.2f} s net ({result['wall']:.2f} s wall, "
              f"start-up {result['startup']:.2f} s) = {result['rate']:.0f} msgs/s, "
              f"{result['cpu_ms']:.1f} ms CPU/msg", flush=True)
        for problem in result["problems"]:  # type: ignore[union-attr]
            print(f"  PROBLEM: {problem}")
    rate = statistics.median(r["rate"] for r in results)
    cpu = statistics.median(r["cpu_ms"] for r in results)
    ok = not any(r["problems"] for r in results)
    print(f"maild e2e: {args.n} msgs, median {rate:.0f} msgs/s, {cpu:.1f} ms CPU/msg, checks {'ok' if ok else 'FAILED'}")
    if args.peer:
        theirs = peer(args.n, args.peer_runs)
        print(f"ratio maild/django-helpdesk: {rate / theirs:.1f}x ({rate:.0f} vs {theirs:.0f} msgs/s)")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
