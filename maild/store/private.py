"""Private files and directories: what maild keeps is for its own user only (docs/guarantees.md).

Every file maild creates is 0600 and every directory 0700, whatever the process umask. The
mode is given when the file or directory is made, so it is never open to others, not even for
a moment (a umask can only take bits away), and set once more after, in case the umask took
away the owner's own bits. Files are written whole: a temporary file, fsync, rename, and an
fsync of the directory where the write must survive a crash.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_dirs(directory: Path, durable: bool = False) -> None:
    """Create ``directory`` and its missing parents, each 0700; existing ones are left as
    they are. ``durable``: each new directory is fsynced into its parent, so a crash cannot
    lose the path to a file written there."""
    missing: list[Path] = []
    path = Path(directory)
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:  # made meanwhile by another maild process
            if not path.is_dir():
                raise
            continue
        os.chmod(path, DIR_MODE)
        if durable:
            fsync_dir(path.parent)


def fsync_path(path: Path) -> None:
    """Make a file's contents, or a directory's entries (a new or renamed file in it), durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = fsync_path  # the name says what a caller relies on


def write_file(
    path: Path, data: bytes | Iterable[bytes], durable: bool = True, replace: bool = True, staging: Path | None = None,
    sync_dir: bool = True,
) -> bool:
    """Write ``data`` (bytes, or pieces of them) as the whole new content of ``path``, 0600;
    readers never see a part.

    The bytes go to a temporary file in ``staging`` (default: the same directory; it must be on
    the same file system), which then takes the name. ``durable``: fsync the file and the
    directory (``sync_dir=False``: the file only; the caller fsyncs the directory, once for
    many files). ``replace=False``: an existing ``path`` is kept and False is returned, even
    when another process writes it at the same moment. The directories must exist.
    """
    path = Path(path)
    tmp = Path(staging or path.parent) / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        create_new(tmp, data, durable)
        if replace:
            os.rename(tmp, path)
        else:
            try:
                os.link(tmp, path)  # unlike rename, never replaces what is there
            except FileExistsError:
                return False
    finally:
        tmp.unlink(missing_ok=True)  # left after a link or a failure; gone after a rename
    if durable and sync_dir:
        fsync_dir(path.parent)
    return True


def create_new(path: Path, data: bytes | Iterable[bytes], durable: bool = True) -> None:
    """Write a new file that nothing names yet, in place: 0600, fsynced when ``durable`` (not its
    directory: the caller fsyncs that, once for many files). For a file that is only looked at
    once its name is recorded elsewhere after this returns (a spool row): the temporary name
    and the rename of ``write_file`` would only cost two more metadata writes for each message
    received. A write that fails takes its partial file away; a crash midway leaves one that
    nothing names."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)  # never another's file
    try:
        os.fchmod(fd, FILE_MODE)  # 0600 whatever the umask
        for piece in [data] if isinstance(data, (bytes, bytearray, memoryview)) else data:
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def create_empty(path: Path) -> bool:
    """Create ``path`` as an empty 0600 file unless it exists; True when created. For files
    that another library fills (SQLite), so that they are private from the first byte."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return True


def exposed_mode(path: Path) -> int | None:
    """The permission bits of ``path`` when group or others have any, else None (also when
    it does not exist)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
    return mode if mode & 0o077 else None


def tighten(path: Path) -> int | None:
    """Make an existing ``path`` private (0700 for a directory, 0600 for a file); returns the
    mode it had when that was open to others, else None. Only the path itself changes: a
    private directory keeps others out of everything beneath it."""
    mode = exposed_mode(path)
    if mode is not None:
        os.chmod(path, DIR_MODE if Path(path).is_dir() else FILE_MODE)
    return mode
