"""Composition root: builds the adapters from one Settings object and hands them out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from functools import cached_property

import sqlalchemy as sa

from maild.config import Settings
from maild.outbound.sender import Sender
from maild.outbound.transport import make_transport
from maild.ingest import Pipeline, secret_key
from maild.intake.spool import RawStore
from maild.rules.loader import load_rules
from maild.rules.model import RuleSet
from maild.store import db


class NotMigrated(Exception):
    """The database schema is older than this maild."""


@dataclass
class App:
    settings: Settings

    @cached_property
    def engine(self) -> sa.Engine:
        return db.make_engine(self.settings.database_url)

    @cached_property
    def raw_store(self) -> RawStore:
        return RawStore(self.settings.data_dir)

    @cached_property
    def rules(self) -> RuleSet:
        return load_rules(self.settings.rules_file)

    @cached_property
    def pipeline(self) -> Pipeline:
        return Pipeline(
            engine=self.engine,
            raw_store=self.raw_store,
            rules=self.rules,
            tag_prefix=self.settings.instance.tag_prefix,
            secret=secret_key(self.settings.instance.secret_key, self.settings.data_dir),
        )

    def sender(self) -> Sender:
        out = self.settings.outbound
        password = out.secret() if out.username else ""
        transport = make_transport(out.transport, out.starttls, out.username, password, Path(self.settings.base_dir), out.ca_file)
        return Sender(self.engine, transport, timedelta(seconds=out.inflight_timeout_seconds))

    def prepare_database(self) -> None:
        """Migrate the embedded SQLite by itself; a server database must be upgraded explicitly."""
        if self.engine.dialect.name == "sqlite":
            db.upgrade(self.settings.database_url)
        elif not db.is_current(self.engine):
            raise NotMigrated("the database schema is not current: run `maild db upgrade`")

    def reload_rules(self) -> RuleSet:
        """Load rules again; on error the old ones stay (the caller logs RulesError)."""
        rules = load_rules(self.settings.rules_file)
        self.__dict__["rules"] = rules
        if "pipeline" in self.__dict__:
            self.pipeline.rules = rules
        return rules
