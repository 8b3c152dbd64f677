"""IMAP intake benchmark: `maild run` polling a private Dovecot on loopback.

1. Fills a mailbox with N realistic member mails (maildir files written directly; Dovecot
   indexes them when maild first selects the folder).
2. Starts `maild run` with one ``[[imap]]`` mailbox (``after = "move:Processed"``, IDLE on) and
   times the first sync until every message is stored (spool rows committed, counted by SQL),
   then until every one is processed into a ticket; prints the daemon's peak RSS (VmHWM).
3. M more messages then arrive one by one by APPEND; prints p50/p99 of APPEND -> stored.

Targets on a 2-core machine: first sync >= 300 messages/s; p99 arrival -> stored < 2 s.

    .venv/bin/python bench/imap_sync.py [-n 10000] [-m 100] [--db-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.smtp_ingest import free_port, messages, peak_rss_mb, percentile  # noqa: E402
from tests.integration.dovecot import Account, Dovecot  # noqa: E402


def fill_maildir(server: Dovecot, account: Account, mails: list[bytes]) -> None:
    """Deliver as an MDA would: one file per message in ``new/``, owned by the mail user."""
    maildir = server.maildir_home(account.username) / "Maildir"
    for sub in ("", "cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    stamp = int(time.time())
    for number, raw in enumerate(mails):
        (maildir / "new" / f"{stamp}.M{number}P{os.getpid()}.bench").write_bytes(raw)
    if server.root:
        for path in [maildir.parent, maildir, *maildir.rglob("*")]:
            os.chown(path, server.mail_uid, server.mail_gid)


def count(engine: sa.Engine, where: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM inbound WHERE {where}")).scalar_one()


def wait_count(engine: sa.Engine, where: str, wanted: int, timeout: float, poll: float,
               proc: subprocess.Popen[bytes]) -> float | None:
    """perf_counter() when ``wanted`` rows match, or None after ``timeout`` seconds."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if count(engine, where) >= wanted:
            return time.perf_counter()
        if proc.poll() is not None:
            raise SystemExit(f"maild run exited with {proc.returncode}")
        time.sleep(poll)
    return None


def children_peak_rss_mb(pid: int) -> float:
    """Peak RSS of the daemon's child processes (the spool processor), summed."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:  # the parent's pid
                total += peak_rss_mb(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return total


def write_config(tmp: Path, server: Dovecot, account: Account, db_url: str) -> Path:
    config = tmp / "maild.toml"
    config.write_text(
        f'[instance]\ndata_dir = "{tmp}/var"\nsecret_key = "bench"\n[database]\nurl = "{db_url}"\n'
        f'[smtp]\nlisten = "127.0.0.1:{free_port()}"\naccept_domains = ["liitto.fi"]\n'
        f'[rules]\nfile = "{REPO / "rules.yaml"}"\ntemplates = "{REPO / "templates"}"\n'
        + server.imap_toml(account, after="move:Processed", poll_seconds=60, idle=True)
    )
    return config


def arrivals(server: Dovecot, account: Account, engine: sa.Engine, mails: list[bytes], already: int,
             proc: subprocess.Popen[bytes]) -> list[float]:
    """APPEND one message at a time; seconds until each is stored."""
    latencies = []
    client = server.client(account)
    rng = random.Random(7)
    try:
        for number, raw in enumerate(mails, start=1):
            time.sleep(rng.uniform(0.05, 0.3))  # arrivals at no fixed phase of the poller's cycle
            started = time.perf_counter()
            status, data = client.append("INBOX", None, None, raw)
            assert status == "OK", data
            done = wait_count(engine, "source = 'imap'", already + number, timeout=30, poll=0.002, proc=proc)
            if done is None:
                raise SystemExit(f"message {number} was not stored within 30 s")
            latencies.append(done - started)
    finally:
        client.logout()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--messages", type=int, default=10_000)
    parser.add_argument("-m", "--arrivals", type=int, default=100)
    parser.add_argument("--db-url", default=None, help="default: SQLite in a temporary directory")
    args = parser.parse_args()

    mails = messages(args.messages + args.arrivals)
    backlog, later = mails[: args.messages], mails[args.messages :]
    server = Dovecot.start()
    try:
        account = server.add_user("jasenpalvelu@liitto.fi")
        fill_maildir(server, account, backlog)
        with tempfile.TemporaryDirectory(prefix="maild-bench-") as directory:
            tmp = Path(directory)
            db_url = args.db_url or f"sqlite:///{tmp}/maild.db"
            config = write_config(tmp, server, account, db_url)
            subprocess.run([sys.executable, "-m", "maild", "--config", str(config), "db", "upgrade"], check=True)
            run(config, db_url, server, account, backlog, later)
    finally:
        server.stop()


def run(config: Path, db_url: str, server: Dovecot, account: Account, backlog: list[bytes], later: list[bytes]) -> None:
    log = (config.parent / "daemon.log").open("wb")
    engine = sa.create_engine(db_url)
    launched = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "maild", "--config", str(config), "run"], stdout=log, stderr=log)
    try:
        first = wait_count(engine, "source = 'imap'", 1, timeout=60, poll=0.01, proc=proc)
        synced = wait_count(engine, "source = 'imap'", len(backlog), timeout=600, poll=0.02, proc=proc)
        if first is None or synced is None:
            raise SystemExit(f"the first sync did not finish; see {config.parent / 'daemon.log'}")
        main_rss = peak_rss_mb(proc.pid)
        processed = wait_count(engine, "state <> 'pending'", len(backlog), timeout=1800, poll=0.2, proc=proc)
        latencies = arrivals(server, account, engine, later, len(backlog), proc)
        main_rss = max(main_rss, peak_rss_mb(proc.pid))
        child_rss = children_peak_rss_mb(proc.pid)
    except SystemExit:
        print((config.parent / "daemon.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        engine.dispose()
    n = len(backlog)
    print(f"first sync of {n} messages (IMAP -> durably stored):")
    print(f"  {synced - launched:.1f} s from launch: {n / (synced - launched):.0f} messages/s")
    print(f"  {synced - first:.1f} s from the first stored message: {(n - 1) / (synced - first):.0f} messages/s")
    if processed is not None:
        print(f"  all processed into tickets {processed - launched:.1f} s from launch: {n / (processed - launched):.0f} messages/s")
    print(f"peak RSS: daemon {main_rss:.0f} MB, spool processor {child_rss:.0f} MB")
    print(f"{len(latencies)} arrivals one by one, IDLE, APPEND -> stored: "
          f"p50 {percentile(latencies, 50) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")
    print(f"exit code after SIGTERM: {proc.returncode}")


if __name__ == "__main__":
    main()
