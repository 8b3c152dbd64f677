"""undeliverable marks that lapse; component health for status and supervision

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:30:00.000000
"""
from alembic import op
import sqlalchemy as sa
import maild.store.tables


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('undeliverable_since', maild.store.tables.UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        'components',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('instance', sa.String(length=200), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=True),
        sa.Column('started_at', maild.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', maild.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_success_at', maild.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_error_at', maild.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(), nullable=True),
        sa.Column('restarts', sa.Integer(), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('instance', 'name', name='uq_components_instance_name'),
    )


def downgrade() -> None:
    op.drop_table('components')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('undeliverable_since')
