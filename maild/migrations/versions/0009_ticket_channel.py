"""tickets.channel: how a request came (email, phone, visit, letter, web)

Tickets from before are mail, except those whose first message came through the web form.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 13:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets') as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=16), nullable=False, server_default='email'))
    op.execute(
        "update tickets set channel = 'web' where id in (select m.ticket_id from messages m "
        "join inbound i on i.id = m.inbound_id where i.source = 'web')"
    )


def downgrade() -> None:
    with op.batch_alter_table('tickets') as batch_op:
        batch_op.drop_column('channel')
