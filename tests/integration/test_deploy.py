"""deploy/ (docs/operations.md): the systemd unit as systemd reads it, sd_notify from the real
daemon, the Postfix pipe as Postfix runs it, the container files, and `maild --version`."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import maild
from maild import daemon, sdnotify
from maild.outbound.transport import SmtpTransport
from tests.conftest import REPO, free_port, maild_env, run_maild
from tests.mailgen import mail

DEPLOY = REPO / "deploy"
INSTALLED_MAILD = "/opt/maild/.venv/bin/maild"
INSTALLED_CONFIG = "/etc/maild/maild.toml"


def unit_directives(text: str) -> dict[str, list[str]]:
    """Every KEY=value of a unit file (a key may repeat), comments and sections left out."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def seconds(value: str) -> float:
    """A systemd time span such as 5min, 300s or 1min 30s."""
    units = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    return sum(float(n) * units[u or "s"] for n, u in re.findall(r"(\d+)\s*([a-z]*)", value))


def query(sqlite_url: str, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        return db.execute(sql).fetchall()


# --- the systemd unit ----------------------------------------------------------------------


@pytest.fixture
def verifiable_unit(tmp_path: Path) -> Path:
    """The unit as shipped, with ExecStart pointing at an executable that exists here
    (systemd-analyze checks that the binary is there; /opt/maild is not on a test machine)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    text = (DEPLOY / "maild.service").read_text(encoding="utf-8")
    assert INSTALLED_MAILD in text
    unit = tmp_path / "maild.service"
    unit.write_text(text.replace(INSTALLED_MAILD, sys.executable), encoding="utf-8")
    return unit


def test_unit_passes_systemd_analyze_verify(verifiable_unit: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(verifiable_unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stdout + result.stderr


def test_unit_is_hardened_by_systemds_own_measure(verifiable_unit: Path) -> None:
    """`systemd-analyze security` rates exposure 0-10; --threshold (tenths) fails above it."""
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", "--threshold=20", str(verifiable_unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-600:] + result.stderr


def test_unit_keeps_the_contract() -> None:
    unit = unit_directives((DEPLOY / "maild.service").read_text(encoding="utf-8"))
    expected = {"Type": "notify", "User": "maild", "UMask": "0077", "ProtectSystem": "strict",
                "ReadWritePaths": "/var/lib/maild", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                "ExecReload": "/bin/kill -HUP $MAINPID", "Restart": "on-failure", "CapabilityBoundingSet": "",
                "MemoryDenyWriteExecute": "yes"}
    assert {key: unit.get(key, [None])[-1] for key in expected} == expected
    assert unit["ExecStart"] == [f"{INSTALLED_MAILD} --config {INSTALLED_CONFIG} run"]
    # The longest drain maild/daemon.py can take: SMTP sessions, IMAP pollers, a mail being
    # sent (the SMTP transport's timeout), then the spool processor.
    smtp_timeout = inspect.signature(SmtpTransport).parameters["timeout"].default
    drain = daemon.DRAIN_SECONDS * 2 + smtp_timeout + daemon.DRAIN_SECONDS * 4
    assert seconds(unit["TimeoutStopSec"][-1]) > drain


# --- sd_notify ------------------------------------------------------------------------------


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in the abstract namespace, as systemd passes it: '@name'."""
    name = f"maild-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    yield sock, "@" + name
    sock.close()


def receive(sock: socket.socket, timeout: float) -> str:
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_daemon_is_ready_once_listening_feeds_the_watchdog_and_says_stopping(
        make_instance, sqlite_url: str, notify_socket: tuple[socket.socket, str]) -> None:  # type: ignore[no-untyped-def]
    sock, address = notify_socket
    port = free_port()
    config = make_instance(sqlite_url, port=port)
    env = maild_env() | {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}
    log = config.parent / "daemon.log"  # a file, not a pipe nobody reads: a full pipe would block the daemon
    with log.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "maild", "--config", str(config), "run"],
                                stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    try:
        ready = receive(sock, 60)
        listening = accepts(port)  # at once: READY=1 must not come before the listener
        assert ready.splitlines()[0] == "READY=1" and f"STATUS=listening on 127.0.0.1:{port}" in ready
        assert listening
        started = time.monotonic()
        pings = [receive(sock, 2) for _ in range(3)]  # every half of WATCHDOG_USEC
        assert pings == ["WATCHDOG=1"] * 3 and time.monotonic() - started < 2.5
        proc.send_signal(signal.SIGTERM)
        while (message := receive(sock, 10)) == "WATCHDOG=1":
            pass
        assert message == "STOPPING=1"
        assert proc.wait(60) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_notify_without_a_service_manager_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False


def test_notify_to_a_socket_path_and_to_one_that_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert sdnotify.notify("STOPPING=1") is True
        assert receive(sock, 1) == "STOPPING=1"
    path.unlink()
    assert sdnotify.notify("STOPPING=1") is False  # logged, never raised


@pytest.mark.parametrize(("usec", "pid", "expected"), [
    ("30000000", None, 30.0), ("30000000", "self", 30.0), ("30000000", "1", None), ("0", None, None), (None, None, None)])
