"""``maild members export ADDRESS --out FILE.zip``: everything stored about a person (Art. 15).

The zip holds, for each ticket where the person is the requester or in Cc, the ticket with its
events and messages (``ticket.json``), the raw messages as ``.eml`` and their attachments; the
mail maild sent to them, their kept (quarantined) mail, their contact row and the rows of the
member register; and ``index.json``, which says in plain words what each file is. Confidential
tickets are included: the person is the data subject. On someone else's ticket only the
messages they wrote or that were addressed to them are included, with the events that name them.

Staff secrets are left out of what is written (``_without_secrets``): a staff member's reply
or opening address (``queue+12sXXXXXXXXXX@``, ``queue+nXXXXXXXXXX@``) in the staff's mail on
the person's tickets is given as the plain queue address. With one (and a forged From) the
person could act as staff, or open tickets that maild acknowledges to any address.

It streams: tickets are read one at a time, files go into the zip from disk in chunks, so a
member with a thousand tickets and a gigabyte of attachments needs no more memory than one
with one. The zip is private (0600) from its first byte and appears under its name only whole.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from maild.privacy import scan
from maild.privacy.erase import PERSON_TABLES
from maild.store import private
from maild.store.tables import Attachment, Contact, Event, Inbound, Message, Outbox, Quarantine, Ticket

README = {
    "fi": "Tämä tiedosto on kooste kaikesta, mitä jäsenpalvelun sähköpostijärjestelmä (maild) on tallentanut "
          "sähköpostiosoitteestasi. Alla oleva luettelo kertoo, mitä kukin tiedosto sisältää. .eml-tiedostot "
          "avautuvat sähköpostiohjelmalla, .json-tiedostot tekstieditorilla.",
    "sv": "Den här filen samlar allt som medlemstjänstens e-postsystem (maild) har sparat om din e-postadress. "
          "Listan nedan berättar vad varje fil innehåller. .eml-filer öppnas med ett e-postprogram, .json-filer "
          "med en textredigerare.",
    "en": "This file collects everything the member service's email system (maild) has stored about your email "
          "address. The list below says what each file holds. .eml files open in an email program, .json files "
          "in a text editor.",
}
_UNSAFE = re.compile(r"[^\w.@+-]+", re.UNICODE)


class ExportError(Exception):
    pass


def _safe(name: str, fallback: str) -> str:
    cleaned = _UNSAFE.sub("_", name).strip("._")[:100]
    return cleaned or fallback


def _row(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {key: (value.isoformat() if isinstance(value, datetime) else value)
            for key, value in obj.model_dump().items() if key not in skip}


def _mentions(value: Any, address: str) -> bool:
    """Whether ``value`` names ``address`` itself (not ``kalle.`` + it, nor it + ``.org``)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return re.search(rf"(?<![\w.+-]){re.escape(address)}(?![\w.-])", text.lower()) is not None


_TOKEN = rb"\+(?:\d{1,12}s|n)[a-z2-7]{10}"  # core.tokens: a staff reply token (<number>s<mac>) or an opening one (n<mac>)
_CHUNK = 1 << 20


def secret_pattern(queue_addresses: Iterable[str]) -> re.Pattern[bytes]:
    """A staff secret token in one of the queue addresses (``jasenpalvelu+12sXXXXXXXXXX@liitto.fi``);
    with no addresses given, in any address."""
    pairs = sorted({tuple(address.lower().rsplit("@", 1)) for address in queue_addresses if "@" in address})
    if not pairs:
        return re.compile(_TOKEN + rb"(?=@)", re.IGNORECASE)
    alternatives = b"|".join(rb"(?<=" + re.escape(local.encode()) + rb")" + _TOKEN + rb"(?=@" + re.escape(domain.encode())
                             + rb"(?![\w.-]))" for local, domain in pairs)
    return re.compile(rb"(?:" + alternatives + rb")", re.IGNORECASE)


def _without_secrets(chunks: Iterator[bytes], pattern: re.Pattern[bytes]) -> Iterator[bytes]:
    """``chunks`` with every staff secret token (``pattern``) cut out of the addresses, a token
    split between two chunks too: the last 512 bytes wait for the next chunk, and a cut never
    falls beside a token (its local part before it, its domain after it)."""
    carry = b""
    for chunk in chunks:
        buffer = carry + chunk
        cut = max(len(buffer) - 512, 0)
        found = list(pattern.finditer(buffer))
        for match in found:
            if match.start() - 64 < cut < match.end() + 256:
                cut = max(cut, match.end())  # whole: its replacement goes out with what comes before
        pieces, at = [], 0
        for match in found:
            if match.end() <= cut:
                pieces.append(buffer[at:match.start()])
                at = match.end()
        pieces.append(buffer[at:cut])
        yield b"".join(pieces)
        carry = buffer[cut:]
    yield pattern.sub(b"", carry)


