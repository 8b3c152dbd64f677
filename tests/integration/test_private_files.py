"""Data at rest is private (docs/guarantees.md): every file maild creates is 0600 and every directory
0700, whatever the umask. The real commands run with the usual umask 022; each creator is also
checked in-process, without the umask that the command line sets."""

from __future__ import annotations

import asyncio
import os
import smtplib
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from maild.ingest import secret_key
from maild.intake.spool import RawStore
from maild.mail import Attachment as ParsedAttachment
from maild.outbound.transport import MaildirTransport
from maild.skeleton import write_instance
from maild.store import db
from maild.store.attachments import save_attachments
from maild.store.tables import Message
from tests.conftest import REPO, free_port, maild_env


def maild(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """The real command line, started with umask 022 (what a login shell or a service has)."""
    return subprocess.run([sys.executable, "-m", "maild", *args], input=input, capture_output=True, timeout=60,
                          env=maild_env(), preexec_fn=lambda: os.umask(0o022), cwd=REPO)


def open_to_others(root: Path) -> list[str]:
    """Every path under ``root`` (and itself) that group or others may use, with its mode."""
    paths = [root, *root.rglob("*")]
    return [f"{path} {stat.S_IMODE(path.lstat().st_mode):o}" for path in paths
            if not path.is_symlink() and path.lstat().st_mode & 0o077]


def with_attachment(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Matti Meikäläinen <matti@example.fi>"
    msg["To"] = "jasenpalvelu@liitto.fi"
    msg["Subject"] = subject
    msg.set_content("Liitteenä palkkatodistus.")
    msg.add_attachment(b"%PDF-1.4 palkka 3200 e", maintype="application", subtype="pdf", filename="palkka.pdf")
    return bytes(msg)


def smtp_port(config: Path) -> int:
    return int(config.read_text(encoding="utf-8").split("127.0.0.1:")[1].split('"')[0])


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``maild run`` with umask 022, once it listens."""
    port = smtp_port(config)
    daemon = subprocess.Popen([sys.executable, "-m", "maild", "--config", str(config), "run"], cwd=REPO,
                              stdout=log.open("ab"), stderr=subprocess.STDOUT, env=maild_env(),
                              preexec_fn=lambda: os.umask(0o022))
    deadline = time.monotonic() + 30
    while True:
        assert daemon.poll() is None and time.monotonic() < deadline, log.read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return daemon
        except OSError:
            time.sleep(0.05)


def stop_daemon(daemon: subprocess.Popen[bytes], log: Path) -> None:
    daemon.terminate()
    assert daemon.wait(30) == 0, log.read_text()


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    """``maild init`` run with umask 022; the key in a file of its own, the outbox a maildir."""
    target = tmp_path / "liitto"
    result = maild("init", str(target))
    assert result.returncode == 0, result.stderr
    config = target / "maild.toml"
    text = config.read_text(encoding="utf-8")
    text = "\n".join('secret_key = ""' if line.startswith("secret_key") else line for line in text.splitlines())
    config.write_text(text.replace("127.0.0.1:2525", f"127.0.0.1:{free_port()}"), encoding="utf-8")
    return config


def test_ingest_and_run_keep_everything_private(instance: Path) -> None:
    target = instance.parent
    assert open_to_others(target) == []  # maild init: configuration, rules, templates

    stored = maild("--config", str(instance), "ingest", "--recipient", "jasenpalvelu@liitto.fi",
                   input=with_attachment("Palkkatodistus"))
    assert stored.returncode == 0, stored.stderr
    var = target / "var"
    assert {p.name for p in var.iterdir()} >= {"maild.db", "raw", "attachments", "secret.key"}
    assert open_to_others(target) == []

    log = target.parent / "daemon.log"
    daemon = start_daemon(instance, log)
    try:
        with smtplib.SMTP("127.0.0.1", smtp_port(instance), timeout=5) as smtp:
            smtp.sendmail("matti@example.fi", ["jasenpalvelu@liitto.fi"], with_attachment("Toinen todistus"))
        outbox = var / "outbox" / "new"
        deadline = time.monotonic() + 30
        while len(list(outbox.glob("*"))) < 4:  # the acknowledgements and staff notifications
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert {p.name for p in var.iterdir()} >= {"maild.db-wal", "maild.db-shm"}  # open while it runs
        assert open_to_others(target) == []
    finally:
        stop_daemon(daemon, log)
    assert open_to_others(target) == []


def test_run_makes_an_older_instance_private(instance: Path, tmp_path: Path) -> None:
    """What an older maild left readable is made private at start; outside data_dir only a warning."""
    target = instance.parent
    var = target / "var"
    db.upgrade(f"sqlite:///{var / 'maild.db'}")
    RawStore(var).write(with_attachment("Vanha"))
    for path in [var, *var.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # as maild made them before
    outside = tmp_path / "elsewhere" / "outbox"
    outside.mkdir(parents=True)
    outside.chmod(0o755)
    text = instance.read_text(encoding="utf-8").replace('"maildir:var/outbox"', f'"maildir:{outside}"')
    instance.write_text(text, encoding="utf-8")

    log = tmp_path / "daemon.log"
    stop_daemon(start_daemon(instance, log), log)
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    assert stat.S_IMODE((var / "maild.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(outside.stat().st_mode) == 0o755  # not maild's to change: warned about
    assert f"{outside} is open to others" in log.read_text()


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_each_creator_is_private_without_the_command_line_umask(tmp_path: Path, umask_022: None) -> None:
    data = tmp_path / "data"
    RawStore(data).write(b"Subject: x\r\n\r\nbody\r\n")
    assert len(secret_key("", data)) == 64
    engine = db.make_engine(f"sqlite:///{data}/db/maild.db")
    db.upgrade(str(engine.url))
    with Session(engine) as session:
        message = Message(ticket_id=1, direction="in", kind="member", subject="x", text="", raw_path="x")
        save_attachments(session, data, message, (ParsedAttachment("a.pdf", "application/pdf", 3, "ab" * 32, b"pdf"),))
    with engine.connect() as conn:  # open: its -wal and -shm exist
        conn.execute(sa.text("SELECT 1"))
        asyncio.run(MaildirTransport(data / "out" / "box").deliver("bounce@liitto.fi", "matti@example.fi", b"Subject: x\r\n\r\n"))
        assert {p.name for p in (data / "db").iterdir()} == {"maild.db", "maild.db-wal", "maild.db-shm"}
        assert len(list((data / "out" / "box" / "new").iterdir())) == 1
        assert open_to_others(data) == []
    engine.dispose()
    assert write_instance(tmp_path / "inst") and open_to_others(tmp_path / "inst") == []
    assert open_to_others(data) == []


def test_a_file_in_a_day_made_by_another_writer_is_durable_once_its_names_are(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers at a new day (the committer's write threads, or two processes): one makes the
    day's directory and is about to fsync its parent; the other finds the directory there and
    stores a file in it. When that file's names are durable, so must be the day's own name in
    its month, or a power loss takes a message whose row is committed."""
    import threading

    from maild.intake import spool
    from maild.store import private

    data = tmp_path / "data"
    store = RawStore(data)
    now = datetime(2027, 1, 1, 0, 0, 1, tzinfo=timezone.utc)
    day = data / "raw" / "2027" / "01" / "01"
    synced: list[Path] = []
    at_month, release = threading.Event(), threading.Event()
    real = private.fsync_path

    def fsync_dir(path: Path) -> None:
        if Path(path) == day.parent and threading.current_thread().name == "first":
            at_month.set()
            assert release.wait(10)
        real(path)
        synced.append(Path(path))

    monkeypatch.setattr(private, "fsync_dir", fsync_dir)
    monkeypatch.setattr(spool, "fsync_dir", fsync_dir)
    first = threading.Thread(target=store.write, args=(b"Subject: 1\r\n\r\n", now), kwargs={"names_later": True},
                             name="first")
    first.start()
    try:
        assert at_month.wait(10)
        store.sync_names([store.write(b"Subject: 2\r\n\r\n", now, names_later=True)])
        assert day.parent in synced
    finally:
        release.set()
        first.join(10)


def test_a_group_commit_makes_its_files_names_durable_before_their_rows(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Durable before 250 (contract, SMTP): the committer fsyncs the directory that holds the
    files of a group once, and before their rows are committed, so that no committed row names
    a file whose name a power loss could take. Every directory fsync is real; it is only seen."""
    from maild.intake import spool
    from maild.intake.spool import GroupCommitter
    from maild.mail import Envelope
    from maild.store import private

    url = f"sqlite:///{tmp_path}/maild.db"
    db.upgrade(url)
    engine = db.make_engine(url)
    rows_at_sync: list[int] = []
    real = spool.fsync_dir

    def fsync_dir(path: Path) -> None:
        real(path)
        if Path(path).parent.parent.parent.name == "raw":  # a day's directory, whose names are the files'
            with engine.connect() as connection:
                rows_at_sync.append(connection.execute(sa.text("select count(*) from inbound")).scalar_one())

    monkeypatch.setattr(spool, "fsync_dir", fsync_dir)
    monkeypatch.setattr(private, "fsync_dir", fsync_dir)

    async def store_three() -> list[int | BaseException]:
        committer = GroupCommitter(engine, RawStore(tmp_path / "var"))
        committer.start()
        try:
            envelope = Envelope("smtp", "a@example.fi", ("jasenpalvelu@liitto.fi",))
            return await committer.accept_many([(f"Subject: {i}\r\n\r\nx\r\n".encode(), envelope) for i in range(3)])
        finally:
            await committer.close()

    try:
        ids = asyncio.run(store_three())
        assert all(isinstance(i, int) for i in ids)
        assert rows_at_sync[-1:] == [0]  # the day's names were made durable before any row was committed
        assert len(rows_at_sync) <= 2  # once for the group (and once when the day was new), not once a file
        with engine.connect() as connection:
            assert connection.execute(sa.text("select count(*) from inbound")).scalar_one() == 3
    finally:
        engine.dispose()
