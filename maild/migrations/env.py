"""Alembic environment: the URL comes from maild's configuration, never from alembic.ini."""

from alembic import context
from sqlmodel import SQLModel

from maild.store import tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from maild.store.db import make_engine

config = context.config
url = config.attributes["url"]
engine = make_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
