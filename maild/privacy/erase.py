"""Erasure (docs/coming.md#reports-and-privacy): one core, ``erase``, for ``maild members erase`` and the retention sweep.

What a ``Scope`` names is erased in one transaction, keeping each ticket's skeleton (number,
queue, status, priority, category, tags, times, the number of its messages and their
directions and kinds) so that reports stay right:

- tickets: their subject, every message's subject, text and HTML and sender name are blanked;
  raw mail and attachment files are deleted (an attachment file still used by a message that is
  not erased stays); outgoing mail of the ticket not yet sent is dropped, sent mail keeps its
  row without its bytes.
- messages: the same for single messages on other tickets (what the person wrote as a CC).
- quarantine and inbound rows: their raw files are deleted; spooled mail still waiting to be
  filed (``inbound.state = 'pending'``) is never touched: it is new mail and is filed.
- addresses: replaced by their pseudonym in every text, JSON and binary column of every table
  (found through the metadata: a table added later is covered), names blanked; the contact row
  takes the pseudonym; rows of ``PERSON_TABLES`` (the member register) are deleted.
- local: addresses replaced only in the rows that belong to the scope's tickets (retention:
  the member may have newer tickets that stay as they are).

Each ticket touched gets an ``erased`` event that does not name anyone. Files are deleted
before the commit: should the commit fail, an erasure that was asked for is only partly done,
and running it again finishes it (a crash after a commit would instead leave files that nothing
points to any more).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from maild.privacy import scan
from maild.privacy.identity import Scrubber, is_pseudonym
from maild.store import private
from maild.store.tables import Attachment, Contact, Event, Inbound, Message, Outbox, Quarantine, Ticket

log = logging.getLogger("maild.privacy")

# Tables whose rows *are* one person's record, by the column holding the address: a request
# erases the row itself (docs/coming.md#member-register: "Erasure erases the member's register row too"). A table
# named here that does not exist (yet) is skipped; every other table is covered by the
# metadata-driven pass, which replaces the address wherever it occurs.
PERSON_TABLES: dict[str, str] = {"members": "email"}

# Text that other people wrote: their address mentions are replaced, names only with --everywhere.
FREE_TEXT = frozenset({("messages", "subject"), ("messages", "text"), ("messages", "html"),
                       ("tickets", "subject"), ("quarantine", "subject"), ("quarantine", "reason")})
UNSENT = ("queued", "held", "failed")  # "sending" is in the sender's hands: kept, its bytes blanked
_T = {name: model.__table__ for name, model in (  # type: ignore[attr-defined]
    ("tickets", Ticket), ("messages", Message), ("attachments", Attachment), ("inbound", Inbound),
    ("outbox", Outbox), ("quarantine", Quarantine), ("contacts", Contact), ("events", Event))}


@dataclass
class Scope:
    tickets: set[int] = field(default_factory=set)
    messages: set[int] = field(default_factory=set)
    quarantine: set[int] = field(default_factory=set)
    inbound: set[int] = field(default_factory=set)
    scrubber: Scrubber = field(default_factory=lambda: Scrubber({}))
    everywhere: bool = False  # addresses replaced in every table (a request) or only in the tickets' rows
    free_text: bool = False  # --everywhere: names in other people's text too; their raw mail that mentions the person goes

    def empty(self) -> bool:
        return not (self.tickets or self.messages or self.quarantine or self.inbound or self.scrubber.pseudonyms)


@dataclass
class Erased:
    tickets: int = 0
    messages: int = 0
    files: int = 0
    outbox_dropped: int = 0
    rows_changed: int = 0
    others_blanked: int = 0  # --everywhere: other people's messages that mentioned the person

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def erase(session: Session, data_dir: Path, scope: Scope, now: datetime, actor: str, reason: str,
          **event_data: Any) -> Erased:
    """Erase what ``scope`` names; the caller commits (and then calls ``compact``)."""
    if session.get_bind().dialect.name == "sqlite":
        # deleted and overwritten content is zeroed in the pages, not left in free space
        session.connection().exec_driver_sql("PRAGMA secure_delete=ON")
    result = Erased()
    files: set[str] = set()
    message_ids = scope.messages | _ids(session, _T["messages"], _T["messages"].c.ticket_id.in_(scope.tickets))
    result.tickets, result.messages = len(scope.tickets), len(message_ids)
    files |= _blank_messages(session, message_ids)
    files |= _blank_quarantine(session, scope.quarantine)
    files |= _blank_inbound(session, scope.inbound)
    if scope.tickets:
        for chunk in _chunks(scope.tickets):
            session.execute(sa.update(_T["tickets"]).where(_T["tickets"].c.id.in_(chunk)).values(subject="", erased_at=now))
    result.outbox_dropped = _outbox(session, scope, message_ids)
    touched = set(scope.tickets) | _ids(session, _T["messages"], _T["messages"].c.id.in_(message_ids), "ticket_id")
    if scope.everywhere:
        _person_rows(session, scope.scrubber)
        _contacts(session, scope.scrubber)
        changed, others = _replace(session, scope, None)
        result.rows_changed += changed
        if scope.free_text and others:
            files |= _blank_raw_of(session, others)
            result.others_blanked = len(others)
            touched |= _ids(session, _T["messages"], _T["messages"].c.id.in_(others), "ticket_id")
    elif scope.tickets:
        result.rows_changed += _replace(session, scope, _ticket_rows(scope.tickets, message_ids))[0]
    for ticket_id in sorted(touched):
        session.add(Event(ticket_id=ticket_id, at=now, actor=actor, kind="erased", data={"reason": reason, **event_data}))
    result.files = _delete_files(session, data_dir, files)
    return result


def compact(engine: sa.Engine, vacuum: bool = True) -> str | None:
    """SQLite: rebuild the file without free pages (VACUUM) and empty the WAL, so that erased
    bytes are nowhere in ``maild.db`` or ``maild.db-wal``. Returns a problem, or None.
    PostgreSQL keeps old row versions until its own VACUUM reuses them (README, "Privacy")."""
    if engine.dialect.name != "sqlite":
        return None
    raw = engine.raw_connection()  # autocommit: maild's SQLite connections issue BEGIN themselves
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA secure_delete=ON")
        if vacuum:
            cursor.execute("VACUUM")
        busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        cursor.close()
    finally:
        raw.close()
    return "another process kept the WAL from being emptied: run the erasure again" if busy else None


# --- pieces -------------------------------------------------------------------------------


def _ids(session: Session, table: sa.Table, where: Any, column: str = "id") -> set[int]:
    return {value for (value,) in session.execute(sa.select(table.c[column]).where(where)) if value is not None}


def _chunks(values: Iterable[int], size: int = 500) -> Iterable[list[int]]:
    items = sorted(values)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _blank_messages(session: Session, message_ids: set[int]) -> set[str]:
    """Blank the messages' content; returns the files to delete (raw mail, attachments)."""
    messages, attachments, inbound = _T["messages"], _T["attachments"], _T["inbound"]
    files: set[str] = set()
    for chunk in _chunks(message_ids):
        rows = session.execute(sa.select(messages.c.raw_path, messages.c.inbound_id).where(messages.c.id.in_(chunk))).all()
        files |= {path for path, _ in rows if path}
        inbound_ids = {inbound_id for _, inbound_id in rows if inbound_id}
        files |= _blank_inbound(session, inbound_ids)
        paths = {p for (p,) in session.execute(sa.select(attachments.c.path).where(attachments.c.message_id.in_(chunk))) if p}
        kept = {p for (p,) in session.execute(sa.select(attachments.c.path).where(
            attachments.c.path.in_(paths), attachments.c.message_id.notin_(message_ids)))} if paths else set()
        files |= paths - kept
        session.execute(sa.update(attachments).where(attachments.c.message_id.in_(chunk)).values(
            filename="", sha256="", path=""))
        session.execute(sa.update(messages).where(messages.c.id.in_(chunk)).values(
            subject="", text="", html=None, from_name="", raw_path=None))
    del inbound
    return files


