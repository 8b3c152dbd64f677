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

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from maild.privacy import erase as core
from maild.privacy import scan
from maild.privacy.identity import Scrubber, pseudonym, usable_names
from maild.store import db
from maild.store.tables import Contact, Inbound, Message, Quarantine, Ticket

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
    attachment_files_deleted: int = 0
    compact_problem: str | None = None
    remaining: list[str] = field(default_factory=list)  # where the address still is (should be none)
    names_in_others_mail: list[str] = field(default_factory=list)  # kept without --everywhere
    pending_mail: int = 0  # spooled mail from the address, still to be filed (kept: it is new mail)

    def as_dict(self) -> dict[str, Any]:
        return {"address_found": self.address_found, **self.erased.as_dict(), "files_rewritten": self.files_rewritten,
                "attachment_files_deleted": self.attachment_files_deleted, "compact_problem": self.compact_problem,
                "remaining": self.remaining, "names_in_others_mail": self.names_in_others_mail,
                "pending_mail": self.pending_mail}


def erase_address(engine: sa.Engine, data_dir: Path, secret: bytes, address: str, now: datetime,
                  everywhere: bool = False, vacuum: bool = True) -> Outcome:
    """Erase everything stored about ``address``; the outcome says what was done and what,
    looking again afterwards, is still there (nothing, unless something went wrong)."""
    address = normalise(address)
    skip = _database_files(engine)
    with Session(engine) as session:
        scope = plan(session, address, secret, everywhere)
        exclude = _exclude_pending()
        found = bool(scope.tickets or scope.messages or scope.quarantine or scope.inbound) or bool(
            scan.in_database(session.connection(), [address], exclude=exclude))
        pending_files = core.pending_raw_files(session, data_dir)
        if not found:
            leftover = scan.in_files(data_dir, scope.scrubber.address_pattern, [*skip, *pending_files])
            if not leftover:
                return Outcome(address_found=False, pending_mail=_pending_count(pending_files, scope.scrubber))
        erased = core.erase(session, data_dir, scope, now, ACTOR, "request")
        rewritten, deleted = core.scrub_files(data_dir, scope.scrubber, [*skip, *pending_files])
        core.forget_attachment_files(session, data_dir, deleted)
        session.commit()
        pending_count = _pending_count(pending_files, scope.scrubber)
    outcome = Outcome(True, erased, len(rewritten), len(deleted), pending_mail=pending_count)
    outcome.compact_problem = core.compact(engine, vacuum)
    outcome.remaining, outcome.names_in_others_mail = verify(engine, data_dir, scope.scrubber, pending_files)
    return outcome


def _pending_count(pending_files: list[Path], scrubber: Scrubber) -> int:
    """Spooled mail, still to be filed, that names the address (from, to, cc, or text)."""
    return sum(1 for path in pending_files if scan.file_mentions(path, scrubber.address_pattern))


def _database_files(engine: sa.Engine) -> list[Path]:
    path = db.sqlite_file(str(engine.url))
    if path is None:
        return []
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def verify(engine: sa.Engine, data_dir: Path, scrubber: Scrubber, pending_files: list[Path]) -> tuple[list[str], list[str]]:
    """Look again: where the address is still found (database columns; files under the data
    directory, the SQLite files included, byte by byte), and where a name is still found (in
    other people's text, which only ``--everywhere`` changes). Pending mail is not counted."""
    addresses = list(scrubber.pseudonyms)
    with engine.connect() as conn:
        remaining = [f"{f.where}: {f.count} row(s)" for f in scan.in_database(
            conn, addresses, check=lambda value: scrubber.mentions(value, names=False), exclude=_exclude_pending())]
        names = [f"{f.where}: {f.count} row(s)" for f in scan.in_database(conn, scrubber.names, exclude=_exclude_pending())]
        pending = conn.execute(sa.select(sa.func.count()).select_from(Inbound.__table__).where(  # type: ignore[attr-defined]
            Inbound.__table__.c.state == "pending")).scalar_one()  # type: ignore[attr-defined]
    database = set(_database_files(engine)) if pending else set()  # pending rows name the sender in the file
    remaining += [str(path) for path in scan.in_files(data_dir, scrubber.address_pattern, [*pending_files, *database])]
    return remaining, names