def test_watchdog_only_when_meant_for_this_process(monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None,
                                                   expected: float | None) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert sdnotify.watchdog_seconds() == expected


# --- MemoryDenyWriteExecute=yes --------------------------------------------------------------

# The kernel's own form of MemoryDenyWriteExecute (Linux 6.3+): no writable and executable
# memory, inherited by every child and kept across execve.
WITH_MDWE = """
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_daemon_works_without_writable_executable_memory(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """What MemoryDenyWriteExecute=yes in the unit imposes: the listener, the spool processor
    child and the sender all run with it."""
    if subprocess.run([sys.executable, "-c", WITH_MDWE, "/bin/true"]).returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE")
    port = free_port()
    config = make_instance(sqlite_url, port=port)
    proc = subprocess.Popen([sys.executable, "-c", WITH_MDWE, sys.executable, "-m", "maild", "--config", str(config), "run"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=maild_env())
    try:
        deadline = time.monotonic() + 60
        while not accepts(port):
            assert proc.poll() is None and time.monotonic() < deadline, "maild under MDWE did not start"
            time.sleep(0.1)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("matti@example.fi", ["jasenpalvelu@liitto.fi"], mail(subject="Jäsenkortti"))
        while not query(sqlite_url, "SELECT number FROM tickets"):
            assert time.monotonic() < deadline, "no ticket under MDWE"
            time.sleep(0.2)
        outbox = config.parent / "var" / "outbox" / "new"
        while not (outbox.is_dir() and any(outbox.iterdir())):  # the acknowledgement went out
            assert time.monotonic() < deadline, "nothing sent under MDWE"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate()
    assert b"Traceback" not in stderr, stderr.decode()[-2000:]


# --- Postfix --------------------------------------------------------------------------------


def master_cf_entry(service: str) -> dict[str, str]:
    """The pipe service's attributes (flags, user, null_sender, argv) from deploy/postfix/master.cf."""
    lines = (DEPLOY / "postfix" / "master.cf").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [service])
    assert lines[start].split()[1:] == ["unix", "-", "n", "n", "-", "-", "pipe"]
    body = []
    for line in lines[start + 1:]:
        if not line[:1].isspace():
            break
        body.append(line.strip())
    text = " ".join(body)
    attributes = dict(re.findall(r"(flags|user|null_sender)=(\S*)", text.split("argv=")[0]))
    attributes["argv"] = text.split("argv=", 1)[1]
    return attributes


def as_postfix_runs_it(argv: str, config: Path, sender: str, recipient: str) -> list[str]:
    """The argv of master.cf with Postfix's macros expanded, our maild and config in place."""
    words = argv.split()
    assert words[0] == INSTALLED_MAILD and words[1:3] == ["--config", INSTALLED_CONFIG]
    expanded = [{"${sender}": sender, "${recipient}": recipient}.get(word, word) for word in words[3:]]
    return [sys.executable, "-m", "maild", "--config", str(config), *expanded]


def test_postfix_files_agree_with_each_other() -> None:
    entry = master_cf_entry("maild")
    assert entry["user"] == "maild" and set("DR") <= set(entry["flags"]) and entry["null_sender"] == ""
    main_cf = (DEPLOY / "postfix" / "main.cf").read_text(encoding="utf-8")
    assert re.search(r"^maild_destination_recipient_limit = 1$", main_cf, re.M)
    transport = (DEPLOY / "postfix" / "transport").read_text(encoding="utf-8")
    assert re.search(r"^jasenpalvelu@liitto\.fi\s+maild:$", transport, re.M)


def test_postfix_pipe_argv_stores_and_files_the_message(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url)
    argv = as_postfix_runs_it(master_cf_entry("maild")["argv"], config, "matti@example.fi", "jasenpalvelu@liitto.fi")
    # flags=DR: Postfix prepends these two headers
    message = b"Delivered-To: jasenpalvelu@liitto.fi\nReturn-Path: <matti@example.fi>\n" + mail(subject="Jäsenmaksu")
    result = subprocess.run(argv, input=message, capture_output=True, timeout=60, env=maild_env())
    assert result.returncode == 0, result.stderr
    tickets = json.loads(run_maild("--config", str(config), "tickets", "list", "--json").stdout)
    assert [(t["subject"], t["requester"], t["queue"]) for t in tickets] == [("Jäsenmaksu", "matti@example.fi", "jasenasiat")]