def _blank_inbound(session: Session, inbound_ids: set[int]) -> set[str]:
    """Spooled copies of filed mail: the file goes, the row stays (never a pending one)."""
    inbound = _T["inbound"]
    files: set[str] = set()
    for chunk in _chunks(inbound_ids):
        where = sa.and_(inbound.c.id.in_(chunk), inbound.c.state != "pending")
        files |= {p for (p,) in session.execute(sa.select(inbound.c.raw_path).where(where)) if p}
        session.execute(sa.update(inbound).where(where).values(raw_path="", error=None))
    return files


def _blank_quarantine(session: Session, quarantine_ids: set[int]) -> set[str]:
    return _drop_raw(session, _T["quarantine"], quarantine_ids, subject="", reason="")


def _drop_raw(session: Session, table: sa.Table, ids: set[int], **blanks: Any) -> set[str]:
    """Rows of ``table`` (kept mail, filed messages) lose their raw copy and the spool row's,
    with ``blanks`` set; returns the raw files to delete."""
    files: set[str] = set()
    for chunk in _chunks(ids):
        rows = session.execute(sa.select(table.c.raw_path, table.c.inbound_id).where(table.c.id.in_(chunk))).all()
        files |= {p for p, _ in rows if p}
        files |= _blank_inbound(session, {i for _, i in rows if i})
        session.execute(sa.update(table).where(table.c.id.in_(chunk)).values(raw_path=None, **blanks))
    return files


