"""Two `maild run` instances on one PostgreSQL database (docs/operations.md, deploy/README.md): both
listen for SMTP and both poll the same IMAP mailbox, under load, and one is killed with SIGKILL
mid-batch and started again. Every message must be filed exactly once, every new ticket
acknowledged exactly once, and ticket numbers must run without gaps or repeats. The instances
share the data directory (raw mail, attachments), as deploy/README.md asks."""

from __future__ import annotations

import signal
import smtplib
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import Daemon, free_port
from tests.integration.dovecot import Dovecot
from tests.mailgen import mail

pytestmark = pytest.mark.postgres

SMTP_MAILS = 60
IMAP_MAILS = 20


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot.start()
    yield server
    server.stop()


def _send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.sendmail("member@example.fi", ["jasenpalvelu@liitto.fi"], raw)


def _wait(predicate, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"not all mail was filed in time: {predicate.__doc__}")


@pytest.mark.timeout(300)
def test_two_instances_on_one_postgres_file_everything_once(  # type: ignore[no-untyped-def]
    dovecot: Dovecot, make_instance, db_url: str, tmp_path: Path
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("multi-instance runs on PostgreSQL")
    engine = sa.create_engine(db_url)
    account = dovecot.add_user()
    imap = dovecot.imap_toml(account, after="delete", poll_seconds=1)
    ports = [free_port(), free_port()]
    configs = [make_instance(db_url, port=port, extra=imap, name=f"node{n}") for n, port in enumerate(ports)]
    shared = tmp_path / "shared-data"  # raw mail and attachments: on storage every instance mounts
    for config in configs:
        config.write_text(config.read_text().replace('data_dir = "var"', f'data_dir = "{shared}"'))
    from tests.conftest import run_maild

    assert run_maild("--config", str(configs[0]), "db", "upgrade").returncode == 0
    nodes = [Daemon(config, port).start() for config, port in zip(configs, ports)]
    run = uuid.uuid4().hex[:8]
    smtp = [mail(subject=f"SMTP {run} {n}", sender=f"Jäsen {n} <smtp{n}@example.fi>", message_id=f"<s{n}.{run}@x>")
            for n in range(SMTP_MAILS)]
    imap_mails = [mail(subject=f"IMAP {run} {n}", sender=f"imap{n}@example.fi", message_id=f"<i{n}.{run}@x>")
                  for n in range(IMAP_MAILS)]
    try:
        dovecot.append_many(account, imap_mails)
        with ThreadPoolExecutor(8) as pool:
            half = SMTP_MAILS // 2
            first = [pool.submit(_send, ports[n % 2], raw) for n, raw in enumerate(smtp[:half])]
            for future in first:
                future.result()
            nodes[1].stop(signal.SIGKILL)  # mid-batch: the spool holds what it accepted
            rest = [pool.submit(_send, ports[0], raw) for raw in smtp[half:]]
            for future in rest:
                future.result()
        nodes[1] = Daemon(configs[1], ports[1]).start()

        def settled() -> bool:
            with engine.connect() as conn:
                pending = conn.execute(sa.text("select count(*) from inbound where state = 'pending'")).scalar()
                filed = conn.execute(sa.text("select count(*) from messages where direction = 'in'")).scalar()
            left = len(dovecot.messages(account))
            settled.__doc__ = f"{pending} pending, {filed} filed, {left} left in the mailbox"
            return pending == 0 and filed >= SMTP_MAILS + IMAP_MAILS and not left

        _wait(settled)
        time.sleep(2)  # a last poll that would double something would show by now
        with engine.connect() as conn:
            subjects = [row[0] for row in conn.execute(sa.text("select subject from messages where direction = 'in'"))]
            numbers = sorted(row[0] for row in conn.execute(sa.text("select number from tickets")))
            acks = Counter(row[0] for row in conn.execute(sa.text("select ticket_id from outbox where kind = 'ack'")))
            tickets = conn.execute(sa.text("select count(*) from tickets")).scalar()
    finally:
        for node in nodes:
            if node.proc and node.proc.poll() is None:
                node.stop()
        engine.dispose()
    expected = {f"SMTP {run} {n}" for n in range(SMTP_MAILS)} | {f"IMAP {run} {n}" for n in range(IMAP_MAILS)}
    counts = Counter(subjects)
    assert set(counts) == expected
    assert [s for s, c in counts.items() if c > 1] == []  # nothing filed twice
    assert tickets == SMTP_MAILS + IMAP_MAILS
    assert numbers == list(range(1, tickets + 1))  # no gaps, no repeats
    assert len(acks) == tickets and set(acks.values()) == {1}  # each ticket acknowledged once