def test_postfix_pipe_argv_takes_the_null_sender_of_a_bounce(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """null_sender= makes ${sender} an empty argument for <>: maild must take it, not fail."""
    config = make_instance(sqlite_url)
    argv = as_postfix_runs_it(master_cf_entry("maild")["argv"], config, "", "jasenpalvelu@liitto.fi")
    bounce = mail(subject="Undelivered Mail Returned to Sender", sender="MAILER-DAEMON@example.fi")
    result = subprocess.run(argv, input=b"Return-Path: <>\n" + bounce, capture_output=True, timeout=60, env=maild_env())
    assert result.returncode == 0, result.stderr
    assert query(sqlite_url, "SELECT mail_from, recipients FROM inbound") == [("", '["jasenpalvelu@liitto.fi"]')]


def test_postfix_pipe_argv_defers_when_maild_cannot_store(make_instance) -> None:  # type: ignore[no-untyped-def]
    """Exit 75 (EX_TEMPFAIL): Postfix keeps the message queued and tries again."""
    config = make_instance(f"postgresql+psycopg://maild@127.0.0.1:{free_port()}/maild")
    argv = as_postfix_runs_it(master_cf_entry("maild")["argv"], config, "matti@example.fi", "jasenpalvelu@liitto.fi")
    result = subprocess.run(argv, input=mail(), capture_output=True, timeout=60, env=maild_env())
    assert result.returncode == 75, result.stderr


# --- container ------------------------------------------------------------------------------


def containerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def test_containerfile_runs_maild_unprivileged_with_data_on_a_volume() -> None:
    instructions = containerfile_instructions()
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM"):]
    values = {op: arg for op, arg in final}
    assert values["USER"] == "maild" and values["VOLUME"] == '["/var/lib/maild"]'
    assert json.loads(values["ENTRYPOINT"]) == ["maild"] and json.loads(values["CMD"]) == ["run"]
    assert re.search(r"useradd --system --uid 10025 --gid maild", values["RUN"])
    for op, arg in instructions:  # what the build copies from the repository exists
        if op == "COPY" and not arg.startswith("--from"):
            assert all((REPO / source).exists() for source in arg.split()[:-1]), arg


def test_compose_runs_maild_with_postgresql_as_non_root() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"db", "migrate", "maild"} and set(compose["volumes"]) == {"maild-data", "db-data"}
    uid = re.search(r"--uid (\d+)", (DEPLOY / "Containerfile").read_text(encoding="utf-8")).group(1)  # type: ignore[union-attr]
    for name in ("migrate", "maild"):
        service = services[name]
        assert service["user"] == f"{uid}:{uid}"
        assert service["environment"]["MAILD_DATABASE__URL"].startswith("postgresql+psycopg://maild@db:5432/")
        assert "maild-data:/var/lib/maild" in service["volumes"]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Containerfile"}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["maild"]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert "db-data:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert seconds(services["maild"]["stop_grace_period"]) >= seconds(
        unit_directives((DEPLOY / "maild.service").read_text(encoding="utf-8"))["TimeoutStopSec"][-1])


# --- maild --version -------------------------------------------------------------------------


def test_version() -> None:
    result = run_maild("--version")
    assert result.returncode == 0 and result.stdout.decode() == f"maild {maild.__version__}\n", result.stderr


# --- from SQLite to PostgreSQL ---------------------------------------------------------------


@pytest.mark.postgres
def test_sqlite_to_postgresql_copies_an_instance_that_then_carries_on(make_instance, sqlite_url: str, db_url: str) -> None:  # type: ignore[no-untyped-def]
    if not db_url.startswith("postgresql"):
        pytest.skip("the PostgreSQL half of db_url")
    config = make_instance(sqlite_url)
    files = []
    for number, raw in enumerate((mail(subject="Jäsenmaksu", body="Paljonko jäsenmaksu on?"), mail(subject="VS: [JP#1] Jäsenmaksu", body="Kiitos!"),
                                  mail(subject="Lasku puuttuu", sender="liisa@example.fi"))):
        files.append(config.with_name(f"{number}.eml"))
        files[-1].write_bytes(raw)
    assert run_maild("--config", str(config), "ingest", *map(str, files)).returncode == 0
    pg_config = config.with_name("maild-pg.toml")  # same directory: the same data_dir
    pg_config.write_text(config.read_text().replace(sqlite_url, db_url))
    assert run_maild("--config", str(pg_config), "db", "upgrade").returncode == 0
    script = [sys.executable, str(DEPLOY / "sqlite_to_postgresql.py")]

    copied = subprocess.run([*script, sqlite_url, db_url], capture_output=True, text=True, timeout=120, env=maild_env())
    assert copied.returncode == 0, copied.stderr
    assert "tickets: 2" in copied.stdout.splitlines()
    before, after = (run_maild("--config", str(c), "tickets", "show", "1", "--json") for c in (config, pg_config))
    assert before.returncode == after.returncode == 0 and json.loads(before.stdout) == json.loads(after.stdout)
    assert len(json.loads(after.stdout)["messages"]) == 5  # two from the member, the ack, two notifications
    # the PostgreSQL instance carries on: the next ticket is 3, its rows take fresh ids
    assert run_maild("--config", str(pg_config), "ingest", input=mail(subject="Osoitteenmuutos", sender="uusi@example.fi")).returncode == 0
    listed = json.loads(run_maild("--config", str(pg_config), "tickets", "list", "--json").stdout)
    assert sorted(t["number"] for t in listed) == [1, 2, 3]

    again = subprocess.run([*script, sqlite_url, db_url], capture_output=True, text=True, timeout=120, env=maild_env())
    assert again.returncode == 1 and "already has rows in: " in again.stderr
