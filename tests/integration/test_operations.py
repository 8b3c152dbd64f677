"""Operating maild from the shell (docs/operations.md): read-only commands, status, outbox operations,
backup and restore, in real subprocesses on real databases."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import os
import time
from pathlib import Path

import pytest

from tests.conftest import run_maild
from tests.mailgen import mail

READ_ONLY = [
    ("tickets", "list"), ("tickets", "show", "1"), ("tickets", "search", "x"), ("members", "show", "a@b.fi"),
    ("quarantine", "list"), ("quarantine", "show", "1"), ("outbox", "list"), ("jobs", "list"), ("status",), ("report",),
]


def cli(config: Path, *args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    return run_maild(*args, "--config", str(config), input=input)


def _tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: " ".join(c))
def test_read_only_commands_create_nothing_and_say_what_they_tried(make_instance, tmp_path: Path, command) -> None:  # type: ignore[no-untyped-def]
    database = tmp_path / "inst" / "nowhere" / "maild.db"
    config = make_instance(f"sqlite:///{database}")
    before = _tree(tmp_path)
    result = cli(config, *command)
    assert result.returncode != 0
    stderr = result.stderr.decode()
    assert str(config) in stderr and str(database) in stderr and "Traceback" not in stderr
    assert _tree(tmp_path) == before  # no database, no data directory


def test_read_only_command_on_an_unreachable_server_database_names_it(make_instance) -> None:  # type: ignore[no-untyped-def]
    config = make_instance("postgresql+psycopg://maild:sekret@127.0.0.1:9/maild")
    result = cli(config, "tickets", "list")
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "127.0.0.1:9/maild" in stderr and "sekret" not in stderr and "Traceback" not in stderr


def _instance_with_tickets(make_instance, sqlite_url: str, count: int = 3) -> Path:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url)
    files = []
    for n in range(1, count + 1):
        files.append(config.parent / f"{n}.eml")
        files[-1].write_bytes(mail(subject=f"Asia {n} " + "pitkä otsikko " * 8, sender=f"jasen{n}@example.fi",
                                   message_id=f"<m{n}@x>"))
    assert cli(config, "ingest", *map(str, files)).returncode == 0  # in this order: numbers 1..count
    return config


def test_listings_show_open_tickets_first_and_are_never_cut_when_piped(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = _instance_with_tickets(make_instance, sqlite_url)
    assert cli(config, "tickets", "close", "3").returncode == 0
    numbers = [row["number"] for row in json.loads(cli(config, "tickets", "list", "--json").stdout)]
    assert numbers == [2, 1, 3]  # open ones newest first, then the resolved one
    assert [row["number"] for row in json.loads(cli(config, "tickets", "list", "--limit", "1", "--json").stdout)] == [2]
    lines = cli(config, "tickets", "list").stdout.decode().splitlines()
    assert lines[0].split("\t")[0] == "tag" and len(lines) == 4
    assert lines[1].split("\t")[-1] == "Asia 2 " + ("pitkä otsikko " * 8).strip()  # the whole subject


def test_tickets_show_takes_the_tag_and_choices_are_validated(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = _instance_with_tickets(make_instance, sqlite_url, count=2)
    for spelling in ("2", "JP#2", "[JP#2]", "jp#2"):
        result = cli(config, "tickets", "show", spelling, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["number"] == 2
    for args, named in [
        (("tickets", "list", "--status", "done"), "new, open, pending, resolved, closed"),
        (("tickets", "list", "--queue", "nosuch"), "jasenasiat"),
        (("outbox", "list", "--state", "lost"), "queued, sending, sent, failed, held"),
        (("tickets", "show", "XY#2"), "JP#12"),
    ]:
        result = cli(config, *args)
        assert result.returncode == 1 and named in result.stderr.decode(), args


def test_status_without_a_daemon_is_critical_and_counts_the_backlog(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = _instance_with_tickets(make_instance, sqlite_url, count=2)
    result = cli(config, "status", "--json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert {"version", "config_file", "database", "daemon", "spool", "quarantine", "outbox", "imap", "sweeps",
            "problems"} <= set(report)
    assert report["config_file"] == str(config) and report["daemon"]["running"] is False
    assert report["outbox"]["queued"] > 0 and report["spool"] == {"pending": 0, "oldest_pending_seconds": None}
    assert any("not running" in problem for problem in report["problems"])
    assert {sweep["job"] for sweep in report["sweeps"]} >= {"staff_reminder", "close"}
    text = cli(config, "status")
    assert text.returncode == 2 and "CRITICAL" in text.stdout.decode()


def test_status_without_a_database_is_critical(make_instance, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(f"sqlite:///{tmp_path}/none/maild.db")
    assert cli(config, "status").returncode == 2


def test_outbox_hold_retry_delete(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = _instance_with_tickets(make_instance, sqlite_url, count=1)
    rows = json.loads(cli(config, "outbox", "list", "--json").stdout)
    ids = [str(row["id"]) for row in rows]
    assert len(ids) >= 2 and {row["state"] for row in rows} == {"queued"}

    assert cli(config, "outbox", "hold", "ALL").returncode == 0
    held = json.loads(cli(config, "outbox", "list", "--state", "held", "--json").stdout)
    assert sorted(str(row["id"]) for row in held) == sorted(ids)

    assert cli(config, "outbox", "retry", ids[0]).returncode == 0
    assert json.loads(cli(config, "outbox", "list", "--state", "queued", "--json").stdout)[0]["id"] == int(ids[0])

    result = cli(config, "outbox", "delete", ids[1], "999999")
    assert result.returncode == 1 and "999999" in result.stderr.decode()  # the unknown id is named
    remaining = {str(row["id"]) for row in json.loads(cli(config, "outbox", "list", "--all", "--json").stdout)}
    assert ids[1] not in remaining and ids[0] in remaining
    assert cli(config, "outbox", "hold").returncode != 0  # no ids, no ALL: nothing is guessed


def _modes(root: Path) -> set[str]:
    return {f"{path.relative_to(root)} {oct(path.stat().st_mode & 0o777)}" for path in root.rglob("*")
            if path.stat().st_mode & 0o077}


def test_backup_and_restore_elsewhere_give_identical_tickets(make_instance, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = _instance_with_tickets(make_instance, f"sqlite:///{tmp_path}/inst/var/maild.db")
    backup = tmp_path / "backups" / "monday"
    result = cli(config, "backup", str(backup))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["database"] == "sqlite" and "database/maild.db" in manifest["files"]
    assert any(name.startswith("data/raw/") for name in manifest["files"])
    assert "config/maild.toml" in manifest["files"]
    assert _modes(backup) == set()  # private: 0600 files, 0700 directories

    again = cli(config, "backup", str(backup))
    assert again.returncode == 1 and "overwrite" in again.stderr.decode()

    other = make_instance(f"sqlite:///{tmp_path}/other/var/maild.db", name="other")
    restored = cli(other, "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    for args in (("tickets", "list", "--json"), ("tickets", "show", "1", "--json")):
        assert json.loads(cli(other, *args).stdout) == json.loads(cli(config, *args).stdout)
    raw_files = sorted(p.name for p in (tmp_path / "other" / "var" / "raw").rglob("*.eml"))
    assert raw_files and raw_files == sorted(p.name for p in (tmp_path / "inst" / "var" / "raw").rglob("*.eml"))

    into_data = cli(other, "restore", str(backup))
    assert into_data.returncode == 1 and "no data" in into_data.stderr.decode()


def test_an_interrupted_or_altered_backup_is_refused(make_instance, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = _instance_with_tickets(make_instance, f"sqlite:///{tmp_path}/inst/var/maild.db", count=1)
    backup = tmp_path / "b"
    assert cli(config, "backup", str(backup)).returncode == 0
    target = make_instance(f"sqlite:///{tmp_path}/t/var/maild.db", name="t")

    raw = next((backup / "data" / "raw").rglob("*.eml"))
    raw.write_bytes(raw.read_bytes() + b"x")
    altered = cli(target, "restore", str(backup))
    assert altered.returncode == 1 and "changed since the backup" in altered.stderr.decode()
    assert not (tmp_path / "t" / "var").exists()  # nothing restored

    os.rename(backup / "manifest.json", tmp_path / "manifest.json")  # as if the backup stopped before its end
    cut = cli(target, "restore", str(backup))
    assert cut.returncode == 1 and "interrupted" in cut.stderr.decode()

    (tmp_path / "c.partial").mkdir()
    leftover = cli(config, "backup", str(tmp_path / "c"))
    assert leftover.returncode == 1 and "interrupted" in leftover.stderr.decode()


def test_a_backup_inside_the_data_directory_is_refused(make_instance, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``maild backup var/monday`` would copy the backup being written into itself (and every
    earlier one into the next), and an erasure would then find the member in it: it must go
    elsewhere."""
    config = _instance_with_tickets(make_instance, f"sqlite:///{tmp_path}/inst/var/maild.db", count=1)
    for inside in (tmp_path / "inst" / "var" / "monday", tmp_path / "inst" / "var" / "raw" / ".." / "b"):
        refused = cli(config, "backup", str(inside))
        assert refused.returncode == 1 and "inside the data directory" in refused.stderr.decode()
    assert sorted(p.name for p in (tmp_path / "inst" / "var").iterdir()) == ["maild.db", "raw"]  # nothing written
    assert cli(config, "backup", str(tmp_path / "inst" / "backups" / "monday")).returncode == 0  # beside it: fine


