"""the member register and tickets' links to it (issue 16)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 13:30:00.000000
"""
from alembic import op
import sqlalchemy as sa
import maild.store.tables


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'members',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('member_number', sa.String(length=64), nullable=True),
        sa.Column('email', sa.String(length=320), nullable=True),
        sa.Column('fields', sa.JSON(), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('imported_at', maild.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('member_number'),
        sa.UniqueConstraint('email'),
    )
    op.create_table(
        'ticket_members',
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('linked_by', sa.String(length=16), nullable=False),
        sa.Column('linked_at', maild.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id']),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id']),
        sa.PrimaryKeyConstraint('ticket_id'),
    )
    op.create_index(op.f('ix_ticket_members_member_id'), 'ticket_members', ['member_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_ticket_members_member_id'), table_name='ticket_members')
    op.drop_table('ticket_members')
    op.drop_table('members')
