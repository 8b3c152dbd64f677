"""tickets.erased_at: when a ticket's content was erased (docs/coming.md#reports-and-privacy), its skeleton kept

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 13:30:00.000000
"""
from alembic import op
import sqlalchemy as sa
import maild.store.tables


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', maild.store.tables.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('erased_at')
