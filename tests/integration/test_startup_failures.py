"""A daemon that cannot start (docs/operations.md): exits non-zero within 10 s, with the reason
on stderr, leaving no process behind (its spool processor child included)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, maild_env

START_LIMIT_SECONDS = 10.0


@dataclass
class Failed:
    returncode: int
    stderr: str
    seconds: float
    left_behind: list[str]


def process_group(pgid: int) -> list[str]:
    """Command lines of the live processes in a process group (zombies are gone already)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # exited meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(f"{entry.name}: {cmdline}")
    return found


def start_and_fail(config: Path) -> Failed:
    """`maild run` in a process group of its own; whatever of that group is still alive once
    it has exited was left behind (the spool processor child would be, inheriting the group)."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "maild", "--config", str(config), "run"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=maild_env(), start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=START_LIMIT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"maild run was still running after {START_LIMIT_SECONDS:.0f} s: {process_group(proc.pid)}")
    seconds = time.monotonic() - started
    left_behind = process_group(proc.pid)
    if left_behind:
        os.killpg(proc.pid, signal.SIGKILL)
    return Failed(proc.returncode, stderr.decode(errors="replace"), seconds, left_behind)


def assert_failed_cleanly(failed: Failed, reason: str) -> None:
    assert failed.returncode != 0, failed.stderr
    assert failed.seconds < START_LIMIT_SECONDS
    assert failed.left_behind == []
    assert reason in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr, failed.stderr


def test_port_in_use(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        failed = start_and_fail(make_instance(sqlite_url, port=port))
    assert_failed_cleanly(failed, f"('127.0.0.1', {port}): address already in use")


def test_address_not_on_this_machine(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    address = "203.0.113.77"  # TEST-NET-3: for documentation, yet some sandboxes use such ranges
    with socket.socket() as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            pass
        else:
            pytest.skip(f"{address} belongs to this machine")
    config = make_instance(sqlite_url)
    config.write_text(config.read_text().replace('listen = "127.0.0.1:', f'listen = "{address}:'))
    assert_failed_cleanly(start_and_fail(config), "cannot assign requested address")


def test_database_unreachable(make_instance) -> None:  # type: ignore[no-untyped-def]
    closed = free_port()
    failed = start_and_fail(make_instance(f"postgresql+psycopg://maild@127.0.0.1:{closed}/maild"))
    assert_failed_cleanly(failed, f'connection to server at "127.0.0.1", port {closed} failed')


def test_sqlite_database_cannot_be_created(make_instance, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "file").write_text("not a directory")
    failed = start_and_fail(make_instance(f"sqlite:///{tmp_path}/file/maild.db"))
    assert_failed_cleanly(failed, f"{tmp_path}/file")


BAD_CONFIGS: dict[str, tuple[Callable[[str], str], str]] = {
    "toml syntax": (lambda text: text + "\n[smtp\n", "maild.toml:"),
    "unknown key": (lambda text: text.replace("[smtp]", "[smtp]\nlisten_on = 1"), "smtp.listen_on: Extra inputs are not permitted"),
    "bad value": (lambda text: text.replace('listen = "127.0.0.1:', 'listen = "nowhere'), "smtp.listen"),
    "secret not set": (lambda text: text + '\n[outbound]\ntransport = "smtp://127.0.0.1:1"\nusername = "u"\n'
                       'password_env = "MAILD_TEST_NO_SUCH_VARIABLE"\n', "MAILD_TEST_NO_SUCH_VARIABLE is not set"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_configuration(make_instance, sqlite_url: str, case: str) -> None:  # type: ignore[no-untyped-def]
    change, reason = BAD_CONFIGS[case]
    config = make_instance(sqlite_url)
    config.write_text(change(config.read_text()))
    assert_failed_cleanly(start_and_fail(config), reason)


def test_bad_rules(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url, rules="queues: [not, a, mapping]\n")
    assert_failed_cleanly(start_and_fail(config), "rules.yaml")


def test_sighup_the_moment_the_port_accepts_reloads_the_rules(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """Once the port accepts, a SIGHUP is a reload, never the default action (terminate): the
    listener binds before the spool processor starts, so the handler must be there first."""
    port = free_port()
    config = make_instance(sqlite_url, port=port)
    log = config.parent / "daemon.log"
    proc = subprocess.Popen([sys.executable, "-m", "maild", "--config", str(config), "run"],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=maild_env())
    try:
        deadline = time.monotonic() + 60
        with socket.socket() as probe:
            while probe.connect_ex(("127.0.0.1", port)) != 0:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.001)
        proc.send_signal(signal.SIGHUP)
        while "rules reloaded" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "no reload logged"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
