"""Engines and migrations. SQLite runs in WAL mode with synchronous=FULL: a commit is durable."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from maild.store import private

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_SECONDS = 30.0


def make_engine(url: str, read_only: bool = False, **kwargs: Any) -> sa.Engine:
    """An engine for ``url``; SQLite gets a private file (see ``sqlite_file``) and durable pragmas.

    ``read_only`` (the shell's listings, reports and exports): on SQLite its transactions take
    no write lock and cannot write (``query_only``), so a long report never holds up filing."""
    if url.startswith("sqlite"):
        # how long a statement waits for another writer's lock: 30 s, or the URL's ?timeout=SECONDS
        busy = float(sa.engine.make_url(url).query.get("timeout", SQLITE_BUSY_SECONDS))  # type: ignore[arg-type]
        engine = sa.create_engine(url, connect_args={"timeout": busy}, **kwargs)
        path = sqlite_file(url)
        if path is not None:
            sa.event.listen(engine, "do_connect", lambda *_: _create_private(path))
        sa.event.listen(engine, "connect", lambda conn, record: _sqlite_pragmas(conn, busy, read_only))
        # pysqlite's own transaction handling defers BEGIN; take the write lock at BEGIN instead,
        # so two writers never deadlock upgrading a read lock. A reader takes a snapshot (WAL).
        begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for a memory database or a ``file:`` URI
    (whose mode may forbid creating it: that file is left to SQLite and the umask)."""
    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.query.get("uri"):
        return None
    database = parsed.database
    return Path(database) if database and database != ":memory:" else None


def _create_private(path: Path) -> None:
    """Before SQLite opens the database: make it (and its directory) private if it is new.
    SQLite would create it with the umask's mode and gives its -wal and -shm files the
    database's mode, so a 0600 database keeps them private too."""
    private.make_dirs(path.parent)
    private.create_empty(path)


def _sqlite_pragmas(dbapi_conn: Any, busy_seconds: float, read_only: bool = False) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see make_engine)
    cur = dbapi_conn.cursor()
    if read_only:
        cur.execute("PRAGMA query_only=ON")
    else:
        cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
    cur.close()


def _alembic_config(url: str) -> AlembicConfig:
    # alembic (and mako under it) is imported only when migrations are looked at: it
    # doubles the start-up time of every other command.
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str) -> None:
    """Apply all migrations (``maild db upgrade``)."""
    from alembic import command

    command.upgrade(_alembic_config(url), "head")


VERSION_TABLE = "alembic_version"  # alembic's default: maild's env.py does not name another
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", re.MULTILINE)


def head_revision() -> str:
    """The newest migration's revision id.

    Read from the files of ``versions/`` as text, so that a command that only reads does not
    import alembic and every migration to learn it (that was most of its start-up time).
    Should the files ever not name one head plainly, alembic decides (and raises as it does).
    """
    revisions: set[str] = set()
    replaced: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found = dict(match.groups() for match in _REVISION_LINE.finditer(path.read_text(encoding="utf-8")))
        try:
            revision = ast.literal_eval(found["revision"])
            down = ast.literal_eval(found.get("down_revision", "None"))
        except (KeyError, ValueError, SyntaxError):
            return alembic_head()
        revisions.add(revision)
        replaced.update(down if isinstance(down, (tuple, list)) else [down] if down else [])
    heads = revisions - replaced
    return heads.pop() if len(heads) == 1 else alembic_head()


def alembic_head() -> str:
    """The head revision as alembic sees it (it loads every migration)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config("")).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS}")
    return head


def current_revisions(engine: sa.Engine) -> list[str]:
    """The revisions the database says it is at (none: no schema yet), as alembic records them."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return []
        return list(conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


def is_current(engine: sa.Engine) -> bool:
    """True when the database is at the newest migration."""
    return current_revisions(engine) == [head_revision()]
