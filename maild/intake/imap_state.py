"""Where each polled IMAP folder's UID scan stands, kept in the database beside the spool.

The promise behind a saved state: every message of that folder with a UID up to ``last_uid``
(under that UIDVALIDITY) has been durably stored. So a restart continues after ``last_uid``,
and a message still in the folder at or below it needs only its after-action (move, flag,
delete), never a second fetch.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, select

from maild.store.tables import ImapState, utcnow


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int
    last_uid: int


def load_state(engine: sa.Engine, mailbox: str, folder: str) -> FolderState | None:
    with Session(engine) as session:
        row = _row(session, mailbox, folder)
        return FolderState(row.uidvalidity, row.last_uid) if row else None


def save_state(engine: sa.Engine, mailbox: str, folder: str, state: FolderState) -> None:
    """Insert or update; one poller per mailbox is the only writer of its rows."""
    with Session(engine) as session:
        row = _row(session, mailbox, folder) or ImapState(mailbox=mailbox, folder=folder, uidvalidity=0, last_uid=0)
        row.uidvalidity = state.uidvalidity
        row.last_uid = state.last_uid
        row.updated_at = utcnow()
        session.add(row)
        session.commit()


def _row(session: Session, mailbox: str, folder: str) -> ImapState | None:
    query = select(ImapState).where(ImapState.mailbox == mailbox, ImapState.folder == folder)
    return session.exec(query).first()
