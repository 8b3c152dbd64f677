"""``maild members erase ADDRESS``: an erasure request (Art. 17), from plan to proof.

``plan`` finds what is stored about the address; ``erase_address`` erases it with the core
(``erase.erase``), rewrites other people's raw mail that names the address, empties the
SQLite WAL and free pages, and then looks again (``scan``) so that the data-protection officer
can show that nothing remains.

Mail from the address that is still waiting in the spool when the erasure runs (it came in
after the request, or while it ran) is new mail: it is filed as usual, with the real address.
The erasure holds the database's write lock while it runs (SQLite), so a message is either
filed before it (and erased) or after it (and kept).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from maild.core.tokens import read_bounce_token, read_outbox_token
from maild.privacy import erase as core
from maild.privacy import scan
from maild.privacy.identity import Scrubber, pseudonym, usable_names
from maild.store import db
from maild.store.tables import Contact, Inbound, Message, Outbox, Quarantine, Ticket

ACTOR = "maild (erasure)"


def normalise(address: str) -> str:
    return address.strip().lower()


def known_names(session: Session, address: str) -> list[str]:
    """The display names mail and the contact gave this address."""
    names = {name for (name,) in session.execute(
        sa.select(Message.from_name).where(sa.func.lower(Message.from_addr) == address).distinct()) if name}
    names |= {name for (name,) in session.execute(
        sa.select(Contact.name).where(sa.func.lower(Contact.address) == address)) if name}
    return sorted(names)


def plan(session: Session, address: str, secret: bytes, everywhere: bool = False) -> core.Scope:
    """What an erasure of ``address`` covers (see ``erase``)."""
    tickets, messages, inbound, quarantine = (Ticket.__table__, Message.__table__,  # type: ignore[attr-defined]
                                              Inbound.__table__, Quarantine.__table__)  # type: ignore[attr-defined]
    scrubber = Scrubber({address: pseudonym(secret, address)}, usable_names(known_names(session, address), [address]))
    inbound_ids = core._ids(session, inbound, sa.and_(sa.func.lower(inbound.c.mail_from) == address,
                                                      inbound.c.state != "pending"))
    return core.Scope(
        tickets=core._ids(session, tickets, sa.func.lower(tickets.c.requester) == address),
        messages=core._ids(session, messages, sa.func.lower(messages.c.from_addr) == address)
        | maild_copies(session, scrubber),
        quarantine=core._ids(session, quarantine, sa.or_(sa.func.lower(quarantine.c.from_addr) == address,
                                                          quarantine.c.inbound_id.in_(inbound_ids))),
        inbound=inbound_ids,
        scrubber=scrubber,
        everywhere=True,
        free_text=everywhere,
    )


def maild_copies(session: Session, scrubber: Scrubber) -> set[int]:
    """maild's own outgoing mail that names the person: the acknowledgement to them, the staff
    notification that copies their message, a relay with them in Cc. Such a copy is about them
    (the original it copies is either theirs, and erased, or someone else's, and kept)."""
    messages = Message.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    columns = [(messages.c[name], kind) for name, kind in (("text", "text"), ("html", "text"), ("subject", "text"),
                                                           ("to", "json"), ("cc", "json"))]
    found = set()
    query = sa.select(messages.c.id, *(c for c, _ in columns)).where(
        messages.c.direction == "out", sa.or_(*(scan.mention_filter(c, k, scrubber.needles, dialect) for c, k in columns)))
    for row in session.execute(query):
        if any(value is not None and scrubber.mentions(value) for value in row[1:]):
            found.add(row[0])
    return found


def _exclude_pending() -> dict[str, Any]:
    """Spooled mail still to be filed is new mail: never erased, never counted as left over."""
    return {"inbound": Inbound.__table__.c.state == "pending"}  # type: ignore[attr-defined]


@dataclass
class Outcome:
    address_found: bool
    erased: core.Erased = field(default_factory=core.Erased)
    files_rewritten: int = 0
    files_deleted: int = 0  # attachment files and crash leftovers that held the address
    compact_problem: str | None = None
    remaining: list[str] = field(default_factory=list)  # where the address still is (should be none)
    names_in_others_mail: list[str] = field(default_factory=list)  # kept without --everywhere
    new_mail: int = 0  # mail naming the address that came in during or after the erasure: kept, filed

    def as_dict(self) -> dict[str, Any]:
        return {"address_found": self.address_found, **self.erased.as_dict(), "files_rewritten": self.files_rewritten,
                "files_deleted": self.files_deleted, "compact_problem": self.compact_problem,
                "remaining": self.remaining, "names_in_others_mail": self.names_in_others_mail,
                "new_mail": self.new_mail}


def erase_address(engine: sa.Engine, data_dir: Path, secret: bytes, address: str, now: datetime,
                  everywhere: bool = False, vacuum: bool = True, maildir: Path | None = None) -> Outcome:
    """Erase everything stored about ``address``; the outcome says what was done and what,
    looking again, is still there (nothing, unless something went wrong).

    ``maildir``: the outbound maildir transport's directory, whose files are copies of what
    maild sent: those of the erased tickets and messages, and those sent to the address, go.

    The database is checked inside the erasing transaction (on SQLite no other writer can
    file anything meanwhile), files and the SQLite files after the commit, leaving out mail
    that came in since."""
    address = normalise(address)
    database_files = _database_files(engine)
    started = time.time()
    with Session(engine) as session:
        scope = plan(session, address, secret, everywhere)
        pending = core.pending_raw_files(session, data_dir)
        stored = bool(scope.tickets or scope.messages or scope.quarantine or scope.inbound) or bool(
            _rows_naming(session.connection(), scope.scrubber))
        if not stored and not scan.in_files(data_dir, scope.scrubber.address_pattern, [*database_files, *pending]):
            return Outcome(address_found=False, new_mail=_naming(pending, scope.scrubber))
        sent_copies = _sent_copies(session, maildir, scope, secret) if maildir else []
        erased = core.erase(session, data_dir, scope, now, ACTOR, "request")
        for path in sent_copies:
            path.unlink(missing_ok=True)
        erased.files += len(sent_copies)
        files = core.scrub_files(session, data_dir, scope.scrubber, database_files, pending, started)
        core.forget_attachment_files(session, data_dir, [p for p in files.deleted if "attachments" in p.parts])
        remaining = [f"{f.where}: {f.count} row(s)" for f in _rows_naming(session.connection(), scope.scrubber)]
        session.commit()
    outcome = Outcome(True, erased, len(files.rewritten), len(files.deleted), remaining=remaining)
    outcome.compact_problem = core.compact(engine, vacuum)
    with engine.connect() as conn:
        filed_since = _rows_naming(conn, scope.scrubber)  # new mail filed after the commit
        outcome.names_in_others_mail = [f"{f.where}: {f.count} row(s)" for f in scan.in_database(
            conn, scope.scrubber.names, exclude=_exclude_pending())]
    kept = list({p.resolve(): p for p in [*pending, *files.in_flight]}.values())  # new mail: kept, not left over
    new_files = []
    for path in scan.in_files(data_dir, scope.scrubber.address_pattern, [*database_files, *kept]):
        (new_files if path.stat().st_mtime >= started else outcome.remaining).append(path)  # type: ignore[arg-type]
    outcome.remaining = [str(item) for item in outcome.remaining]
    outcome.new_mail = _naming(kept, scope.scrubber) + len(new_files)
    if not outcome.new_mail and not filed_since:  # else the database rightly holds the new mail
        pattern = scope.scrubber.address_pattern
        outcome.remaining += [str(p) for p in database_files if p.is_file() and scan.file_mentions(p, pattern)]
    return outcome


def _sent_copies(session: Session, maildir: Path, scope: core.Scope, secret: bytes) -> list[Path]:
    """The maildir transport's files of the outgoing mail that the erasure covers, found by
    their VERP Return-Path (which names the outbox row): a byte search would miss the address
    where quoted-printable split it, and the name and subject it does not look for at all."""
    messages, outbox = Message.__table__, Outbox.__table__  # type: ignore[attr-defined]
    message_ids = scope.messages | core._ids(session, messages, messages.c.ticket_id.in_(scope.tickets))
    covered = sa.or_(outbox.c.ticket_id.in_(scope.tickets), outbox.c.message_id.in_(message_ids),
                     sa.func.lower(outbox.c.recipient).in_(list(scope.scrubber.pseudonyms)))
    rows = session.execute(sa.select(outbox.c.id, outbox.c.bounce_token).where(covered)).all()
    ids, tokens = {row.id for row in rows}, {row.bounce_token for row in rows if row.bounce_token}
    found = []
    for path in scan.files_under(maildir):
        with path.open("rb") as handle:
            first = handle.readline(1000)  # the transport writes the Return-Path first
        match = _RETURN_PATH.match(first)
        token = match.group(1).decode("ascii") if match else ""
        if token and (read_bounce_token(secret, token) in tokens or read_outbox_token(secret, token) in ids):
            found.append(path)
    return found


_RETURN_PATH = re.compile(rb"Return-Path: <[^+@>]*\+([A-Za-z0-9-]{1,40})@[^>]*>\r?\n")


def _rows_naming(conn: sa.Connection, scrubber: Scrubber) -> list[scan.Finding]:
    """Rows of any table that hold one of the addresses (spooled mail still to be filed aside)."""
    return scan.in_database(conn, list(scrubber.pseudonyms), check=lambda value: scrubber.mentions(value, names=False),
                            exclude=_exclude_pending())


def _naming(paths: list[Path], scrubber: Scrubber) -> int:
    """How many of these files name the address."""
    return sum(1 for path in paths if scan.file_mentions(path, scrubber.address_pattern))


def _database_files(engine: sa.Engine) -> list[Path]:
    path = db.sqlite_file(str(engine.url))
    if path is None:
        return []
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
