"""Outbound benchmark: N queued mails delivered by maild's sender to a loopback SMTP sink.

Queues N acknowledgement-sized mails in a fresh SQLite outbox, starts an aiosmtpd sink that
accepts everything (its own process), runs the sender with C reused connections, and prints
mails/s and the benchmark process's peak RSS.

    .venv/bin/python bench/outbound.py [-n 5000] [-c 4] [--db-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, select

from maild.outbound import outbox
from maild.outbound.compose import Outgoing, new_message_id
from maild.outbound.sender import Sender
from maild.outbound.transport import SmtpTransport
from maild.store import db
from maild.store.tables import Outbox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smtp_ingest import BARE_SINK, free_port, wait_port  # noqa: E402

BODY = "Hei,\n\nkiitos viestistäsi. Olemme vastaanottaneet sen ja vastaamme pian.\n\n" * 12


def queue_mails(engine: sa.Engine, n: int) -> None:
    with Session(engine) as session:
        for i in range(n):
            mail = Outgoing(
                from_name="Jäsenpalvelu", from_addr="jasenpalvelu@liitto.fi", to=(f"jasen{i}@example.fi",),
                subject=f"[JP#{i + 1}] Viestisi on vastaanotettu", text=BODY, message_id=new_message_id("liitto.fi"),
                auto="auto-replied",
            )
            outbox.enqueue(session, None, "ack", mail, b"bench-secret", "liitto.fi")
        session.commit()


def sent_count(engine: sa.Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(Outbox.id).where(Outbox.state == "sent")).all())


async def send_all(engine: sa.Engine, port: int, n: int, connections: int) -> float:
    sender = Sender(engine, lambda: SmtpTransport(f"smtp://127.0.0.1:{port}", False, "", ""), connections=connections)
    stopping = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(sender.run(stopping))
    while await asyncio.to_thread(sent_count, engine) < n:
        await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - started
    stopping.set()
    await task
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("-c", "--connections", type=int, default=4, help="SMTP connections, each reused (default 4)")
    parser.add_argument("--db-url", help="a PostgreSQL URL (empty schema) instead of a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maild-outbound-") as tmp:
        url = args.db_url or f"sqlite:///{tmp}/maild.db"
        db.upgrade(url)
        engine = db.make_engine(url)
        queue_mails(engine, args.n)
        port = free_port()
        sink = subprocess.Popen([sys.executable, "-c", BARE_SINK, str(port)])
        try:
            wait_port(port, sink)
            elapsed = asyncio.run(send_all(engine, port, args.n, args.connections))
        finally:
            sink.terminate()
            sink.wait()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.n} mails sent in {elapsed:.1f} s: {args.n / elapsed:.0f} mails/s ({args.connections} reused SMTP connections)")
    print(f"peak RSS of the sending process: {rss:.0f} MB")


if __name__ == "__main__":
    main()