def _outbox(session: Session, scope: Scope, message_ids: set[int]) -> int:
    """Mail of the erased tickets and messages, and mail to the erased addresses: dropped when
    not yet sent, its bytes blanked when sent (or being sent). Returns how many were dropped."""
    outbox = _T["outbox"]
    mine = [outbox.c.ticket_id.in_(scope.tickets), outbox.c.message_id.in_(message_ids)]
    if scope.everywhere and scope.scrubber.pseudonyms:
        mine.append(sa.func.lower(outbox.c.recipient).in_(list(scope.scrubber.pseudonyms)))
    where = sa.or_(*mine)
    dropped = session.execute(sa.delete(outbox).where(where, outbox.c.state.in_(UNSENT))).rowcount or 0
    session.execute(sa.update(outbox).where(where).values(raw=b"", last_error=None))
    return dropped


def _person_rows(session: Session, scrubber: Scrubber) -> None:
    """Delete the rows that are the person's own record (``PERSON_TABLES``); references to
    them are set to NULL first, and rows that need them (links) are deleted."""
    metadata = SQLModel.metadata
    for name, column in PERSON_TABLES.items():
        table = metadata.tables.get(name)
        if table is None or column not in table.c:
            continue
        where = sa.func.lower(table.c[column]).in_(list(scrubber.pseudonyms))
        ids = [row[0] for row in session.execute(sa.select(*table.primary_key.columns).where(where))]
        if not ids:
            continue
        (key,) = table.primary_key.columns
        for other in scan.tables():
            for fk in other.foreign_keys:
                if fk.column.table is not table:
                    continue
                if fk.parent.nullable:
                    session.execute(sa.update(other).where(fk.parent.in_(ids)).values({fk.parent.name: None}))
                else:  # a row that cannot be without the person's (a ticket's link to its member) goes too
                    session.execute(sa.delete(other).where(fk.parent.in_(ids)))
        session.execute(sa.delete(table).where(key.in_(ids)))


def _contacts(session: Session, scrubber: Scrubber) -> None:
    """The contact row takes the pseudonym (its undeliverable mark is kept); if a row with the
    pseudonym exists already (an earlier erasure of the same address), this one goes."""
    contacts = _T["contacts"]
    for address, alias in scrubber.pseudonyms.items():
        rows = session.execute(sa.select(contacts.c.id).where(sa.func.lower(contacts.c.address) == address)).all()
        exists = session.execute(sa.select(contacts.c.id).where(contacts.c.address == alias)).first() is not None
        for (contact_id,) in rows:
            if exists:
                session.execute(sa.delete(contacts).where(contacts.c.id == contact_id))
            else:
                session.execute(sa.update(contacts).where(contacts.c.id == contact_id).values(address=alias, name=""))
                exists = True


def _ticket_rows(ticket_ids: set[int], message_ids: set[int]) -> dict[str, Any]:
    """Conditions for the rows that belong to these tickets, found through foreign keys: the
    tickets, rows referring to them or to their messages, and the spooled copies of those."""
    rows: dict[str, list[Any]] = {"tickets": [_T["tickets"].c.id.in_(ticket_ids)]}
    inbound_of = sa.select(_T["messages"].c.inbound_id).where(_T["messages"].c.ticket_id.in_(ticket_ids))
    rows["inbound"] = [_T["inbound"].c.id.in_(inbound_of)]
    for table in scan.tables():
        for fk in table.foreign_keys:
            if fk.column.table.name == "tickets":
                rows.setdefault(table.name, []).append(fk.parent.in_(ticket_ids))
            elif fk.column.table.name == "messages":
                rows.setdefault(table.name, []).append(fk.parent.in_(message_ids))
    return {name: sa.or_(*conditions) for name, conditions in rows.items()}


def _replace(session: Session, scope: Scope, only: dict[str, Any] | None) -> tuple[int, set[int]]:
    """Replace the addresses (and names) in every searchable column of every table, or only in
    the rows ``only`` names per table. Pending spooled mail is left alone. Returns the rows
    changed and the other people's messages whose text mentioned the person."""
    scrubber = scope.scrubber
    if not scrubber.needles:
        return 0, set()
    dialect = session.get_bind().dialect.name
    changed, others = 0, set()
    for table in scan.tables():
        if only is not None and table.name not in only:
            continue
        key = list(table.primary_key.columns)
        if len(key) != 1:
            continue
        (pk,) = key
        for column, kind in scan.searchable_columns(table):
            if column.primary_key:
                continue
            if only is None:
                query = sa.select(pk, column).where(scan.mention_filter(column, kind, scrubber.needles, dialect))
            else:  # a bounded set of rows, with many people in them: looked at in Python
                query = sa.select(pk, column).where(only[table.name])
            if table.name == "inbound":
                query = query.where(table.c.state != "pending")
            free = (table.name, column.name) in FREE_TEXT
            names = scope.free_text or not free
            updates = []
            for row_id, value in session.execute(query).all():
                if value is None:
                    continue
                if only is not None and not scrubber.mentions(value, names):
                    continue
                new = scrubber.raw(bytes(value)) if kind == "binary" else scrubber.value(value, names)
                if free and table.name == "messages" and scrubber.mentions(value, True):
                    others.add(row_id)
                if new != value:
                    updates.append({"_key": row_id, "_value": new})
            if updates:  # one statement, many rows
                statement = sa.update(table).where(pk == sa.bindparam("_key")).values({column.name: sa.bindparam("_value")})
                session.connection().execute(statement, updates)
                changed += len(updates)
    return changed, others


