"""outbox rows carry their VERP token, so a row needs no id before its return path is known

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 17:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # rows queued before keep NULL: their token (``o<id>-<mac>``) names the row id
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('bounce_token', sa.String(length=40), nullable=True))
    op.create_index(op.f('ix_outbox_bounce_token'), 'outbox', ['bounce_token'], unique=True)


def downgrade() -> None:
    op.drop_index(op.f('ix_outbox_bounce_token'), table_name='outbox')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('bounce_token')
