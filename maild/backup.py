"""``maild backup DIR`` and ``maild restore DIR``: a consistent copy of an instance.

A backup holds the SQLite database (taken with SQLite's online backup, so the daemon may keep
running), everything under ``data_dir`` (raw mail, attachments, the secret key file), the
configuration, rules and templates, and ``manifest.json`` with a SHA-256 sum of every file.
The database is copied first: raw files are written before the rows that name them are
committed, so every file the copied database names is already on disk when the files are
copied after it.

It is written into ``DIR.partial`` and renamed to ``DIR`` only when complete, with the manifest
written last: an interrupted backup is never mistaken for a whole one. Neither command ever
overwrites anything. A PostgreSQL database is left to ``pg_dump`` (the files are still copied).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


from maild.store import db
from maild.store.private import FILE_MODE, fsync_dir, make_dirs

MANIFEST = "manifest.json"
DATABASE = "database/maild.db"
FORMAT = 1


class BackupError(Exception):
    """A backup or restore that cannot be done; nothing was overwritten."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(root: Path, skip: frozenset[Path] = frozenset()) -> Iterator[Path]:
    """Regular files under ``root`` (links are not followed), sorted; not the temporary files
    that a running maild is writing (``.NAME.UUID.tmp``, renamed once whole)."""
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.startswith(".") and name.endswith(".tmp"):
                continue
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink() and path.resolve() not in skip:
                yield path


def _private_copy(source: Path, target: Path) -> None:
    """Stream ``source`` into a new private file ``target`` (never over an existing one)."""
    make_dirs(target.parent)
    with source.open("rb") as src, open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())


def _sqlite_path(url: str) -> Path | None:
    found = db.sqlite_file(url)
    return found.resolve() if found else None


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _fill(partial: Path, database_url: str, data_dir: Path, config_files: list[Path], version: str) -> dict[str, Any]:
    """Write the backup's files and, last, its manifest into ``partial``."""
    database = _sqlite_path(database_url)
    files: dict[str, dict[str, Any]] = {}
    if database is not None:
        copy = partial / DATABASE
        make_dirs(copy.parent)
        os.close(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as source, \
                closing(sqlite3.connect(copy)) as dest:
            source.backup(dest)
    if data_dir.is_dir():
        for path in _files(data_dir, _database_files(database)):
            try:
                _private_copy(path, partial / "data" / path.relative_to(data_dir))
            except FileNotFoundError:  # removed since it was listed (retention, erasure): not in the copy
                continue
    for path in config_files:
        if path.is_file():
            _private_copy(path, partial / "config" / path.name)
        elif path.is_dir():
            for item in _files(path):
                _private_copy(item, partial / "config" / path.name / item.relative_to(path))
    for path in _files(partial):
        files[path.relative_to(partial).as_posix()] = {"sha256": _sha256(path), "size": path.stat().st_size}
    manifest = {
        "format": FORMAT,
        "maild_version": version,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "database": "sqlite" if database else "external: back it up with pg_dump",
        "files": files,
    }
    manifest_path = partial / MANIFEST
    fd = os.open(manifest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with open(fd, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    return manifest


def backup(database_url: str, data_dir: Path, config_files: list[Path], target: Path,
           version: str) -> dict[str, Any]:
    """Copy the instance into ``target`` (which must not exist, or be an empty directory);
    return the manifest."""
    if target.resolve().is_relative_to(Path(data_dir).resolve()):
        # it would copy itself while it is written, and every earlier backup into the next one
        raise BackupError(f"{target} is inside the data directory {data_dir}: write the backup elsewhere")
    if target.exists() and not _is_empty_dir(target):
        raise BackupError(f"{target} exists and is not empty: a backup never overwrites")
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        raise BackupError(f"{partial} exists: an earlier backup was interrupted; remove it first")
    make_dirs(partial)
    try:
        manifest = _fill(partial, database_url, data_dir, config_files, version)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # a failed backup leaves nothing to mistake for one
        raise
    if target.exists():
        target.rmdir()  # empty, checked above
    os.rename(partial, target)
    fsync_dir(target.parent)
    return manifest


def verify(source: Path) -> dict[str, Any]:
    """The manifest of a complete, unaltered backup; else BackupError naming what is wrong."""
    manifest_path = source / MANIFEST
    if not manifest_path.is_file():
        raise BackupError(f"{source}: no {MANIFEST}: not a maild backup, or an interrupted one")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files: dict[str, dict[str, Any]] = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{manifest_path}: unreadable manifest: {exc}") from exc
    present = {path.relative_to(source).as_posix() for path in _files(source)} - {MANIFEST}
    problems = [f"missing: {name}" for name in sorted(set(files) - present)]
    problems += [f"not in the manifest: {name}" for name in sorted(present - set(files))]
    for name in sorted(set(files) & present):
        if _sha256(source / name) != files[name]["sha256"]:
            problems.append(f"changed since the backup: {name}")
    if problems:
        raise BackupError(f"{source}: the backup does not match its manifest: " + "; ".join(problems[:10])
                          + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""))
    return manifest


def restore(source: Path, database_url: str, data_dir: Path, ticket_count: int | None) -> dict[str, Any]:
    """Restore a verified backup into an instance that has no data: no database (or one with
    no tickets: ``ticket_count`` 0) and an empty or missing ``data_dir``."""
    manifest = verify(source)
    database = _sqlite_path(database_url)
    has_database = DATABASE in manifest["files"]
    if ticket_count:
        raise BackupError(f"the database already holds {ticket_count} tickets and stored messages: "
                          "restore only into an instance with no data")
    if data_dir.exists() and any(path for path in _files(data_dir, _database_files(database))):
        raise BackupError(f"{data_dir} is not empty: restore only into an instance with no data")
    if has_database and database is None:
        raise BackupError("the backup holds a SQLite database but this instance uses a server database: "
                          "restore into a SQLite instance, then move the data (see deploy/README.md)")
    if has_database and database is not None:
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)  # of the empty database being replaced
        staged = database.with_name(database.name + ".restoring")
        staged.unlink(missing_ok=True)
        _private_copy(source / DATABASE, staged)
        os.replace(staged, database)
    for name in manifest["files"]:
        if name.startswith("data/"):
            _private_copy(source / name, data_dir / name.removeprefix("data/"))
    return manifest


def _database_files(database: Path | None) -> frozenset[Path]:
    if database is None:
        return frozenset()
    return frozenset(Path(f"{database}{suffix}") for suffix in ("", "-wal", "-shm", "-journal"))
