"""Crash test (docs/guarantees.md): SIGKILL `maild run` at random points, again and again, while mail
arrives over SMTP and IMAP and the outbox sends; then check that nothing was lost or doubled.

Setup, all real: `maild run` on SQLite (or ``--db-url``) in a temporary directory, an aiosmtpd
sink as the outbound smarthost, and a private Dovecot whose INBOX maild polls (skipped with
``--no-imap`` or when Dovecot is not installed). Two feeders run all the time:

- SMTP: a client that sends numbered mails (``Message-ID: <crash-smtp-N@example.fi>``), and
  like any MTA sends a mail again later when it got no 250 (the daemon died mid-transaction).
  Every tenth mail is one the rules drop, so the quarantine is exercised too.
- IMAP: APPENDs numbered mails (``<crash-imap-N@example.fi>``) to the polled INBOX.

Each loop starts the daemon, waits a random time (sometimes not even until it listens, half
of the time until the smarthost has just received a mail, so that the kill falls amid sending)
and SIGKILLs it: usually the whole process group (a machine crash or OOM kill), sometimes
only the main process (its spool processor child lives on for a moment, beside the next
daemon's). After the last loop the feeders stop, the daemon runs until everything is
processed and sent, and is stopped with SIGTERM. Then:

- every mail that got a 250 and every appended mail is exactly once a ticket message or a
  quarantine entry (copies seen again are recorded duplicates, counted);
- every outbox row is sent, and reached the sink; a row reached it more than once only in
  the window the sender documents (one unrecorded mail per SMTP connection per crash), so
  the duplicates must be at most kills x connections.

    .venv/bin/python bench/crash_loop.py [--kills 100] [--seed 1] [--no-imap] [--db-url URL] [--keep]

Prints the figures (and one ``FIGURES {json}`` line); exits 1 when an invariant failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402

from maild.intake.spool import RawStore  # noqa: E402
from tests.conftest import RULES, free_port  # noqa: E402
from tests.integration.dovecot import Dovecot, dovecot_binary  # noqa: E402
from tests.integration.smtp_sink import SinkHandler  # noqa: E402

MARKER = re.compile(rb"crash-(?:smtp|imap)-\d+@example\.fi")
MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.IGNORECASE | re.MULTILINE)
CONNECTIONS = 2  # outbound SMTP connections of the daemon under test
INFLIGHT_SECONDS = 3  # [outbound] inflight_timeout_seconds: a crashed send is retried this soon


def member_mail(kind: str, number: int) -> bytes:
    """A numbered member mail; every tenth SMTP one, from the third on, is spam that the rules
    drop (quarantine): a short run, a few mails between kills, still has one."""
    subject = f"Cheap viagra {number}" if kind == "smtp" and number % 10 == 2 else f"Kysymys {kind} {number}"
    return textwrap.dedent(f"""\
        From: Jäsen {number} <member-{kind}-{number}@example.fi>
        To: jasenpalvelu@liitto.fi
        Subject: {subject}
        Date: Tue, 01 Dec 2026 10:00:00 +0200
        Message-ID: <crash-{kind}-{number}@example.fi>
        MIME-Version: 1.0
        Content-Type: text/plain; charset=utf-8

        Hei, tämä on viesti {number} ({kind}).
        """).replace("\n", "\r\n").encode()


class SmtpFeeder(threading.Thread):
    """Sends numbered mails; one without a 250 is sent again later, as an MTA would."""

    def __init__(self, port: int, rate: float) -> None:
        super().__init__(daemon=True, name="smtp-feeder")
        self.port, self.pause = port, 1.0 / rate
        self.accepted: set[bytes] = set()
        self.unacknowledged: list[int] = []
        self.sent_again = 0
        self.new_mail = threading.Event()
        self.new_mail.set()
        self.finished = threading.Event()
        self._next = 0

    def run(self) -> None:
        while not (self.finished.is_set() and not self.unacknowledged):
            if self.unacknowledged and (not self.new_mail.is_set() or random.random() < 0.5):
                number = self.unacknowledged.pop(0)
                self.sent_again += 1
            elif self.new_mail.is_set():
                number, self._next = self._next, self._next + 1
            else:
                time.sleep(0.1)
                continue
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=15) as client:
                    client.sendmail(f"member-smtp-{number}@example.fi", ["jasenpalvelu@liitto.fi"],
                                    member_mail("smtp", number))
                self.accepted.add(b"crash-smtp-%d@example.fi" % number)
            except (OSError, smtplib.SMTPException):
                self.unacknowledged.append(number)
                time.sleep(0.2)
            time.sleep(self.pause)


class ImapFeeder(threading.Thread):
    """APPENDs numbered mails to the INBOX that the daemon polls."""

    def __init__(self, dovecot: Dovecot, account: object, rate: float) -> None:
        super().__init__(daemon=True, name="imap-feeder")
        self.dovecot, self.account, self.pause = dovecot, account, 1.0 / rate
        self.appended: set[bytes] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            self.dovecot.append(self.account, member_mail("imap", number))  # type: ignore[arg-type]
            self.appended.add(b"crash-imap-%d@example.fi" % number)
            number += 1
            time.sleep(self.pause)


@dataclass
class Daemon:
    """`maild run` in a session of its own, so that a kill can take its whole process group."""

    config: Path
    port: int
    log: Path
    groups: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}
        env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "maild", "--config", str(self.config), "run"],
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, cwd=self.config.parent)
        self.groups.append(self.proc.pid)

    def wait_listening(self, timeout: float = 120) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"maild run exited with {self.proc.returncode}; see {self.log}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"maild run did not listen within {timeout} s; see {self.log}")

    def kill(self, whole_group: bool) -> None:
        assert self.proc is not None
        if whole_group:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(300)

    def kill_leftovers(self) -> None:
        """Processor children of main-only kills, should any still run."""
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_for_delivery(sink: SinkHandler, timeout: float) -> bool:
    """Wait until the smarthost receives another mail (the sender is busy), at most ``timeout``."""
    seen = len(sink.received)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(sink.received) > seen:
            return True
        time.sleep(0.01)
    return False


def write_config(directory: Path, port: int, sink_port: int, db_url: str, imap: str) -> Path:
    (directory / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = directory / "maild.toml"
    config.write_text(textwrap.dedent(f"""\
        [instance]
        data_dir = "var"
        hostname = "liitto.fi"
        secret_key = "crash-test"

        [database]
        url = "{db_url}"

        [smtp]
        listen = "127.0.0.1:{port}"
        accept_domains = ["liitto.fi"]

        [outbound]
        transport = "smtp://127.0.0.1:{sink_port}"
        starttls = false
        connections = {CONNECTIONS}
        inflight_timeout_seconds = {INFLIGHT_SECONDS}
        auto_reply_limit_per_hour = 1000

        [rules]
        templates = "{REPO / 'templates'}"
        """) + imap, encoding="utf-8")
    return config


def settled(engine: sa.Engine) -> bool:
    """Nothing pending in the spool, nothing waiting in the outbox."""
    with engine.connect() as conn:
        pending = conn.execute(sa.text("SELECT count(*) FROM inbound WHERE state = 'pending'")).scalar_one()
        unsent = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE state IN ('queued', 'sending')")).scalar_one()
    return pending == 0 and unsent == 0


@dataclass
class Stored:
    messages: Counter[bytes]  # ticket messages per marker
    quarantined: Counter[bytes]  # quarantine entries per marker
    quarantine_kinds: Counter[str]
    duplicates: int  # spool rows recorded as duplicates


def stored(engine: sa.Engine, raw_store: RawStore) -> Stored:
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT message_id FROM messages WHERE direction = 'in'")).scalars().all()
        kept = conn.execute(sa.text(
            "SELECT q.kind, i.raw_path FROM quarantine q JOIN inbound i ON q.inbound_id = i.id")).all()
        duplicates = conn.execute(sa.text("SELECT count(*) FROM inbound WHERE error = 'duplicate'")).scalar_one()
    return Stored(
        messages=Counter(i.encode() for i in ids if i and MARKER.fullmatch(i.encode())),
        quarantined=Counter(m.group() for _, path in kept if (m := MARKER.search(raw_store.read(path)))),
        quarantine_kinds=Counter(kind for kind, _ in kept),
        duplicates=duplicates,
    )


def outgoing_figures(engine: sa.Engine, sink: SinkHandler, kills: int) -> dict[str, int]:
    """Each outbox row against what the sink received for its Message-ID and recipient."""
    received: Counter[tuple[bytes, str]] = Counter()
    for mail in sink.received:
        found = MESSAGE_ID.search(mail.data)
        for recipient in mail.rcpt_tos:
            received[(found.group(1) if found else b"?", recipient.lower())] += 1
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT state, recipient, raw FROM outbox")).all()
    counts = [received.pop((m.group(1) if (m := MESSAGE_ID.search(raw)) else b"", recipient.lower()), 0)
              for _, recipient, raw in rows]
    return {
        "outbox_rows": len(rows),
        "outbox_sent": sum(state == "sent" for state, _, _ in rows),
        "outbox_not_sent": sum(state != "sent" for state, _, _ in rows),
        "outgoing_lost": sum(count == 0 for count in counts),
        "outgoing_sent_twice": sum(count - 1 for count in counts if count > 1),
        "outgoing_max_copies": max(counts, default=0),
        "outgoing_window": kills * CONNECTIONS,
        "sink_mail_not_in_outbox": sum(received.values()),
    }


def run(kills: int, seed: int, use_imap: bool, db_url: str | None, max_uptime: float, rate: float,
        keep: bool) -> dict[str, int]:
    rng = random.Random(seed)
    directory = Path(tempfile.mkdtemp(prefix="maild-crash-"))
    handler = SinkHandler()
    sink = Controller(handler, hostname="127.0.0.1", port=free_port())
    sink.start()
    dovecot = Dovecot.start() if use_imap else None
    imap_toml, account = "", None
    if dovecot:
        account = dovecot.add_user("jasenpalvelu@liitto.fi")
        imap_toml = dovecot.imap_toml(account, poll_seconds=1, idle=True)
    port = free_port()
    url = db_url or f"sqlite:///{directory}/maild.db"
    config = write_config(directory, port, sink.port, url, imap_toml)
    daemon = Daemon(config, port, directory / "daemon.log")
    smtp = SmtpFeeder(port, rate)
    imap = ImapFeeder(dovecot, account, rate / 2) if dovecot else None
    started = time.monotonic()
    group_kills = early_kills = sending_kills = 0
    try:
        daemon.start()
        daemon.wait_listening()
        smtp.start()
        if imap:
            imap.start()
        for loop in range(kills):
            if loop:
                daemon.start()
            if loop and rng.random() < 0.1:  # before it even listens: during migrations, start-up, recovery
                time.sleep(rng.uniform(0, 1.5))
                early_kills += 1
            else:
                daemon.wait_listening()
                if rng.random() < 0.5:  # in the middle of sending: right after the smarthost took a mail
                    sending_kills += wait_for_delivery(handler, max_uptime)
                    time.sleep(rng.uniform(0, 0.05))
                else:
                    time.sleep(rng.uniform(0, max_uptime))
            whole_group = rng.random() < 0.8
            group_kills += whole_group
            daemon.kill(whole_group)
        smtp.new_mail.clear()
        smtp.finished.set()
        if imap:
            imap.stop.set()
            imap.join()
        daemon.start()
        daemon.wait_listening()
        smtp.join(600)
        engine = sa.create_engine(url)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            inbox_empty = not dovecot or not dovecot.messages(account)  # type: ignore[arg-type]
            if inbox_empty and settled(engine):
                break
            time.sleep(1)
        code = daemon.stop()
        result = stored(engine, RawStore(directory / "var"))
        expected = smtp.accepted | (imap.appended if imap else set())
        found = result.messages + result.quarantined
        figures = {
            "kills": kills, "kills_whole_group": group_kills, "kills_main_only": kills - group_kills,
            "kills_before_listening": early_kills, "kills_while_sending": sending_kills, "final_exit_code": code,
            "seconds": round(time.monotonic() - started),
            "smtp_accepted": len(smtp.accepted), "smtp_sent_again_after_no_250": smtp.sent_again,
            "smtp_never_accepted": len(smtp.unacknowledged),
            "imap_appended": len(imap.appended) if imap else 0,
            "imap_left_in_inbox": len(dovecot.messages(account)) if dovecot else 0,  # type: ignore[arg-type]
            "ticket_messages": sum(result.messages.values()), "quarantine_entries": sum(result.quarantined.values()),
            **{f"quarantined_{kind}": count for kind, count in sorted(result.quarantine_kinds.items())},
            "duplicates_recorded": result.duplicates,
            "lost": sum(1 for marker in expected if found[marker] == 0),
            "stored_twice": sum(1 for marker in expected if found[marker] > 1),
            "stored_unexpected": sum(1 for marker in found if marker not in expected),
            **outgoing_figures(engine, handler, kills),
        }
        engine.dispose()
        return figures
    finally:
        daemon.kill_leftovers()
        sink.stop()
        if dovecot:
            dovecot.stop()
        if keep:
            print(f"kept: {directory} (maild.toml, daemon.log, the database)")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def failures(figures: dict[str, int]) -> list[str]:
    """The invariants, as messages for what broke."""
    checks = {
        "a mail with a 250 or in IMAP is missing": figures["lost"] == 0,
        "a mail is stored twice": figures["stored_twice"] == 0,
        "a mail never got a 250": figures["smtp_never_accepted"] == 0,
        "IMAP mail was left in the INBOX": figures["imap_left_in_inbox"] == 0,
        "an outbox row was not sent": figures["outbox_not_sent"] == 0,
        "an outbox row marked sent never reached the smarthost": figures["outgoing_lost"] == 0,
        "mail was sent twice beyond the documented window": figures["outgoing_sent_twice"] <= figures["outgoing_window"],
        "the smarthost got mail that is not in the outbox": figures["sink_mail_not_in_outbox"] == 0,
        "the last daemon did not stop cleanly": figures["final_exit_code"] == 0,
    }
    return [message for message, ok in checks.items() if not ok]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-imap", action="store_true", help="SMTP only")
    parser.add_argument("--db-url", help="default: SQLite in the temporary directory")
    parser.add_argument("--max-uptime", type=float, default=3.0, help="longest run before a kill, seconds")
    parser.add_argument("--rate", type=float, default=8.0, help="SMTP mails per second (IMAP: half)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    use_imap = not args.no_imap and dovecot_binary() is not None
    figures = run(args.kills, args.seed, use_imap, args.db_url, args.max_uptime, args.rate, args.keep)
    for name, value in figures.items():
        print(f"{name:>32}: {value}")
    print("FIGURES " + json.dumps(figures), flush=True)
    broken = failures(figures)
    for message in broken:
        print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
