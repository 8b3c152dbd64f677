"""The durable raw store and the spool: nothing is acknowledged before it is here.

A raw message is written to ``DATA_DIR/raw/YYYY/MM/DD/<uuid>.eml`` (a new name, fsync of the
file and of the directory) and then recorded as a pending ``inbound`` row; only when that row is
committed does the transport hear yes. A crash before the commit leaves at worst an orphan
file and a sender that retries; a crash after it leaves a pending row that the processor
picks up at the next start.

``GroupCommitter`` lets concurrent SMTP sessions share one commit (and so one fsync of the
database, and one of the day's directory for the names of all their files), which is what
makes "durable before 250" cheap under load.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa

from maild.core.kinds import InboundState
from maild.mail import Envelope
from maild.store.private import create_new, fsync_dir, fsync_path, make_dirs
from maild.store.tables import Inbound

log = logging.getLogger("maild.spool")


FSYNCS = 4  # files fsynced at once


def _fsynced(path: Path) -> OSError | None:
    try:
        fsync_path(path)
    except OSError as exc:
        return exc
    return None


class RawStore:
    """Immutable raw messages as files under ``DATA_DIR/raw``; paths stored are relative."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir)
        self._days: set[Path] = set()  # day directories whose path this process has made durable
        self._fsyncs: ThreadPoolExecutor | None = None  # made at the first ``fsync_each``

    def write(self, raw: bytes | Iterable[bytes], now: datetime | None = None, durable: bool = True,
              names_later: bool = False) -> str:
        """Write durably (bytes, or their pieces) and return the path relative to the data directory.
        ``durable=False``: not yet; the caller makes it so with ``sync`` before relying on it.
        ``names_later``: the contents now, the directory's names by the caller (``sync_names``),
        once for the many files that a group commit stores."""
        now = now or datetime.now(timezone.utc)
        directory = self._day(now)
        name = f"{now.strftime('%H%M%S')}-{uuid.uuid4().hex}.eml"
        create_new(directory / name, raw, durable=durable)  # named by its spool row only once it is whole
        if durable and not names_later:
            fsync_dir(directory)
        return str((directory / name).relative_to(self.root))

    def _day(self, now: datetime) -> Path:
        """The day's directory, made if missing, and its path durable: the name of each level
        (raw, year, month, day) fsynced into its parent once a process, whoever made it, for
        another writer that has just made it may not have fsynced it yet."""
        directory = self.root / "raw" / now.strftime("%Y/%m/%d")
        if directory in self._days and directory.is_dir():
            return directory
        make_dirs(directory)
        for parent in directory.parents[:4]:
            fsync_dir(parent)
        self._days.add(directory)
        return directory

    def sync(self, relatives: list[str]) -> None:
        """Make files written with ``durable=False`` durable: their contents (``fsync_each``),
        then each directory's names, once. Raises the first error."""
        for failure in self.fsync_each(relatives):
            if failure is not None:
                raise failure
        self.sync_names(relatives)

    def fsync_each(self, relatives: list[str]) -> list[OSError | None]:
        """Fsync the contents of files written with ``durable=False``, several side by side (the
        disk takes them together: fsync is its latency, not CPU); each file's error, or None."""
        if self._fsyncs is None:
            self._fsyncs = ThreadPoolExecutor(max_workers=FSYNCS, thread_name_prefix="spool-fsync")
        return list(self._fsyncs.map(_fsynced, [self.root / relative for relative in relatives]))

    def sync_names(self, relatives: Iterable[str]) -> None:
        """Make the names of files written (``names_later``) durable: each directory once."""
        for directory in dict.fromkeys((self.root / relative).parent for relative in relatives):
            fsync_dir(directory)

    def read(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()

    def path(self, relative: str) -> Path:
        """Where a stored message is: ``parse_message`` reads it from there a chunk at a time,
        so a big message is never held whole."""
        return self.root / relative


@dataclass(frozen=True)
class Pending:
    """A stored message's spool row, not yet committed (``commit_rows``)."""

    source: str
    mailbox: str | None
    mail_from: str | None
    recipients: list[str]
    raw_path: str
    size: int
    sha256: str
    received_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def values(self) -> dict[str, object]:
        return {"source": self.source, "mailbox": self.mailbox, "mail_from": self.mail_from,
                "recipients": self.recipients, "raw_path": self.raw_path, "size": self.size, "sha256": self.sha256,
                "received_at": self.received_at, "state": str(InboundState.PENDING), "attempts": 0, "error": None}


def inbound_row(raw: bytes, raw_path: str, envelope: Envelope, size: int | None = None, sha256: str | None = None) -> Pending:
    """The pending row of a stored message; ``size`` and ``sha256`` when they are known already."""
    return Pending(
        source=envelope.source,
        mailbox=envelope.mailbox,
        mail_from=envelope.mail_from,
        recipients=list(envelope.recipients),
        raw_path=raw_path,
        size=len(raw) if size is None else size,
        sha256=hashlib.sha256(raw).hexdigest() if sha256 is None else sha256,
    )


_CHUNK = 1 << 20
_HEAD = 65536  # where message_id_of looks
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*([^\r\n]{0,200})", re.IGNORECASE | re.MULTILINE)


def message_id_of(raw: bytes) -> str | None:
    """The Message-ID as written in the header block, for the log only (the parser reads it
    properly later); looked for in the first 64 KB."""
    head = raw[:_HEAD].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = _MESSAGE_ID.search(head)
    return found.group(1).decode("ascii", "replace").strip() if found else None


_INBOUND = Inbound.__table__  # type: ignore[attr-defined]
# one statement for a batch of rows (SQLAlchemy Core): their ids come back with their paths,
# each message's own (a new name), so the order RETURNING gives them in does not matter
_ADD_PENDING = sa.insert(_INBOUND).returning(_INBOUND.c.raw_path, _INBOUND.c.id)


def commit_rows(engine: sa.Engine, rows: list[Pending], message_ids: Sequence[str | None] = ()) -> list[int]:
    """Insert pending inbound rows in one transaction; return their ids once committed.
    Each stored message gets its log line (docs/operations.md)."""
    if not rows:
        return []  # an INSERT without parameters would write one row of defaults
    with engine.begin() as connection:
        ids = {path: row_id for path, row_id in connection.execute(_ADD_PENDING, [row.values() for row in rows])}
        if len(ids) != len(rows):  # never: each stored file has a name of its own; rolled back, the sender retries
            raise RuntimeError(f"{len(rows)} spool rows written, {len(ids)} ids returned")
    for row, message_id in zip(rows, [*message_ids, *[None] * (len(rows) - len(message_ids))]):
        log.info("stored", extra={"spool": ids[row.raw_path], "source": row.source, "message_id": message_id,
                                  "size": row.size})
    return [ids[row.raw_path] for row in rows]


def spool_sync(engine: sa.Engine, store: RawStore, raw: bytes, envelope: Envelope) -> int:
    """Store one message durably, without asyncio (``maild ingest``). Returns the inbound id."""
    path = store.write(raw)
    return commit_rows(engine, [inbound_row(raw, path, envelope)], [message_id_of(raw)])[0]


def stage_stream(store: RawStore, stream: BinaryIO, envelope: Envelope) -> tuple[Pending, str | None]:
    """Write a message read from a file or a pipe a chunk at a time (``maild ingest FILE``): a
    big message is never held whole, and is hashed and measured on the way. Returns its pending
    row and Message-ID (for the log) for ``commit_staged``; until then nothing is stored."""
    digest, size, head = hashlib.sha256(), 0, bytearray()

    def pieces() -> Iterator[bytes]:
        nonlocal size
        while piece := stream.read(_CHUNK):
            digest.update(piece)
            size += len(piece)
            if len(head) < _HEAD:
                head.extend(piece[: _HEAD - len(head)])
            yield piece

    path = store.write(pieces(), durable=False)
    return inbound_row(b"", path, envelope, size=size, sha256=digest.hexdigest()), message_id_of(bytes(head))


def commit_staged(engine: sa.Engine, store: RawStore, staged: list[tuple[Pending, str | None]]) -> list[int]:
    """Store the messages ``stage_stream`` wrote: the files made durable together (``RawStore.sync``),
    then all their rows in one commit (one fsync of the database for a whole ``maild ingest``
    run). Returns the inbound ids once committed."""
    store.sync([row.raw_path for row, _ in staged])
    return commit_rows(engine, [row for row, _ in staged], [message_id for _, message_id in staged])


class GroupCommitter:
    """Durable intake for many concurrent sessions: one thread, one database commit per group.

    ``accept`` returns only when the message's row is committed. The messages that arrive
    while a group is stored form the next group, so under load each round covers many: their
    files are written, then fsynced side by side (the disk takes several at once), their
    directory's names fsynced once, and their rows committed at once: one hand-over from the
    event loop and back for the group. (A thread and a hand-over per message cost more CPU
    in switching threads and passing the GIL than the writing itself.)
    """

    def __init__(self, engine: sa.Engine, store: RawStore, max_batch: int = 256) -> None:
        self.engine = engine
        self.store = store
        self.max_batch = max_batch
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-commit")
        self._queue: asyncio.Queue[tuple[bytes, Envelope, asyncio.Future[int]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.committed = asyncio.Event()  # set after every group: wakes the processor

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="spool-committer")

    async def accept(self, raw: bytes, envelope: Envelope) -> int:
        """Store durably; the returned inbound id is committed. Raises on storage failure."""
        (result,) = await self.accept_many([(raw, envelope)])
        if isinstance(result, BaseException):
            raise result
        return result

    async def accept_many(self, messages: Sequence[tuple[bytes, Envelope]]) -> list[int | BaseException]:
        """Store several messages, their rows committed in the order given.

        A mailbox's order is kept, so the processor files an original before a reply to it
        fetched in the same batch. Each result is the committed inbound id or the error.
        """
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[int]] = []
        for raw, envelope in messages:  # in order, no await between
            futures.append(loop.create_future())
            self._queue.put_nowait((raw, envelope, futures[-1]))
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            group = [await self._queue.get()]
            while len(group) < self.max_batch and not self._queue.empty():
                group.append(self._queue.get_nowait())
            stopping = any(item is None for item in group)
            items = [item for item in group if item is not None]
            if items:
                await self._store_group(loop, items)

    async def _store_group(self, loop: asyncio.AbstractEventLoop,
                           items: list[tuple[bytes, Envelope, asyncio.Future[int]]]) -> None:
        try:
            results = await loop.run_in_executor(self._db, self._store, [(raw, envelope) for raw, envelope, _ in items])
        except Exception as exc:  # every waiter hears it: 451 for SMTP, retry for IMAP
            results = [exc] * len(items)
        for (_, _, future), result in zip(items, results):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        self.committed.set()

    def _store(self, messages: list[tuple[bytes, Envelope]]) -> list[int | BaseException]:
        """In the thread: each message's file written (a failure is that message's alone), the
        names of the new files made durable, then the rows committed together."""
        written: list[tuple[int, Pending, str | None]] = []
        results: list[int | BaseException] = []
        for index, (raw, envelope) in enumerate(messages):
            try:
                path = self.store.write(raw, durable=False)
            except Exception as exc:  # this message's 451 (disk full, ...): the others go on
                results.append(exc)
                continue
            written.append((index, inbound_row(raw, path, envelope), message_id_of(raw)))
            results.append(0)
        synced = self.store.fsync_each([row.raw_path for _, row, _ in written])
        for (index, _, _), failure in zip(written, synced):
            if failure is not None:
                results[index] = failure
        written = [item for item, failure in zip(written, synced) if failure is None]
        if written:
            self.store.sync_names(row.raw_path for _, row, _ in written)
            ids = commit_rows(self.engine, [row for _, row, _ in written], [mid for _, _, mid in written])
            for (index, _, _), inbound_id in zip(written, ids):
                results[index] = inbound_id
        return results

    async def close(self) -> None:
        """Commit every message already handed in, then stop."""
        if self._task:
            await self._queue.put(None)
            await self._task
        self._db.shutdown(wait=True)
