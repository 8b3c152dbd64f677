"""undeliverable marks of old rows become marks that lapse (docs/mail.md#bounces)

Contacts marked with the old ``undeliverable`` flag get ``undeliverable_since``: the time of
the last bounce or failed delivery to the address that the events record, else the time of
this upgrade. The mark then lapses 30 days after that, like a new one; the flag itself is no
longer read (a forged bounce could set it, for ever).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 11:00:00.000000
"""
from datetime import datetime, timezone
from typing import Any

from alembic import op
import sqlalchemy as sa
import maild.store.tables


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_contacts = sa.table(
    'contacts', sa.column('id', sa.Integer), sa.column('address', sa.String), sa.column('undeliverable', sa.Boolean),
    sa.column('undeliverable_since', maild.store.tables.UTCDateTime(timezone=True)),
)
_events = sa.table(
    'events', sa.column('kind', sa.String), sa.column('at', maild.store.tables.UTCDateTime(timezone=True)),
    sa.column('data', sa.JSON),
)


def _failed_addresses(kind: str, data: dict[str, Any]) -> list[str]:
    """The addresses an event says maild's mail could not reach for good."""
    if kind == 'bounce':
        return list(data.get('recipients') or []) if data.get('permanent', True) else []
    if kind == 'delivery_failed':
        return [data.get('recipient', '')]
    return [data.get('address', '')]  # requester_undeliverable


def upgrade() -> None:
    bind = op.get_bind()
    marked = dict(bind.execute(
        sa.select(_contacts.c.address, _contacts.c.id)
        .where(_contacts.c.undeliverable == sa.true(), _contacts.c.undeliverable_since.is_(None))
    ).all())
    if not marked:
        return
    now = datetime.now(timezone.utc)
    since = dict.fromkeys(marked, now)
    last: dict[str, datetime] = {}
    kinds = ('bounce', 'delivery_failed', 'requester_undeliverable')
    for kind, at, data in bind.execute(sa.select(_events.c.kind, _events.c.at, _events.c.data).where(_events.c.kind.in_(kinds))):
        for address in _failed_addresses(kind, data or {}):
            if address in since and (address not in last or at > last[address]):
                last[address] = at
    since.update(last)
    for address, contact_id in marked.items():
        bind.execute(sa.update(_contacts).where(_contacts.c.id == contact_id).values(undeliverable_since=since[address]))


def downgrade() -> None:
    pass  # the old flag was left as it was
