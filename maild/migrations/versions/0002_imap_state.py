"""imap state: how far each polled IMAP folder's UID scan got

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 03:59:53.560969
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import maild.store.tables


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('imap_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('folder', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
    sa.Column('last_uid', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', maild.store.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('mailbox', 'folder', name='uq_imap_state_mailbox_folder')
    )


def downgrade() -> None:
    op.drop_table('imap_state')