def _read(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(_CHUNK):
            yield chunk


class _Zip:
    """The zip and its index, written as it goes; no staff secret token goes into it."""

    def __init__(self, handle: Any, secrets: re.Pattern[bytes]) -> None:
        self.secrets = secrets
        self.zip = zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self.index: list[dict[str, str]] = []

    def json(self, name: str, value: Any, what: str) -> None:
        text = json.dumps(value, ensure_ascii=False, indent=2, default=str).encode("utf-8")
        self.zip.writestr(name, b"".join(_without_secrets(iter([text]), self.secrets)))
        self.index.append({"file": name, "what": what})

    def bytes(self, name: str, data: bytes, what: str) -> None:
        self.zip.writestr(name, b"".join(_without_secrets(iter([data]), self.secrets)))
        self.index.append({"file": name, "what": what})

    def file(self, name: str, path: Path, what: str, compress: bool = True, mail: bool = True) -> bool:
        """``path`` into the zip a chunk at a time; ``mail``: a message (raw mail, an attached
        mail), whose addresses are written without staff secrets; else (a member's file) as it is."""
        if not path.is_file():
            return False
        if not mail:
            self.zip.write(path, name, compress_type=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
        else:
            info = zipfile.ZipInfo.from_file(path, name)
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            with self.zip.open(info, "w", force_zip64=True) as target:
                for piece in _without_secrets(_read(path), self.secrets):
                    target.write(piece)
        self.index.append({"file": name, "what": what})
        return True


def export(engine: sa.Engine, data_dir: Path, address: str, out_file: Path, now: datetime,
           queue_addresses: Iterable[str] = ()) -> dict[str, Any]:
    """Write the zip for ``address``; returns counts (``found`` False: nothing is stored).
    ``queue_addresses``: the rules' queue addresses, whose staff secret tokens are cut out
    (without them, such a token in any address is)."""
    address = address.strip().lower()
    out_file = Path(out_file)
    if out_file.exists():
        raise ExportError(f"{out_file} exists: give a new file name")
    if not out_file.parent.is_dir():
        raise ExportError(f"{out_file.parent}: no such directory")
    tmp = out_file.with_name(f".{out_file.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, private.FILE_MODE)
    try:
        os.fchmod(fd, private.FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            archive = _Zip(handle, secret_pattern(queue_addresses))
            counts = _write(archive, engine, Path(data_dir), address)
            found = any(counts.values())
            archive.json("index.json", {
                "about": address, "created_at": now.isoformat(), "found": found, "counts": counts,
                "readme": README, "files": [{"file": "index.json", "what": "This list."}, *archive.index],
            }, "")
            archive.zip.close()
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, out_file)  # never replaces a file that appeared meanwhile
        except FileExistsError:
            raise ExportError(f"{out_file} exists: give a new file name") from None
        private.fsync_dir(out_file.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return {"found": found, **counts, "files": len(archive.index) + 1}


def _write(archive: _Zip, engine: sa.Engine, data_dir: Path, address: str) -> dict[str, int]:
    counts = dict.fromkeys(("tickets", "messages", "attachments", "outgoing", "quarantined", "contacts", "register"), 0)
    with Session(engine) as session:
        contacts = [_row(c) for c in session.exec(select(Contact).where(sa.func.lower(Contact.address) == address))]
        register = list(_register_rows(session, address))
        if contacts or register:
            archive.json("member.json", {"contacts": contacts, "member_register": register},
                         "Your contact details as maild keeps them (address, name, whether mail to you bounced), "
                         "and your row in the association's member register.")
        counts["contacts"], counts["register"] = len(contacts), len(register)
        for ticket_id in _ticket_ids(session, address):
            _ticket(archive, session, data_dir, address, ticket_id, counts)
            session.expunge_all()  # one ticket's rows at a time
        outbox = Outbox.__table__  # type: ignore[attr-defined]
        ids = [i for (i,) in session.execute(sa.select(outbox.c.id).where(
            sa.func.lower(outbox.c.recipient) == address).order_by(outbox.c.id))]
        for outbox_id in ids:
            row = session.get(Outbox, outbox_id)
            assert row is not None
            if row.raw:
                archive.bytes(f"outgoing/{outbox_id}.eml", row.raw,
                              f"A mail maild sent (or was to send) to you: {row.kind}, {row.state}"
                              + (f", sent {row.sent_at.isoformat()}" if row.sent_at else "") + ".")
                counts["outgoing"] += 1
            session.expunge(row)
        quarantine = select(Quarantine).where(sa.func.lower(Quarantine.from_addr) == address).order_by(col(Quarantine.id))
        for kept in session.exec(quarantine).all():
            name = f"kept/{kept.id}"
            archive.json(f"{name}.json", _row(kept), "Mail from you that did not become a ticket (for example "
                         "an automatic reply, or mail that could not be read), and why.")
            if kept.raw_path:
                archive.file(f"{name}.eml", data_dir / kept.raw_path, "That mail as it came in.")
            counts["quarantined"] += 1
    return counts


def _register_rows(session: Session, address: str) -> Iterator[dict[str, Any]]:
    for name, column in PERSON_TABLES.items():
        table = SQLModel.metadata.tables.get(name)
        if table is None or column not in table.c:
            continue
        for row in session.execute(sa.select(table).where(sa.func.lower(table.c[column]) == address)).mappings():
            yield {key: (value.isoformat() if isinstance(value, datetime) else value) for key, value in row.items()}


def _ticket_ids(session: Session, address: str) -> list[int]:
    """Tickets where the person is the requester or in Cc, or wrote or was written to."""
    tickets, messages = Ticket.__table__, Message.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    ids = {i for (i,) in session.execute(sa.select(tickets.c.id).where(sa.func.lower(tickets.c.requester) == address))}
    for (i, cc) in session.execute(sa.select(tickets.c.id, tickets.c.cc).where(
            scan.mention_filter(tickets.c.cc, "json", [address], dialect))):
        if address in (a.lower() for a in cc):
            ids.add(i)
    ids |= {i for (i,) in session.execute(sa.select(messages.c.ticket_id).where(
        sa.func.lower(messages.c.from_addr) == address).distinct())}
    mention = sa.or_(scan.mention_filter(messages.c.to, "json", [address], dialect),  # a superset: checked below
                     scan.mention_filter(messages.c.cc, "json", [address], dialect))
    for (i, to, cc) in session.execute(sa.select(messages.c.ticket_id, messages.c.to, messages.c.cc).where(mention)):
        if address in (a.lower() for a in [*to, *cc]):
            ids.add(i)
    return sorted(ids)


def _ticket(archive: _Zip, session: Session, data_dir: Path, address: str, ticket_id: int, counts: dict[str, int]) -> None:
    ticket = session.get(Ticket, ticket_id)
    assert ticket is not None
    own = ticket.requester.lower() == address
    folder = f"tickets/{ticket.number}"
    messages = []
    for message in session.exec(select(Message).where(Message.ticket_id == ticket_id).order_by(col(Message.id))).all():
        people = [message.from_addr, *message.to, *message.cc]
        if not own and address not in (p.lower() for p in people):
            continue
        entry = _row(message, skip=("raw_path", "inbound_id"))
        if message.raw_path and archive.file(f"{folder}/messages/{message.id}.eml", data_dir / message.raw_path,
                                             f"Message {message.id} of ticket {ticket.number}, as it came in or went out."):
            entry["eml"] = f"{folder}/messages/{message.id}.eml"
        entry["attachments"] = []
        for n, attachment in enumerate(session.exec(select(Attachment).where(Attachment.message_id == message.id)
                                                    .order_by(col(Attachment.id))).all()):
            name = f"{folder}/attachments/{message.id}-{n + 1}-{_safe(attachment.filename, 'attachment')}"
            stored = bool(attachment.path) and archive.file(
                name, data_dir / attachment.path, f"An attachment of message {message.id} of ticket {ticket.number}: "
                f"{attachment.filename or '(no name)'}, {attachment.content_type}.", compress=False,
                mail=attachment.content_type.lower().startswith("message/") or attachment.filename.lower().endswith(".eml"))
            entry["attachments"].append({**_row(attachment, skip=("path",)), "file": name if stored else None})
            counts["attachments"] += int(stored)
        messages.append(entry)
        counts["messages"] += 1
    events = [_row(e) for e in session.exec(select(Event).where(Event.ticket_id == ticket_id).order_by(col(Event.id)))
              if own or (e.actor or "").lower() == address or _mentions(e.data, address)]
    body = _row(ticket)
    if not own:  # someone else's ticket: what concerns the person, not the other member's details
        body = {key: body[key] for key in ("number", "queue", "status", "created_at", "closed_at")}
        body["your_role"] = "cc"
    archive.json(f"{folder}/ticket.json", {"ticket": body, "messages": messages, "events": events},
                 f"Ticket {ticket.number}" + ("" if own else " (someone else's; you were copied in)")
                 + ": its details, its messages as text, and its history (who did what, when).")
    counts["tickets"] += 1
