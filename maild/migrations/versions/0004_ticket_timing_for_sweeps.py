"""ticket timing for sweeps

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 05:20:08.797644
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import maild.store.tables


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_changed_at', maild.store.tables.UTCDateTime(timezone=True), nullable=False, server_default=sa.text('CURRENT_TIMESTAMP')))
        batch_op.add_column(sa.Column('first_response_at', maild.store.tables.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_tickets_status_changed', ['status', 'status_changed_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_status_changed')
        batch_op.drop_column('first_response_at')
        batch_op.drop_column('status_changed_at')

