"""The private-file helpers: 0600 files, 0700 directories, whole writes, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from maild.store import private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000, 0o277])  # the usual, none at all, one that takes the owner's bits too
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_directories_and_files_are_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    private.make_dirs(tmp_path / "a" / "b" / "c", durable=True)
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3
    assert private.write_file(tmp_path / "a" / "b" / "c" / "f", b"data")
    assert private.create_empty(tmp_path / "a" / "e") and not private.create_empty(tmp_path / "a" / "e")
    private.create_new(tmp_path / "a" / "n", [b"da", b"ta"])
    assert mode(tmp_path / "a" / "b" / "c" / "f") == mode(tmp_path / "a" / "e") == mode(tmp_path / "a" / "n") == 0o600
    assert (tmp_path / "a" / "n").read_bytes() == b"data"
    assert (tmp_path / "a" / "b" / "c" / "f").read_bytes() == b"data"


def test_existing_directories_are_left_as_they_are(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared").chmod(0o755)
    private.make_dirs(tmp_path / "shared" / "own")
    assert (mode(tmp_path / "shared"), mode(tmp_path / "shared" / "own")) == (0o755, 0o700)


def test_write_file_replaces_whole_or_keeps_what_is_there(tmp_path: Path) -> None:
    target = tmp_path / "key"
    assert private.write_file(target, b"first", replace=False)
    assert not private.write_file(target, b"second", replace=False)  # another process was first: its key stays
    assert target.read_bytes() == b"first"
    assert private.write_file(target, b"third", durable=False)
    assert target.read_bytes() == b"third" and [p.name for p in tmp_path.iterdir()] == ["key"]  # no temporary left


def test_write_file_through_a_staging_directory(tmp_path: Path) -> None:
    for sub in ("tmp", "new"):
        private.make_dirs(tmp_path / sub)
    private.write_file(tmp_path / "new" / "m1", b"mail", staging=tmp_path / "tmp")
    assert list((tmp_path / "tmp").iterdir()) == [] and (tmp_path / "new" / "m1").read_bytes() == b"mail"


def test_tighten_reports_the_mode_it_replaced(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d").chmod(0o755)
    (tmp_path / "f").write_bytes(b"")
    (tmp_path / "f").chmod(0o644)
    assert (private.tighten(tmp_path / "d"), private.tighten(tmp_path / "f")) == (0o755, 0o644)
    assert (mode(tmp_path / "d"), mode(tmp_path / "f")) == (0o700, 0o600)
    assert private.tighten(tmp_path / "d") is None and private.tighten(tmp_path / "missing") is None


def test_create_new_never_replaces_and_leaves_no_part_behind(tmp_path: Path) -> None:
    """A spool file is written under its final name: one that fails midway (the disk filled
    up) is taken away, and a name already there is never written over."""
    def pieces() -> Iterator[bytes]:
        yield b"the first megabyte"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        private.create_new(tmp_path / "m.eml", pieces())
    assert list(tmp_path.iterdir()) == []
    private.create_new(tmp_path / "m.eml", b"whole")
    with pytest.raises(FileExistsError):
        private.create_new(tmp_path / "m.eml", b"other")
    assert (tmp_path / "m.eml").read_bytes() == b"whole"
