"""index for the acknowledgement cap: acknowledgements queued to one address lately

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 13:50:00.000000

Every new ticket counts the acknowledgements queued to its member in the last hour
(contract: at most ``auto_reply_limit_per_hour``). Without this index that count reads the
whole outbox, which grows with every mail ever sent.
"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_recipient_kind', ['recipient', 'kind', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_recipient_kind')
