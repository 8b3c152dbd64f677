"""Attachment files: content-addressed under ``DATA_DIR/attachments``, rows in the database.

They can always be extracted again from the raw message, which is the durable copy, so
they are written without fsync.
"""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from maild.mail import Attachment as ParsedAttachment
from maild.store.private import make_dirs, write_file
from maild.store.tables import Attachment, Message


def save_attachments(session: Session, data_dir: Path, message: Message, attachments: tuple[ParsedAttachment, ...]) -> None:
    for item in attachments:
        relative = Path("attachments") / item.sha256[:2] / item.sha256
        path = Path(data_dir) / relative
        if not path.exists():
            make_dirs(path.parent)
            write_file(path, item.chunks(), durable=False)  # a big one a chunk at a time
        session.add(
            Attachment(
                message_id=message.id,
                filename=item.filename,
                content_type=item.content_type,
                size=item.size,
                sha256=item.sha256,
                path=str(relative),
            )
        )
