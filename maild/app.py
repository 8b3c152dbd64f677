"""Composition root: builds the adapters from one Settings object and hands them out.

Each adapter's module is imported where the adapter is built: a command that only reads
tickets must not load the templates, the ORM, the rules loader or the mail transports
(see tests/unit/test_import_boundaries.py).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlalchemy as sa

    from maild.config import Settings
    from maild.ingest import Pipeline
    from maild.intake.spool import RawStore
    from maild.outbound.notices import Mailer
    from maild.outbound.sender import Sender
    from maild.outbound.templates import Templates
    from maild.rules.model import Queue, RuleSet
    from maild.lookup import LookupCommand


class NotMigrated(Exception):
    """The database schema is older than this maild."""


class TemplatesError(Exception):
    """Templates that do not render; ``errors`` are ``path:line: message`` strings."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class App:
    settings: Settings
    rules_text: str = ""
    read_only: bool = False  # a shell command that only reads (``store.db.make_engine``)

    @cached_property
    def engine(self) -> sa.Engine:
        from maild.store import db

        return db.make_engine(self.settings.database_url, read_only=self.read_only)

    @cached_property
    def raw_store(self) -> RawStore:
        from maild.intake.spool import RawStore

        return RawStore(self.settings.data_dir)

    @cached_property
    def rules(self) -> RuleSet:
        from maild.rules.loader import read_rules_text

        return self.use_rules(read_rules_text(self.settings.rules_file))

    def use_rules(self, text: str) -> RuleSet:
        """Rules from this text (what the daemon validated: its processor must not read a file
        that may have changed since)."""
        from maild.rules.loader import parse_rules

        rules = parse_rules(text, str(self.settings.rules_file))
        self.rules_text = text
        self.__dict__["rules"] = rules
        if "pipeline" in self.__dict__:
            self.pipeline.rules = rules
        return rules

    @cached_property
    def templates(self) -> Templates:
        return self._read_templates()

    def _read_templates(self) -> Templates:
        from maild.outbound.templates import Templates

        instance = self.settings.instance
        return Templates(self.settings.templates_dir, timezone=instance.timezone, tag_prefix=instance.tag_prefix)

    @cached_property
    def mailer(self) -> Mailer:
        from maild.ingest import secret_key
        from maild.outbound.notices import Mailer

        instance = self.settings.instance
        return Mailer(
            templates=self.templates,
            instance_name=instance.name,
            hostname=instance.hostname,
            tag_prefix=instance.tag_prefix,
            secret=secret_key(instance.secret_key, self.settings.data_dir),
            timezone=instance.timezone,
            reply_tokens=self.settings.staff.reply_tokens,
            attach_max_bytes=self.settings.outbound.attach_max_bytes,
        )

    @cached_property
    def pipeline(self) -> Pipeline:
        from maild.ingest import Pipeline

        return Pipeline(
            engine=self.engine,
            raw_store=self.raw_store,
            rules=self.rules,
            mailer=self.mailer,
            ack_limit_per_hour=self.settings.outbound.auto_reply_limit_per_hour,
            staff_proof=self.settings.staff.authentication,
            trusted_authserv_ids=frozenset(i.lower() for i in self.settings.staff.trusted_authserv_ids),
            message_timeout=self.settings.processing.message_timeout_seconds,
            member_lookup=self.member_lookup(),  # member register (issue 16)
            member_show_fields=tuple(self.settings.members.show_fields),
        )

    def member_lookup(self) -> LookupCommand | None:
        """member register (issue 16): ``[members] lookup_command``, a relative program path
        taken relative to the configuration's directory; None when there is none."""
        members = self.settings.members
        if not members.lookup_command:
            return None
        from maild.lookup import LookupCommand

        argv = shlex.split(members.lookup_command)
        if "/" in argv[0]:
            argv[0] = str(self.settings.path(argv[0]))
        return LookupCommand(shlex.join(argv), members.lookup_timeout_seconds, members.lookup_cache_seconds)

    def queue_ids(self) -> list[str]:
        """The queues of the rules, or none when the rules cannot be read (a listing still works)."""
        try:
            return list(self.rules.queues)
        except Exception:  # RulesError, OSError: the caller falls back on the database's queues
            return []

    def check_templates(self) -> list[str]:
        """Every template problem as ``path:line: message`` (empty: all render)."""
        if not self.settings.templates_dir.is_dir():
            return [f"{self.settings.templates_dir}: templates directory not found"]
        from maild.outbound.answers import Answers

        try:
            rules = self.rules
        except Exception:  # RulesError, OSError: reported by the rules check; the answers alone here
            rules = None
        return self.templates.check() + Answers(self.templates).check(rules) + self._check_web(rules)

    def _check_web(self, rules: RuleSet | None) -> list[str]:
        """The web form's page renders in every language, and its queue exists (when it is on)."""
        web = self.settings.web
        if not web.listen:
            return []
        from maild.intake.web import FormPage

        problems = FormPage(self.settings.templates_dir, self.settings.instance.name).check()
        if rules is not None and web.queue and web.queue not in rules.queues:
            problems.append(f"[web] queue: no queue {web.queue!r} in {rules.path}; queues: {', '.join(rules.queues)}")
        return problems

    def web_form_queue(self) -> Queue:
        """The queue whose address the web form's mail goes to."""
        queue = self.settings.web.queue
        return self.rules.queues[queue] if queue else self.rules.default_queue()

    def sender(self) -> Sender:
        from maild.oauth2 import token_source
        from maild.outbound.sender import Sender
        from maild.outbound.transport import Transport, make_transport

        out = self.settings.outbound
        password = out.secret() if out.username and out.oauth2 is None else ""
        tokens = None
        if out.oauth2 is not None:
            out.oauth2.check()  # a secret that cannot be read stops the start, as a password does
            tokens = token_source(out.oauth2)
        base = Path(self.settings.base_dir)

        def transport() -> Transport:
            return make_transport(out.transport, out.starttls, out.username, password, base, out.ca_file, tokens)

        connections = 1 if out.transport.startswith("maildir:") else out.connections
        return Sender(self.engine, transport, timedelta(seconds=out.inflight_timeout_seconds), connections)

    @property
    def database_label(self) -> str:
        """The database URL without its password (for messages)."""
        import sqlalchemy as sa

        return sa.engine.make_url(self.settings.database_url).render_as_string(hide_password=True)

    def database_exists(self) -> bool:
        """False only when the embedded SQLite file is missing (a server database is asked)."""
        from maild.store import db

        path = db.sqlite_file(self.settings.database_url)
        return path is None or path.is_file()

    def database_is_current(self) -> bool:
        """Whether the schema is at the newest migration; creates nothing."""
        from maild.store import db

        return db.is_current(self.engine)

    def prepare_database(self) -> None:
        """Migrate the embedded SQLite by itself; a server database must be upgraded explicitly."""
        from maild.store import db

        if self.engine.dialect.name == "sqlite":
            db.upgrade(self.settings.database_url)
        elif not db.is_current(self.engine):
            raise NotMigrated("the database schema is not current: run `maild db upgrade`")

    def reload_rules(self, text: str | None = None) -> RuleSet:
        """Load rules (from ``text``, else the file) and templates again; on any error the
        old ones stay. Raises RulesError or TemplatesError for the caller to log.
        """
        from maild.rules.loader import parse_rules, read_rules_text

        text = read_rules_text(self.settings.rules_file) if text is None else text
        parse_rules(text, str(self.settings.rules_file))  # all of it must be good before any is used
        templates = self._read_templates()
        problems = templates.check()
        if problems:
            raise TemplatesError(problems)
        self.__dict__["templates"] = templates
        if "mailer" in self.__dict__:
            self.mailer.templates = templates
        return self.use_rules(text)
