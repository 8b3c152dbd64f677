"""Start-up benchmark: how long a fresh `maild` process takes for a command, over 1,000 tickets.

Makes an instance (`maild init`), fills its database with N tickets (bulk insert, a few
messages each), then runs each command R times in a fresh interpreter, after one warm-up
run, and prints the median and the best wall time and the median CPU time (user + system)
of each. The target (issue 13): `maild tickets list --json` in 0.5 s or less.

Bytecode is cached as in an installed maild (in a directory of the run, not in the source
tree), whatever PYTHONDONTWRITEBYTECODE says. On a shared machine, wall time includes the
wait for a core: the CPU time is the steadier figure of the work itself.

    .venv/bin/python bench/startup.py [-n 1000] [-r 10] [--db-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMANDS = (("tickets", "list", "--json"), ("--help",), ("status", "--json"))
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def fill(url: str, n: int) -> None:
    """N tickets over a year (10% still open), each with 0-3 messages."""
    import sqlalchemy as sa

    from maild.store import db
    from maild.store.tables import Message, Ticket

    rng = random.Random(13)
    engine = db.make_engine(url)
    tickets = []
    for number in range(1, n + 1):
        created = NOW - timedelta(minutes=rng.randint(0, 365 * 24 * 60))
        status = rng.choice(("new", "open", "pending")) if rng.random() < 0.1 else rng.choice(("resolved", "closed"))
        tickets.append({
            "number": number, "queue": rng.choice(("jasenasiat", "laskutus", "jasenhakemukset", "lakineuvonta")),
            "status": status, "priority": rng.choice(("low", "normal", "normal", "high")), "category": None,
            "subject": f"Jäsenmaksu {number}: kysymys laskusta", "requester": f"jasen{number % 700}@example.fi",
            "assignee": None if rng.random() < 0.5 else "maija@liitto.fi", "confidential": False, "tags": [],
            "other_queues": [], "cc": [], "created_at": created, "updated_at": created, "status_changed_at": created,
        })
    with engine.begin() as conn:
        conn.execute(sa.insert(Ticket), tickets)
        ids = conn.execute(sa.select(Ticket.id)).scalars().all()  # type: ignore[call-overload]
        conn.execute(sa.insert(Message), [{
            "ticket_id": ticket_id, "direction": "in", "kind": "member", "from_addr": "jasen@example.fi",
            "subject": "Jäsenmaksu", "text": "Hei, laskussani on virhe.", "to": [], "cc": [], "references": [],
            "classification": "normal", "created_at": NOW,
        } for ticket_id in ids for _ in range(rng.randint(0, 3))])
    engine.dispose()


def run(args: tuple[str, ...], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """One fresh `python -m maild ARGS`: (wall seconds, CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "maild", *args], env=env, cwd=cwd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1, 2):  # status: 2 (critical) when no daemon runs
        raise SystemExit(f"maild {' '.join(args)}: exit {done.returncode}\n{done.stderr.decode()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="tickets (default 1000)")
    parser.add_argument("-r", "--runs", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument("--db-url", help="an empty database to use instead of the instance's SQLite")
    options = parser.parse_args()
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="maild-startup-") as tmp:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("MAILD_") and key != "PYTHONDONTWRITEBYTECODE"}
        # `python -m` puts the working directory first on the path: run where no other maild is
        env.update(PYTHONPATH=str(REPO), PYTHONPYCACHEPREFIX=f"{tmp}/pycache")
        instance = Path(tmp) / "instance"
        subprocess.run([sys.executable, "-m", "maild", "init", str(instance)], env=env, cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        config = str(instance / "maild.toml")
        if options.db_url:
            env["MAILD_DATABASE__URL"] = options.db_url
        subprocess.run([sys.executable, "-m", "maild", "--config", config, "db", "upgrade"], env=env, cwd=tmp,
                       check=True, stdout=subprocess.DEVNULL)
        from maild.config import load_settings

        url = options.db_url or load_settings(config).database_url
        fill(url, options.n)
        print(f"{options.n} tickets; {options.runs} runs of each command (median, best; CPU = user + system)")
        print(f"{'command':28} {'median':>8} {'best':>8} {'CPU':>8}")
        for command in COMMANDS:
            args = ("--config", config, *command) if command != ("--help",) else command
            run(args, env, tmp)  # warm-up: compiles the bytecode
            times = [run(args, env, tmp) for _ in range(options.runs)]
            walls, cpus = [wall for wall, _ in times], [cpu for _, cpu in times]
            print(f"{'maild ' + ' '.join(command):28} {statistics.median(walls):7.3f}s {min(walls):7.3f}s "
                  f"{statistics.median(cpus):7.3f}s")
        print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
