"""Attachment files: content-addressed under ``DATA_DIR/attachments``, rows in the database.

They can always be extracted again from the raw message, which is the durable copy, so
they are written without fsync.
"""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, col, select

from maild.mail import Attachment as ParsedAttachment
from maild.store.private import make_dirs, write_file
from maild.store.tables import Attachment, Message


def save_attachments(
    session: Session, data_dir: Path, message: Message, attachments: tuple[ParsedAttachment, ...]
) -> list[Attachment]:
    """Store the files and add their rows to the session, in the order given (their ids are
    known once the session is flushed)."""
    rows = []
    for item in attachments:
        relative = Path("attachments") / item.sha256[:2] / item.sha256
        path = Path(data_dir) / relative
        if not path.exists():
            make_dirs(path.parent)
            write_file(path, item.chunks(), durable=False)  # a big one a chunk at a time
        rows.append(Attachment(message_id=message.id, filename=item.filename, content_type=item.content_type,
                               size=item.size, sha256=item.sha256, path=str(relative)))
    session.add_all(rows)
    return rows


def attachments_of(session: Session, message_ids: list[int]) -> dict[int, list[Attachment]]:
    """The attachments of these messages, by message id, in the order they were stored."""
    found: dict[int, list[Attachment]] = {}
    if not message_ids:
        return found
    rows = session.exec(select(Attachment).where(col(Attachment.message_id).in_(message_ids)).order_by(Attachment.id))
    for row in rows:
        found.setdefault(row.message_id, []).append(row)
    return found


def attachment_path(data_dir: Path, row: Attachment) -> Path:
    """Where an attachment's bytes are; its stored path is relative to the data directory
    and never leaves it (a row edited to ``../..`` is refused)."""
    root = Path(data_dir).resolve()
    path = (root / row.path).resolve()
    if not path.is_relative_to(root / "attachments"):
        raise ValueError(f"attachment {row.id}: stored path {row.path!r} is outside the data directory")
    return path
