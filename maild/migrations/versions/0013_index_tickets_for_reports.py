"""index for reports: tickets by creation time, with their last status change

``maild report`` (and the Monday mail) read the tickets created in a period, and replay
those whose status changed after the period's end: without this index every report scans
every ticket, however short its period. The status change rides along in the index, so
telling the tickets to replay from the others reads no table rows.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-01 17:00:00.000000
"""
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_created', ['created_at', 'status_changed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_created')