def test_status_of_a_running_daemon_is_ok_from_any_shell(daemon) -> None:  # type: ignore[no-untyped-def]
    running = daemon()
    deadline = time.monotonic() + 30
    while True:
        result = cli(running.config, "status", "--json")
        report = json.loads(result.stdout)
        swept = all(sweep["last_run_at"] for sweep in report["sweeps"])  # each runs once at start
        if (result.returncode == 0 and swept) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.returncode == 0, report["problems"]
    assert report["status"] == "ok" and report["daemon"]["running"] is True
    assert report["daemon"]["pid"] == running.proc.pid
    assert swept, report["sweeps"]
    assert running.stop() == 0
    stopped = cli(running.config, "status", "--json")
    assert stopped.returncode == 2 and json.loads(stopped.stdout)["daemon"]["running"] is False


@pytest.mark.postgres
def test_backup_and_restore_with_postgresql_leave_the_database_to_pg_dump(make_instance, pg_server_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if not pg_server_url:
        pytest.skip("MAILD_TEST_POSTGRES_URL is not set")
    config = make_instance(pg_server_url)
    assert cli(config, "db", "upgrade").returncode == 0
    assert cli(config, "ingest", input=mail(subject="Varmuuskopio", message_id="<pg@x>")).returncode == 0
    backup = tmp_path / "pg-backup"
    result = cli(config, "backup", str(backup))
    assert result.returncode == 0, result.stderr
    assert "pg_dump" in result.stdout.decode()
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["database"].startswith("external") and any(n.startswith("data/raw/") for n in manifest["files"])

    nowhere = pg_server_url.rsplit("/", 1)[0] + "/maild_restore_not_yet_created"  # the dump comes after
    target = make_instance(nowhere, name="target")
    restored = cli(target, "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert "pg_restore" in restored.stdout.decode()
    assert sorted(p.name for p in (tmp_path / "target" / "var" / "raw").rglob("*.eml")) == sorted(
        p.name for p in (tmp_path / "inst" / "var" / "raw").rglob("*.eml"))


def test_restore_refuses_a_database_it_cannot_read(make_instance, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A locked database is not an empty one: nothing is replaced."""
    config = _instance_with_tickets(make_instance, f"sqlite:///{tmp_path}/inst/var/maild.db", count=1)
    backup = tmp_path / "b"
    assert cli(config, "backup", str(backup)).returncode == 0
    database = tmp_path / "t" / "maild.db"
    target = make_instance(f"sqlite:///{database}?timeout=1", name="t")
    assert cli(target, "ingest", input=mail(subject="Oma", message_id="<own@x>")).returncode == 0
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as conn:
        conn.execute("begin exclusive")
        result = cli(target, "restore", str(backup))
        conn.execute("rollback")
    assert result.returncode == 1 and "nothing was restored" in result.stderr.decode()
    assert [t["subject"] for t in json.loads(cli(target, "tickets", "list", "--json").stdout)] == ["Oma"]


def test_a_backup_leaves_out_files_being_written(tmp_path: Path) -> None:
    from maild import backup as backups

    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    (data / "raw" / "a.eml").write_bytes(b"whole")
    (data / "raw" / ".b.eml.0123abcd.tmp").write_bytes(b"half")  # a spool write in progress
    manifest = backups.backup("postgresql+psycopg://x@127.0.0.1/maild", data, [], tmp_path / "bk", "test")
    assert sorted(manifest["files"]) == ["data/raw/a.eml"]
    twice = tmp_path / "maild.toml"
    twice.write_text("")
    with pytest.raises(FileExistsError):  # a failure half-way: the same file asked for twice
        backups.backup("postgresql+psycopg://x@127.0.0.1/maild", data, [twice, twice], tmp_path / "bk2", "test")
    assert not (tmp_path / "bk2.partial").exists() and not (tmp_path / "bk2").exists()