def _blank_raw_of(session: Session, message_ids: set[int]) -> set[str]:
    """--everywhere: other people's messages that mentioned the person lose their raw copy
    (which may hold the mention encoded where no byte search finds it); their text is kept,
    with the mention replaced."""
    return _drop_raw(session, _T["messages"], message_ids)


def _delete_files(session: Session, data_dir: Path, relative: set[str]) -> int:
    """Delete files under ``data_dir`` (a path outside it is refused, never followed)."""
    root = Path(data_dir).resolve()
    removed = 0
    for name in sorted(relative):
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            log.warning("erase: %s is outside the data directory: not deleted", name)
            continue
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    return removed


# --- files of other people's mail -----------------------------------------------------------


ORPHAN_AGE_SECONDS = 3600.0  # an unreferenced raw file older than this is a crash's leftover


@dataclass
class FileScrub:
    rewritten: list[Path] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)  # attachment files and orphans
    in_flight: list[Path] = field(default_factory=list)  # new mail not yet filed: kept


def scrub_files(session: Session, data_dir: Path, scrubber: Scrubber, skip: Iterable[Path],
                pending: Iterable[Path], started: float) -> FileScrub:
    """Every file under ``data_dir`` (but ``skip``: the database files) whose bytes hold an
    erased address. Mail still to be filed (``pending``, and raw files no row names yet that were
    written in the last hour: a message being received) is new mail and is kept. Raw mail that
    a row names is rewritten with the pseudonym in the address's place (whole and private, as
    every file maild writes); an attachment file (content-addressed: it cannot be rewritten
    under its name) and an old raw file no row names (left by a crash) are deleted. Any other
    file (one an operator put under ``data_dir``) is not maild's to delete: it is left, and
    the erasure's check names it as remaining."""
    result = FileScrub()
    pattern = scrubber.address_pattern
    if pattern is None:
        return result
    root = Path(data_dir)
    waiting = {Path(p).resolve() for p in pending}
    attachments, raw = (root / "attachments").resolve(), (root / "raw").resolve()
    for path in scan.in_files(root, pattern, skip):
        resolved = path.resolve()
        if resolved in waiting:
            result.in_flight.append(path)
        elif resolved.is_relative_to(attachments):
            path.unlink(missing_ok=True)
            result.deleted.append(path)
        elif _referenced(session, str(path.relative_to(root))):
            private.write_file(path, scrubber.raw(path.read_bytes()))
            result.rewritten.append(path)
        elif not resolved.is_relative_to(raw):
            continue  # not maild's mail (an operator's file): left for the check to name
        elif path.stat().st_mtime < started - ORPHAN_AGE_SECONDS:
            path.unlink(missing_ok=True)
            result.deleted.append(path)
        else:
            result.in_flight.append(path)
    return result


def _referenced(session: Session, relative: str) -> bool:
    """Whether a row names this raw file (filed mail, a spool row, kept mail)."""
    for table in (_T["messages"], _T["inbound"], _T["quarantine"]):
        if session.execute(sa.select(table.c.id).where(table.c.raw_path == relative).limit(1)).first():
            return True
    return False


def forget_attachment_files(session: Session, data_dir: Path, deleted: Iterable[Path]) -> None:
    """Attachment rows whose file ``scrub_files`` deleted point to nothing any more."""
    root = Path(data_dir).resolve()
    names = [str(Path(p).resolve().relative_to(root)) for p in deleted]
    for start in range(0, len(names), 500):
        session.execute(sa.update(_T["attachments"]).where(_T["attachments"].c.path.in_(names[start:start + 500]))
                        .values(path=""))


def pending_raw_files(session: Session, data_dir: Path) -> list[Path]:
    inbound = _T["inbound"]
    return [Path(data_dir) / p for (p,) in session.execute(sa.select(inbound.c.raw_path).where(inbound.c.state == "pending")) if p]


def is_erased(address: str) -> bool:
    return is_pseudonym(address)
