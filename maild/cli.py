"""The ``maild`` command line (docs/commands.md). Thin: every command calls into the app.

Start-up is part of the interface: ``maild tickets list`` should answer in a fraction of a
second. So this module imports only the standard library and typer; every command imports
what it needs inside its function (sqlmodel, rich, the app, the rules...), and a read-only
listing goes through SQLAlchemy Core. tests/unit/test_import_boundaries.py holds this.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from maild.terminal import terminal_safe

if TYPE_CHECKING:
    from maild.app import App
    from maild.config import Settings
    from maild.core.commands import Command

EXIT_TEMPFAIL = 75  # sysexits EX_TEMPFAIL: the MTA keeps the message and retries

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="maild: email ticketing for member services.")
tickets_app = typer.Typer(no_args_is_help=True, help="Tickets.")
quarantine_app = typer.Typer(no_args_is_help=True, help="Kept messages that did not become tickets.")
db_app = typer.Typer(no_args_is_help=True, help="Database.")
outbox_app = typer.Typer(no_args_is_help=True, help="Outgoing mail.")
jobs_app = typer.Typer(no_args_is_help=True, help="Scheduled sweeps: reminders, escalations, closing, digests.")
rules_app = typer.Typer(no_args_is_help=True, help="Routing rules.")
app.add_typer(tickets_app, name="tickets")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(db_app, name="db")
app.add_typer(outbox_app, name="outbox")
app.add_typer(jobs_app, name="jobs")
app.add_typer(rules_app, name="rules")

_JSON_CONTROL = re.compile(r"[\x7f-\x9f]")  # what json.dumps(ensure_ascii=False) leaves raw


class _LazyConsole:
    """The CLI's rich console (``maild.console``), made on first use: a command that prints
    only JSON never imports rich."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from maild.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


out: Any = _LazyConsole(highlight=False, soft_wrap=True)
err: Any = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)

ConfigOpt = Annotated[Optional[str], typer.Option("--config", help="maild.toml to use.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]


class _State:
    config: str | None = None


def _version() -> str:
    """The installed distribution's version, else the source tree's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("maild")
    except PackageNotFoundError:
        from maild import __version__

        return __version__


def _print_version(value: bool) -> None:
    """``--version``."""
    if value:
        out.print(f"maild {_version()}", markup=False)
        raise typer.Exit()


@app.callback()
def _global(config: ConfigOpt = None,
            show_version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                       help="Print the version and exit.")] = False) -> None:
    _State.config = config


def _settings(config: str | None) -> Settings:
    from maild.config import load_settings

    return load_settings(config or _State.config)


def _app(config: str | None, migrate: bool = True) -> App:
    from maild.app import App

    instance = App(_settings(config))
    if migrate:
        instance.prepare_database()
    return instance


def _read_app(config: str | None, code: int = 1, writes: bool = False) -> App:
    """An instance for a command on an existing database: it never creates a database, a data
    directory or a configuration, and says what it tried when there is nothing to read. Unless
    the command ``writes``, its database connection cannot write (``store.db.make_engine``)."""
    from sqlalchemy.exc import SQLAlchemyError

    from maild.app import App

    settings = _settings(config)
    instance = App(settings, read_only=not writes)
    tried = f"config {settings.source}, database {instance.database_label}"
    if not instance.database_exists():
        _fail(f"no database to read ({tried}); `maild run` or `maild db upgrade` creates it", code)
    try:
        current = instance.database_is_current()
    except SQLAlchemyError as exc:
        _fail(f"cannot read the database ({tried}): {type(exc).__name__}: {str(exc).splitlines()[0]}", code)
    if not current:
        _fail(f"the database schema is not current ({tried}): run `maild db upgrade`", code)
    return instance


def _print_json(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False, indent=2, default=str)  # escapes C0 controls itself
    sys.stdout.write(_JSON_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def _fail(message: str, code: int = 1) -> None:
    err.print(f"maild: {message}", markup=False)
    raise typer.Exit(code)


# --- init, run, check, db ------------------------------------------------------------------


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="Where to write the instance.")] = Path("."),
         config: ConfigOpt = None) -> None:
    """Write maild.toml, rules.yaml and templates/ into DIRECTORY."""
    from maild.skeleton import write_instance

    written = write_instance(directory)
    for path in written:
        out.print(f"wrote {path}", markup=False)
    out.print(f"next: cd {directory} && maild run", markup=False)


@app.command()
def run(config: ConfigOpt = None,
        log_level: Annotated[Optional[str], typer.Option("--log-level", help="debug|info|warning|error (default: [log] level)")] = None,
        ) -> None:
    """The daemon: SMTP listener and spool processor, in the foreground."""
    from maild import logs
    from maild.app import App, TemplatesError
    from maild.daemon import run as run_daemon

    settings = _settings(config)
    if log_level is not None:
        _choice("--log-level", log_level.lower(), ("debug", "info", "warning", "error"))
        settings.log.level = log_level.lower()  # type: ignore[assignment]  # also what the processor child uses
    logs.configure(settings.log.level, settings.log.format)
    instance = App(settings)
    instance.rules  # refuse to start on bad rules  # noqa: B018
    problems = instance.check_templates()
    if problems:
        raise TemplatesError(problems)
    _make_private(instance.settings)
    run_daemon(instance)


def _make_private(settings: Settings) -> None:
    """Data at rest is private (docs/guarantees.md), also what an older maild left open: the data
    directory (a private directory keeps others out of everything in it), the SQLite files and
    the outbox maildir are made private. Outside the data directory, maild only warns."""
    from maild.outbound.transport import maildir_path
    from maild.store import db, private

    log = logging.getLogger("maild.cli")
    data_dir = settings.data_dir
    paths = [data_dir]
    database = db.sqlite_file(settings.database_url)
    if database is not None:
        paths += [database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")]
    maildir = maildir_path(settings.outbound.transport, Path(settings.base_dir))
    if maildir is not None:
        paths.append(maildir)
    for path in paths:
        inside = path.resolve().is_relative_to(data_dir.resolve())
        try:
            mode = private.tighten(path) if inside else private.exposed_mode(path)
        except OSError as exc:
            log.warning("%s: cannot make it private: %s", path, exc)
            continue
        if mode is not None and inside:
            log.warning("%s was open to others (mode %o): made private", path, mode)
        elif mode is not None:
            log.warning("%s is open to others (mode %o) and outside data_dir: make it private (chmod go=)", path, mode)


@app.command()
def check(config: ConfigOpt = None) -> None:
    """Validate configuration and rules; print every problem."""
    from maild.app import App
    from maild.config import ConfigError
    from maild.rules.loader import RulesError

    problems: list[str] = []
    try:
        settings = _settings(config)
    except ConfigError as exc:
        problems.extend(exc.errors)
        settings = None
    if settings is not None:
        instance = App(settings)
        try:
            instance.rules  # noqa: B018
        except RulesError as exc:
            problems.extend(exc.errors)
        else:
            from maild.privacy.retention import warnings as retention_warnings

            for warning in retention_warnings(instance.rules):
                err.print(f"warning: {warning}", markup=False)
        for warning in settings.web.warnings():
            err.print(f"warning: {warning}", markup=False)
        problems.extend(instance.check_templates())
        logins = [(f"imap {box.name}", box) for box in settings.imap]
        if settings.outbound.username:
            logins.append(("outbound", settings.outbound))
        for label, login in logins:
            try:
                login.check_secrets()
            except ConfigError as exc:
                problems.extend(f"{settings.source}: {label}: {error}" for error in exc.errors)
        lookup = settings.members.check_command(Path(settings.base_dir))  # member register (issue 16)
        if lookup:
            problems.append(f"{settings.source}: members: {lookup}")
    for problem in problems:
        err.print(problem, markup=False)
    if problems:
        raise typer.Exit(1)
    out.print(f"ok: {settings.source}, rules {settings.rules_file}, templates {settings.templates_dir}", markup=False)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Apply database migrations."""
    from maild.store import db

    settings = _settings(config)
    db.upgrade(settings.database_url)
    out.print("database is up to date", markup=False)


# --- intake ----------------------------------------------------------------------------------


@app.command()
def ingest(
    files: Annotated[Optional[list[str]], typer.Argument(help="Message files; '-' or none for stdin.")] = None,
    recipient: Annotated[Optional[list[str]], typer.Option("--recipient", help="Envelope recipient.")] = None,
    sender: Annotated[Optional[str], typer.Option("--sender", help="Envelope sender ('' for <>).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Deliver raw messages (an MTA pipe): exit 0 when stored, 75 when not."""
    from sqlalchemy.exc import SQLAlchemyError

    from maild.app import NotMigrated
    from maild.config import ConfigError
    from maild.intake.spool import commit_staged, stage_stream
    from maild.mail import Envelope
    from maild.rules.loader import RulesError

    try:
        instance = _app(config)
    except (ConfigError, NotMigrated, SQLAlchemyError, OSError) as exc:
        _fail(f"cannot store: {exc}", EXIT_TEMPFAIL)
    envelope = Envelope(source="pipe", mail_from=sender, recipients=tuple(r.lower() for r in recipient or ()))
    staged = []
    for name in files or ["-"]:
        try:
            # read and written a chunk at a time: processing reads the stored copy, so a big
            # message is never held whole
            if name == "-":
                staged.append(stage_stream(instance.raw_store, sys.stdin.buffer, envelope))
            else:
                with open(name, "rb") as stream:
                    staged.append(stage_stream(instance.raw_store, stream, envelope))
        except Exception as exc:  # anything that keeps a message from being stored is temporary
            _fail(f"{name}: could not store: {exc}", EXIT_TEMPFAIL)
    try:  # every file, or none: one commit for them all
        stored = commit_staged(instance.engine, instance.raw_store, staged)
    except Exception as exc:
        _fail(f"could not store: {exc}", EXIT_TEMPFAIL)
    # Stored: from here on the exit is 0 whatever happens, or the MTA would bounce or repeat
    # a message that is safe (the daemon files what is left pending).
    try:
        for inbound_id, outcome in instance.pipeline.process_many(stored).items():  # in batches
            err.print(f"{inbound_id}: {outcome}", markup=False)
    except RulesError as exc:
        err.print(f"maild: stored, not yet processed: {exc.errors[0]}", markup=False)
    except Exception as exc:
        err.print(f"maild: stored, not yet processed: {type(exc).__name__}: {exc}", markup=False)


# --- tickets ---------------------------------------------------------------------------------


STATUSES = ("new", "open", "pending", "resolved", "closed")
OUTBOX_STATES = ("queued", "sending", "sent", "failed", "held")


def _choice(option: str, value: str | None, allowed: Iterable[str]) -> None:
    """Refuse a value that is not one of ``allowed``, naming them."""
    choices = list(allowed)
    if value is not None and value not in choices:
        _fail(f"{option} {value!r}: not one of {', '.join(choices) or '(none)'}")


@tickets_app.command("list")
def tickets_list(
    status: Annotated[Optional[str], typer.Option(help="new|open|pending|resolved|closed")] = None,
    queue: Annotated[Optional[str], typer.Option(help="Queue id.")] = None,
    assignee: Annotated[Optional[str], typer.Option(help="Staff address.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="At most this many tickets.")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Tickets, open ones first, newest first; every status unless filtered."""
    from maild import views
    from maild.store import listing

    _choice("--status", status, STATUSES)
    instance = _read_app(config)
    with instance.engine.connect() as conn:  # Core, not the ORM: see the module's docstring
        if queue is not None:
            _choice("--queue", queue, sorted(set(instance.queue_ids()) | set(listing.queue_ids(conn))))
        rows = views.ticket_rows(conn, instance.settings.instance.tag_prefix, status=status, queue=queue,
                                 assignee=assignee, limit=limit)
    _ticket_table(rows, as_json)


@tickets_app.command("search")
def tickets_search(text: str, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Tickets whose subject, text or addresses match TEXT."""
    from maild import views

    instance = _read_app(config)
    with instance.engine.connect() as conn:
        rows = views.ticket_rows(conn, instance.settings.instance.tag_prefix, text=text)
    _ticket_table(rows, as_json)


def _table(headers: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> None:
    """A listing: a table on a terminal; elsewhere (a pipe, a file) plain tab-separated lines,
    so that no column is ever cut."""
    if out.is_terminal:
        from maild.console import Table

        table = Table(*headers)
        for row in rows:
            table.add_row(*row)
        out.print(table)
        return
    for row in (headers, *rows):
        sys.stdout.write("\t".join(terminal_safe(value.replace("\t", " ").replace("\n", " ")) for value in row) + "\n")


def _ticket_table(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        _print_json(rows)
        return
    _table(("tag", "status", "queue", "priority", "category", "requester", "assignee", "msgs", "subject"),
           ((row["tag"], row["status"], row["queue"], row["priority"], row["category"] or "", row["requester"],
             row["assignee"] or "", str(row["message_count"]), row["subject"]) for row in rows))


def _ticket_number(value: str, prefix: str) -> int:
    """``12``, ``JP#12`` or ``[JP#12]`` (any case) as 12."""
    from maild.core import threader

    text = value.strip()
    if text.isdigit():
        return int(text)
    numbers = threader.subject_tags(text if text.startswith("[") else f"[{text}]", prefix)
    if len(numbers) != 1:
        _fail(f"{value!r}: not a ticket number (12, {prefix}#12 or [{prefix}#12])")
    return numbers[0]


@tickets_app.command("show")
def tickets_show(ticket: Annotated[str, typer.Argument(metavar="NUMBER", help="12, JP#12 or [JP#12].")],
                 as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """One ticket with its messages and events, oldest first."""
    from sqlmodel import Session

    from maild import views

    instance = _read_app(config)
    prefix = instance.settings.instance.tag_prefix
    number = _ticket_number(ticket, prefix)
    with Session(instance.engine) as session:
        detail = views.ticket_detail(session, prefix, number)
    if detail is None:
        _fail(f"no ticket {number}")
    if as_json:
        _print_json(detail)
        return
    out.print(f"{detail['tag']} {detail['subject']}", markup=False)
    for key in ("status", "queue", "priority", "category", "requester", "assignee", "cc", "channel", "created_at"):
        out.print(f"  {key}: {detail[key] if detail[key] not in (None, []) else '-'}", markup=False)
    if detail.get("member"):  # member register (issue 16)
        member = detail["member"]
        out.print(f"  member: {member['member_number'] or '-'} (linked by {member['linked_by']}) "
                  f"{json.dumps(member['fields'], ensure_ascii=False)}", markup=False)
    for message in detail["messages"]:
        out.rule(f"{message['date'] or ''} {message['direction']} {message['kind']} {message['from']}")
        out.print(f"Subject: {message['subject']}\n\n{message['text']}", markup=False)
        for item in message["attachments"]:
            out.print(f"  attachment {item['id']}: {item['filename'] or '(no name)'} ({item['content_type']}, "
                      f"{item['size']} bytes): maild attachments get {item['id']} --out FILE", markup=False)
    out.rule("events")
    for event in detail["events"]:
        out.print(f"{event['at']} {event['actor']} {event['kind']} {json.dumps(event['data'], ensure_ascii=False)}", markup=False)


ActorOpt = Annotated[Optional[str], typer.Option("--as", help="Who does it (for the audit trail); default: $USER.")]


def _act(number: int, command: Command, actor: str | None, config: str | None, note: str = "") -> None:
    from maild.core import threader

    instance = _app(config)
    who = actor or f"{os.environ.get('USER', 'operator')} (shell)"
    error = instance.pipeline.act(number, command, who, note)
    if error:
        _fail(error)
    out.print(f"{threader.format_tag(instance.settings.instance.tag_prefix, number)}: done", markup=False)


@tickets_app.command("assign")
def tickets_assign(number: int, address: str, actor: ActorOpt = None, config: ConfigOpt = None) -> None:
    """Give a ticket to a staff member of its queue."""
    from maild.core.commands import Command

    _act(number, Command("assign", address.lower()), actor, config)


@tickets_app.command("close")
def tickets_close(number: int, actor: ActorOpt = None, config: ConfigOpt = None) -> None:
    """Resolve a ticket; the member gets the resolved notice (as with #close)."""
    from maild.core.commands import Command

    _act(number, Command("close"), actor, config)


@tickets_app.command("reopen")
def tickets_reopen(number: int, actor: ActorOpt = None, config: ConfigOpt = None) -> None:
    """Open a pending or resolved ticket again."""
    from maild.core.commands import Command

    _act(number, Command("open"), actor, config)


@tickets_app.command("move")
def tickets_move(number: int, queue: Annotated[str, typer.Argument(help="The queue's id.")], actor: ActorOpt = None,
                 config: ConfigOpt = None) -> None:
    """Move a ticket to another queue, as #queue does: it takes that queue's confidentiality,
    and an assignee who is not staff there is dropped (on a confidential queue, the CCs too)."""
    from maild.core.commands import Command

    _act(number, Command("queue", queue), actor, config)


@tickets_app.command("cc")
def tickets_cc(number: int, address: str, actor: ActorOpt = None, config: ConfigOpt = None) -> None:
    """Send the ticket's mail to this address too (as #cc)."""
    from maild.core.commands import Command

    _act(number, Command("cc", address), actor, config)


@tickets_app.command("uncc")
def tickets_uncc(number: int, address: str, actor: ActorOpt = None, config: ConfigOpt = None) -> None:
    """Stop sending the ticket's mail to this address (as #uncc)."""
    from maild.core.commands import Command

    _act(number, Command("uncc", address), actor, config)


@tickets_app.command("note")
def tickets_note(number: int, text: str, actor: ActorOpt = None, config: ConfigOpt = None) -> None:
    """Add an internal note; nothing is sent to the member."""
    from maild.core.commands import Command

    _act(number, Command("note"), actor, config, note=text)


@tickets_app.command("open")
def tickets_open(
    member: Annotated[str, typer.Option("--for", metavar="ADDRESS", help="The member the ticket is for.")],
    queue: Annotated[str, typer.Option("--queue", metavar="ID", help="The queue's id.")],
    subject: Annotated[str, typer.Option("--subject", metavar="TEXT", help="The ticket's subject.")],
    body_file: Annotated[Optional[Path], typer.Option("--body-file", metavar="FILE",
                                                      help="The first message (staff notes; - for stdin).")] = None,
    channel: Annotated[str, typer.Option("--channel", help="phone|visit|letter|web|email")] = "phone",
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Open a ticket for a member, as #for in mail does (a call, a visit, a letter): owned by
    --as when staff of the queue; the member is acknowledged. Prints the new ticket's number."""
    text = ""
    if body_file is not None:
        try:
            data = sys.stdin.buffer.read() if str(body_file) == "-" else body_file.read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"--body-file {body_file}: {exc}")
    instance = _app(config)
    who = (actor or f"{os.environ.get('USER', 'operator')} (shell)").strip()
    result = instance.pipeline.open_ticket(queue, member, subject, text, who.lower() if "@" in who else who, channel)
    if isinstance(result, str):
        _fail(result)
    if not as_json:
        sys.stdout.write(f"{result}\n")
        return
    from sqlmodel import Session

    from maild import views

    with Session(instance.engine) as session:
        _print_json(views.ticket_detail(session, instance.settings.instance.tag_prefix, result))


# --- staff -------------------------------------------------------------------------------------

staff_app = typer.Typer(no_args_is_help=True, help="Staff and their secret addresses.")
app.add_typer(staff_app, name="staff")


@staff_app.command("addresses")
def staff_addresses(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Each staff member's secret address for opening tickets in each of their queues (#for):
    give each person their own; with [staff] authentication = token only mail to it opens one."""
    from maild.core.tokens import opener_token

    instance = _app(config, migrate=False)
    secret = instance.mailer.secret
    rows = []
    for queue in instance.rules.queues.values():
        local, _, domain = queue.address.partition("@")
        for staff in queue.staff:
            rows.append({"queue": queue.id, "staff": staff,
                         "address": f"{local}+{opener_token(secret, queue.id, staff)}@{domain}"})
    if as_json:
        _print_json(rows)
        return
    _table(("queue", "staff", "address"), ((r["queue"], r["staff"], r["address"]) for r in rows))


# --- members (the member register, issue 16; access and erasure requests) --------------------

members_app = typer.Typer(no_args_is_help=True, help="Members: their tickets, the member register, access and erasure requests.")
app.add_typer(members_app, name="members")


@members_app.command("show")
def members_show(
    who: Annotated[str, typer.Argument(metavar="ADDRESS|NUMBER", help="An address, or a member number.")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """A member's name, whether their address bounces, their register entry, and their
    tickets (also those linked to the member from another address), open ones first."""
    from sqlmodel import Session

    from maild import views
    from maild.core.bounces import UNDELIVERABLE_FOR

    instance = _read_app(config)
    with Session(instance.engine) as session:
        member = views.member_detail(session, instance.settings.instance.tag_prefix, who)
    if member is None:
        what = "no ticket and no contact has that address" if "@" in who else "no member has that number"
        _fail(f"no member {who.strip().lower()}: {what}")
    if as_json:
        _print_json(member)
        return
    address = member["address"] or "(no address)"
    out.print(f"{address}{' (' + member['name'] + ')' if member['name'] else ''}", markup=False)
    if member["member"]:
        out.print(f"  member number: {member['member']['member_number'] or '-'}", markup=False)
        for name, value in member["member"]["fields"].items():
            out.print(f"  {name}: {value}", markup=False)
    if member["undeliverable_since"]:
        out.print(f"  undeliverable since {member['undeliverable_since']}: maild's mail to it bounced; no "
                  f"acknowledgements or reminders go there for {UNDELIVERABLE_FOR.days} days", markup=False)
    _ticket_table(member["tickets"], False)


@members_app.command("import")
def members_import(
    file: Annotated[Path, typer.Argument(metavar="FILE.csv", help="The register export: CSV with a header row.")],
    key: Annotated[str, typer.Option("--key", help="What identifies a member: email or member_number.")] = "email",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what the import would do.")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Replace the member register with an export (UTF-8 or Windows-1252, ';' or ',').
    Rows that cannot be read are reported by line and skipped; the rest is loaded."""
    from sqlmodel import Session

    from maild.app import App
    from maild.core.register import KEYS, RegisterError, read_register
    from maild.store import members as store_members

    _choice("--key", key, KEYS)
    try:
        data = file.read_bytes()
    except OSError as exc:
        _fail(f"{file}: {exc.strerror}")
    try:
        register = read_register(data, key)  # type: ignore[arg-type]
    except RegisterError as exc:
        _fail(f"{file}: {exc}")
    if dry_run:
        instance = App(_settings(config))
        if instance.database_exists():
            instance = _read_app(config, writes=True)
    else:
        instance = _app(config)
    result = store_members.ImportResult(added=len(register.rows))
    if not dry_run or instance.database_exists():
        with Session(instance.engine) as session:
            result = store_members.replace_register(session, register.rows, key, dry_run)  # type: ignore[arg-type]
            if not dry_run:
                session.commit()
    problems = [{"line": p.line, "kind": p.kind, "message": p.message} for p in register.problems]
    document = {"file": str(file), "dry_run": dry_run, "key": key, "encoding": register.encoding,
                "delimiter": register.delimiter, "rows_read": register.read_rows, "members": len(register.rows),
                **result.to_json(), "problems": problems}
    if as_json:
        _print_json(document)
        return
    for problem in register.problems:
        err.print(f"{file}:{problem.line}: {problem.message}", markup=False)
    verb = "would be" if dry_run else "were"
    out.print(f"{file}: {register.read_rows} rows ({register.encoding}, {register.delimiter!r}-separated), "
              f"{len(register.rows)} members; {result.added} {verb} added, {result.updated} updated, "
              f"{result.unchanged} unchanged, {result.removed} removed ({len(result.unlinked_tickets)} tickets "
              f"unlinked); {len(problems)} problems", markup=False)


# --- attachments and canned answers ------------------------------------------------------------

attachments_app = typer.Typer(no_args_is_help=True, help="Files that came with the mail.")
answers_app = typer.Typer(no_args_is_help=True, help="Canned answers (templates/LANG/answers/NAME.txt).")
app.add_typer(attachments_app, name="attachments")
app.add_typer(answers_app, name="answers")


@attachments_app.command("get")
def attachments_get(
    attachment_id: Annotated[int, typer.Argument(metavar="ID", help="As `tickets show` lists it.")],
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write it here (made private); default: stdout.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Write one attachment out: to FILE, or its bytes to stdout (a pipe or a file, never a terminal)."""
    from sqlmodel import Session

    from maild.store.attachments import attachment_path
    from maild.store.private import write_file
    from maild.store.tables import Attachment

    if out_file is None and sys.stdout.isatty():  # its bytes are from mail: never raw on a terminal
        _fail("stdout is a terminal: give --out FILE, or send the bytes to a pipe or a file")
    instance = _read_app(config)
    with Session(instance.engine) as session:
        row = session.get(Attachment, attachment_id)
    if row is None:
        _fail(f"no attachment {attachment_id}")
    try:
        data = attachment_path(instance.settings.data_dir, row).read_bytes()
    except (OSError, ValueError) as exc:
        _fail(f"attachment {attachment_id}: {exc}")
    if out_file is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        write_file(out_file, data, replace=True)
    except OSError as exc:
        _fail(f"cannot write {out_file}: {exc}")
    err.print(f"{out_file}: {row.filename or '(no name)'}, {len(data)} bytes", markup=False)


@answers_app.command("list")
def answers_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """The canned answers, each with its language and title."""
    from maild.outbound.answers import Answers

    instance = _app(config, migrate=False)
    listing = Answers(instance.templates).listing()
    if as_json:
        _print_json([{"name": a.name, "language": a.language, "title": a.title} for a in listing])
        return
    _table(("name", "language", "title"), ((a.name, a.language, a.title) for a in listing))


# --- quarantine ------------------------------------------------------------------------------


@quarantine_app.command("list")
def quarantine_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Messages kept in the quarantine, with the reason."""
    from sqlmodel import Session

    from maild import views

    instance = _read_app(config)
    with Session(instance.engine) as session:
        rows = views.quarantine_rows(session)
    if as_json:
        _print_json(rows)
        return
    _table(("id", "kind", "received_at", "from", "subject", "size", "reason"),
           ((str(row["id"]), row["kind"], row["received_at"], row["from"], row["subject"], str(row["size"]),
             row["reason"].splitlines()[0] if row["reason"] else "") for row in rows))


@quarantine_app.command("show")
def quarantine_show(qid: Annotated[int, typer.Argument(metavar="ID")], raw: bool = False, config: ConfigOpt = None) -> None:
    """One kept message: its reason and the raw message (--raw: only the raw bytes)."""
    from sqlmodel import Session

    from maild import views

    instance = _read_app(config)
    with Session(instance.engine) as session:
        row = views.quarantine_row(session, qid)
    if row is None:
        _fail(f"no quarantined message {qid}")
    content = instance.raw_store.read(row["raw_path"]) if row["raw_path"] else b""
    if raw and not sys.stdout.isatty():  # to a file or a pipe: the bytes as they came
        sys.stdout.buffer.write(content)
        return
    if raw:
        out.print(content.decode("utf-8", "replace"), markup=False)
        return
    for key in ("id", "kind", "received_at", "from", "subject", "size", "released_at"):
        out.print(f"{key}: {row[key]}", markup=False)
    out.print(f"reason: {row['reason']}", markup=False)
    out.rule("raw message")
    out.print(content.decode("utf-8", "replace"), markup=False)


@quarantine_app.command("replay")
def quarantine_replay(qids: Annotated[list[int], typer.Argument(metavar="ID...")], config: ConfigOpt = None) -> None:
    """Try kept messages again through the whole pipeline."""
    from sqlmodel import Session

    from maild.ingest import reprocess

    instance = _app(config)
    failed = False
    for qid in qids:
        with Session(instance.engine) as session:
            inbound = reprocess(session, qid)
            session.commit()
            inbound_id = inbound.id if inbound else None
        if inbound_id is None:
            err.print(f"{qid}: no such quarantined message with a raw copy", markup=False)
            failed = True
            continue
        out.print(f"{qid}: {instance.pipeline.process(inbound_id)}", markup=False)
    if failed:
        raise typer.Exit(1)


# --- outbox --------------------------------------------------------------------------------


@outbox_app.command("list")
def outbox_list(
    state: Annotated[Optional[list[str]], typer.Option(help="queued|sending|sent|failed (default: all but sent)")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include sent mail.")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Outgoing mail: queued, being sent, failed (and with --all, sent)."""
    from sqlmodel import Session

    from maild import views

    for value in state or ():
        _choice("--state", value, OUTBOX_STATES)
    instance = _read_app(config)
    states = tuple(state or ()) or (() if show_all else ("queued", "sending", "failed"))
    with Session(instance.engine) as session:
        rows = views.outbox_rows(session, instance.settings.instance.tag_prefix, states)
    if as_json:
        _print_json(rows)
        return
    _table(("id", "ticket", "kind", "recipient", "state", "tries", "next attempt", "subject", "last error"),
           ((str(row["id"]), row["ticket"] or "", row["kind"], row["recipient"], row["state"], str(row["attempts"]),
             row["next_attempt_at"] or "", row["subject"], (row["last_error"] or "")[:60]) for row in rows))


def _outbox_ids(ids: list[str]) -> list[int] | None:
    """``ALL`` (every row the action applies to) or row ids."""
    if [value.upper() for value in ids] == ["ALL"]:
        return None
    if not ids or not all(value.isdigit() for value in ids):
        _fail("give outbox ids (see `maild outbox list`) or ALL")
    return [int(value) for value in ids]


def _outbox_operate(action: str, ids: list[str], config: str | None) -> None:
    from sqlmodel import Session

    from maild.outbound.outbox import OPERATOR_ACTIONS, operate

    wanted = _outbox_ids(ids)
    instance = _read_app(config, writes=True)
    with Session(instance.engine) as session:
        changed = operate(session, action, wanted, datetime.now(timezone.utc))
        session.commit()
    states = "|".join(OPERATOR_ACTIONS[action][0])
    out.print(f"{action}: {len(changed)} mail(s){' (' + ', '.join(map(str, changed)) + ')' if changed else ''}", markup=False)
    missed = sorted(set(wanted or ()) - set(changed))
    if missed:
        _fail(f"{action}: not changed (no such mail, or not {states}): {', '.join(map(str, missed))}")


OutboxIds = Annotated[list[str], typer.Argument(metavar="ID...|ALL")]


@outbox_app.command("retry")
def outbox_retry(ids: OutboxIds, config: ConfigOpt = None) -> None:
    """Send held or failed mail again now (queued mail: now instead of after its backoff)."""
    _outbox_operate("retry", ids, config)


@outbox_app.command("hold")
def outbox_hold(ids: OutboxIds, config: ConfigOpt = None) -> None:
    """Keep queued mail from being sent until `maild outbox retry`."""
    _outbox_operate("hold", ids, config)


@outbox_app.command("delete")
def outbox_delete(ids: OutboxIds, config: ConfigOpt = None) -> None:
    """Remove queued, held or failed mail for good (mail being sent is left alone)."""
    _outbox_operate("delete", ids, config)


# --- backup --------------------------------------------------------------------------------


@app.command()
def backup(directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write it; must not exist.")],
           config: ConfigOpt = None) -> None:
    """A consistent copy of the instance (database, raw mail, attachments, key, configuration)."""
    from maild import backup as backups

    instance = _read_app(config)
    settings = instance.settings
    config_files = [Path(settings.source)] if Path(settings.source).is_file() else []
    config_files += [settings.rules_file, settings.templates_dir]
    try:
        manifest = backups.backup(settings.database_url, settings.data_dir, config_files, directory, _version())
    except backups.BackupError as exc:
        _fail(str(exc))
    out.print(f"backup written to {directory}: {len(manifest['files'])} files, manifest {backups.MANIFEST}", markup=False)
    if manifest["database"] != "sqlite":
        out.print(f"the database ({instance.database_label}) is not in it: back it up with pg_dump", markup=False)


def _rows_in_the_way(instance: App) -> int | None:
    """Tickets and spooled messages a restore would replace; None when the database has no
    schema yet (or, on a server, does not exist yet: the dump comes after). Any other error
    refuses the restore: a locked database is not an empty one."""
    import sqlalchemy as sa
    from sqlalchemy.exc import OperationalError

    from maild.store.tables import Inbound, Ticket

    try:
        with instance.engine.connect() as conn:
            if not sa.inspect(conn).has_table(Ticket.__tablename__):
                return None
            count = sum(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                        for table in (Ticket.__table__, Inbound.__table__))  # type: ignore[attr-defined]
    except OperationalError as exc:
        if instance.engine.dialect.name != "sqlite" and "does not exist" in str(exc):
            return None
        _fail(f"cannot tell whether {instance.database_label} holds data, so nothing was restored: "
              f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    return count


@app.command()
def restore(directory: Annotated[Path, typer.Argument(metavar="DIR", help="A backup written by `maild backup`.")],
            config: ConfigOpt = None) -> None:
    """Restore a backup into this instance, which must have no data yet."""
    from maild import backup as backups
    from maild.app import App

    settings = _settings(config)
    instance = App(settings)
    tickets = None
    if instance.database_exists():
        tickets = _rows_in_the_way(instance)
    try:
        manifest = backups.restore(directory, settings.database_url, settings.data_dir, tickets)
    except backups.BackupError as exc:
        _fail(str(exc))
    if manifest["database"] == "sqlite":
        instance.prepare_database()  # a backup of an older maild is brought up to date
    out.print(f"restored {len(manifest['files'])} files from {directory} (taken {manifest['created_at']})", markup=False)
    if manifest["database"] != "sqlite":
        out.print(f"the database ({instance.database_label}) is not in the backup: restore its pg_dump "
                  "into it now (pg_restore), then `maild db upgrade`", markup=False)
    backed_config = directory / "config" / "maild.toml"
    if backed_config.is_file():
        out.print(f"the backup's configuration is in {backed_config}: reply addresses of old mail work only with "
                  "its secret_key (or the data directory's secret.key)", markup=False)


# --- status --------------------------------------------------------------------------------


@app.command()
def status(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Is all well? Exit 0 ok, 1 warning, 2 critical (for monitoring)."""
    from maild import status as health
    from maild.schedule import JOBS

    instance = _read_app(config, code=health.CRITICAL)
    settings = instance.settings
    report, problems = health.collect(instance.engine, mailboxes=[(box.name, box.poll_seconds) for box in settings.imap],
                                      jobs=list(JOBS))
    level = health.level_of(problems)
    document = {"version": _version(), "config_file": settings.source, "database": instance.database_label,
                "status": ("ok", "warning", "critical")[level], **report, "problems": [p.text for p in problems]}
    if as_json:
        _print_json(document)
        raise typer.Exit(level)
    daemon = report["daemon"]
    spool, outbox, quarantine = report["spool"], report["outbox"], report["quarantine"]
    lines = [
        f"maild {document['version']}: {document['status'].upper()}",
        f"config: {settings.source}; database: {instance.database_label}",
        f"daemon: {'running, pid ' + str(daemon['pid']) + ' since ' + str(daemon['started_at']) if daemon['running'] else 'not running'}",
        f"spool: {spool['pending']} waiting" + (f", oldest {spool['oldest_pending_seconds']:.0f} s" if spool["pending"] else ""),
        f"outbox: {outbox['queued']} queued, {outbox['failed']} failed"
        + (f", oldest {outbox['oldest_queued_seconds']:.0f} s" if outbox["queued"] else ""),
        f"quarantine: {quarantine['count']} kept",
        *(f"imap {box['name']}: last success {box['last_success_at'] or 'never'}"
          + (f", last error {box['last_error']}" if box["last_error"] else "") for box in report["imap"]),
        *(f"sweep {sweep['job']}: last run {sweep['last_run_at'] or 'never'}" for sweep in report["sweeps"]),
        *(f"problem: {text}" for text in document["problems"]),
    ]
    for line in lines:
        out.print(line, markup=False)
    raise typer.Exit(level)


# --- jobs ----------------------------------------------------------------------------------


def _at(value: str | None) -> datetime:
    from zoneinfo import ZoneInfo

    if not value:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"--at {value!r}: not an ISO time such as 2026-12-07T09:00")
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(_settings(None).instance.timezone))


@jobs_app.command("list")
def jobs_list(at: Annotated[Optional[str], typer.Option("--at", help="As if it were this ISO time.")] = None,
              as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """The sweeps, when they run, and what each would do now."""
    from maild.daemon import SWEEP_MINUTES
    from maild.schedule import JOBS, run_job

    instance = _read_app(config, writes=True)  # the dry run writes, then rolls back
    now = _at(at)
    rows = [{"job": name, "schedule": f"every {SWEEP_MINUTES} minutes" + (", sends on business days from 08:00" if name == "digest" else ", erases once a day" if name == "retention" else ""),
             "due_now": run_job(instance.pipeline, name, now, dry_run=True)} for name in JOBS]
    if as_json:
        _print_json(rows)
        return
    _table(("job", "schedule", "due now"), ((row["job"], row["schedule"], str(len(row["due_now"]))) for row in rows))


@jobs_app.command("run")
def jobs_run(
    job: Annotated[Optional[str], typer.Argument(help="One sweep; all when left out.")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="Run as if it were this ISO time.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would happen; change nothing.")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Run due sweeps now, or as of --at."""
    from maild.schedule import JOBS, run_job

    if job is not None and job not in JOBS:
        _fail(f"no job {job!r}; jobs: {', '.join(JOBS)}")
    instance = _app(config)
    now = _at(at)
    results = {name: run_job(instance.pipeline, name, now, dry_run) for name in ([job] if job else list(JOBS))}
    if as_json:
        _print_json({"at": now.isoformat(), "dry_run": dry_run, "jobs": results})
        return
    for name, actions in results.items():
        out.print(f"{name}: {len(actions)}{' (dry run)' if dry_run else ''}", markup=False)
        for action in actions:
            out.print(f"  {action}", markup=False)


# --- report --------------------------------------------------------------------------------


@app.command()
def report(
    start: Annotated[Optional[str], typer.Option("--from", metavar="DATE", help="First day (YYYY-MM-DD); default 27 days before --to.")] = None,
    end: Annotated[Optional[str], typer.Option("--to", metavar="DATE", help="Last day, included; default today.")] = None,
    queue: Annotated[Optional[str], typer.Option("--queue", metavar="ID", help="One queue's own report.")] = None,
    as_json: JsonOpt = False,
    html: Annotated[Optional[Path], typer.Option("--html", metavar="FILE", help="Write one self-contained HTML page.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Tickets created in a period: volumes, backlog, response times, SLA, staff, categories."""
    from datetime import date, timedelta

    from zoneinfo import ZoneInfo

    from sqlmodel import Session

    from maild.report.build import DEFAULT_DAYS, make_report
    from maild.report.html import page
    from maild.report.text import render

    if as_json and html is not None:
        _fail("--json and --html: choose one")

    def day(option: str, value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            _fail(f"{option} {value!r}: not a date such as 2027-03-01")
            raise

    instance = _read_app(config)
    settings = instance.settings
    rules = instance.rules
    if queue is not None and queue not in rules.queues:
        _fail(f"no queue {queue!r}; queues: {', '.join(rules.queues)}")
    now = datetime.now(timezone.utc)
    last = day("--to", end) if end else now.astimezone(ZoneInfo(settings.instance.timezone)).date()
    first = day("--from", start) if start else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        _fail(f"--from {first} is after --to {last}")
    with Session(instance.engine) as session:
        document = make_report(session, rules, settings.instance.timezone, settings.instance.tag_prefix,
                               first, last, now, queue)
    language = (rules.queues[queue] if queue else rules.default_queue()).language
    if html is not None:
        try:
            html.write_text(page(document, settings.instance.name, language), encoding="utf-8")
        except OSError as exc:
            _fail(f"{html}: {exc.strerror}")
        out.print(f"{html}: written", markup=False)
        return
    if as_json:
        _print_json(document)
        return
    for part in render(document, language):
        out.print(part)


# --- rules -----------------------------------------------------------------------------------


@rules_app.command("test")
def rules_test(message: Annotated[Path, typer.Argument(metavar="FILE.eml")], as_json: JsonOpt = False,
               recipient: Annotated[Optional[list[str]], typer.Option("--recipient")] = None,
               member_field: Annotated[Optional[list[str]], typer.Option(
                   "--member-field", metavar="NAME=VALUE",
                   help="Test as a member with this register field (repeatable).")] = None,
               not_member: Annotated[bool, typer.Option("--not-member", help="Test as a sender who is no member.")] = False,
               config: ConfigOpt = None) -> None:
    """What would happen to this message, and why. Changes nothing. The sender is looked up
    in the member register when there is a database, unless --member-field or --not-member say."""
    from maild import views
    from maild.app import App

    instance = App(_settings(config))
    try:
        raw = message.read_bytes()
    except OSError as exc:
        _fail(f"{message}: {exc.strerror}")
    finder = _member_finder(instance, member_field or [], not_member)  # member register (issue 16)
    result = views.rules_verdict(instance.rules, raw, tuple(r.lower() for r in recipient or ()), finder)
    if as_json:
        _print_json(result)
        return
    for key in ("classification", "queue", "priority", "category", "assignee", "ack", "ack_reason"):
        out.print(f"{key}: {result[key]}", markup=False)
    shown = result.get("member")
    out.print(f"member: {shown['member_number'] or '-'} (by {shown['linked_by']}) {json.dumps(shown['fields'], ensure_ascii=False)}"
              if shown else "member: none", markup=False)
    out.print("matched rules:" if result["matched_rules"] else "matched rules: none", markup=False)
    for hit in result["matched_rules"]:
        out.print(f"  - {hit['name']}: {json.dumps(hit['actions'], ensure_ascii=False)}", markup=False)


# --- members: access and erasure requests (docs/coming.md#reports-and-privacy) --------------------------------------

def _member_address(address: str) -> str:
    """An address as the erasure and export look it up; a name or a fragment is refused (it
    would match other people)."""
    value = address.strip().lower()
    if value.count("@") != 1 or not all(value.split("@")) or any(c.isspace() for c in value):
        _fail(f"{address!r} is not an email address")
    return value


@members_app.command("export")
def members_export(address: Annotated[str, typer.Argument(help="The member's email address.")],
                   out_file: Annotated[Path, typer.Option("--out", help="The zip file to write (must not exist).")],
                   config: ConfigOpt = None) -> None:
    """Everything stored about ADDRESS, as a zip with index.json (an access request, Art. 15)."""
    from maild.privacy.export import ExportError, export

    member = _member_address(address)
    instance = _read_app(config)
    try:
        summary = export(instance.engine, instance.settings.data_dir, member, out_file, datetime.now(timezone.utc),
                         instance.rules.addresses())
    except ExportError as exc:
        _fail(str(exc))
    if not summary["found"]:
        out.print(f"no data stored about {member}; {out_file} says so", markup=False)
        return
    out.print(f"wrote {out_file}: {summary['tickets']} tickets, {summary['messages']} messages, "
              f"{summary['attachments']} attachments, {summary['outgoing']} outgoing mails, {summary['files']} files",
              markup=False)


@members_app.command("erase")
def members_erase(address: Annotated[str, typer.Argument(help="The member's email address.")],
                  yes: Annotated[bool, typer.Option("--yes", help="Really erase: it cannot be undone.")] = False,
                  everywhere: Annotated[bool, typer.Option(
                      "--everywhere", help="Also blank the name in other people's mail, and drop their raw mail that mentions it.")] = False,
                  as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Erase ADDRESS's data (Art. 17): texts, raw mail and attachments go, a pseudonym takes the
    address and name, ticket skeletons stay for reports."""
    from maild.ingest import secret_key
    from maild.outbound.transport import maildir_path
    from maild.privacy.request import erase_address

    member = _member_address(address)
    if not yes:
        _fail(f"this erases everything stored about {member} and cannot be undone: give --yes")
    instance = _read_app(config, writes=True)
    settings = instance.settings
    secret = secret_key(settings.instance.secret_key, settings.data_dir)
    outcome = erase_address(instance.engine, settings.data_dir, secret, member, datetime.now(timezone.utc), everywhere,
                            maildir=maildir_path(settings.outbound.transport, Path(settings.base_dir)))
    if as_json:
        _print_json({"address": member, **outcome.as_dict()})
    elif not outcome.address_found:
        out.print(f"no data stored about {member}: nothing to erase", markup=False)
    else:
        done = outcome.erased
        out.print(f"erased {member}: {done.tickets} tickets and {done.messages} messages blanked, {done.files} files "
                  f"deleted, {done.outbox_dropped} unsent mails dropped, {outcome.files_rewritten} other raw mails "
                  f"rewritten", markup=False)
        if outcome.new_mail:
            out.print(f"{outcome.new_mail} message(s) naming {member} that came in during or after the erasure are "
                      "new mail: kept and filed", markup=False)
        for where in outcome.names_in_others_mail:
            out.print(f"the name is still in other people's mail: {where} (--everywhere blanks it)", markup=False)
        if outcome.compact_problem:
            err.print(f"maild: {outcome.compact_problem}", markup=False)
        for where in outcome.remaining:
            err.print(f"maild: the address is still in {where}", markup=False)
        if not outcome.remaining and not outcome.compact_problem:
            out.print("checked: nothing of it remains in the database or under the data directory", markup=False)
    if outcome.remaining or outcome.compact_problem:
        raise typer.Exit(1)


def _member_finder(instance: App, fields: list[str], not_member: bool) -> Any:
    """member register (issue 16): who ``rules test`` takes the sender for: the member given by
    ``--member-field``, nobody (``--not-member``), else the register of an existing, current
    database (the lookup command is not run), else nobody."""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import Session

    from maild.core.members import NO_LINK, Link, Member, link
    from maild.store import members as store_members

    if not_member:
        return lambda sender, numbers: NO_LINK
    if fields:
        given: dict[str, str] = {}
        for item in fields:
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                _fail(f"--member-field {item!r}: give NAME=VALUE")
            given[name.strip()] = value
        number = given.pop("member_number", None)
        return lambda sender, numbers: Link(Member(number, sender, given), "address")
    try:
        usable = instance.database_exists() and instance.database_is_current()
    except SQLAlchemyError:
        usable = False
    if not usable:
        return None

    def find(sender: str, numbers: tuple[str, ...]) -> Any:
        with Session(instance.engine) as session:
            by_address, by_number = store_members.look_up(session, sender, numbers)
        return link(by_address, numbers, by_number)

    return find


def main() -> None:
    """Entry point: known errors become one line on stderr and a non-zero exit."""
    os.umask(0o077)  # docs/guarantees.md: whatever maild or a library under it creates is private
    try:
        app()
    except Exception as exc:
        lines = _known_error(exc)
        if lines is None:
            raise
        for line in lines:
            err.print(line, markup=False)
        sys.exit(1)


def _known_error(exc: Exception) -> list[str] | None:
    """What to print for an error maild expects (a bad configuration, rules or templates; a
    database or a file it cannot use); None for anything else (a bug: the traceback shows).
    The classes are looked up among the loaded modules, never imported: an error can only
    come from a module that is loaded, and importing them would cost every command."""

    def raised(module: str, *names: str) -> bool:
        loaded = sys.modules.get(module)
        return loaded is not None and isinstance(exc, tuple(getattr(loaded, name) for name in names))

    if raised("maild.config", "ConfigError") or raised("maild.rules.loader", "RulesError") \
            or raised("maild.app", "TemplatesError"):
        return list(exc.errors)  # type: ignore[attr-defined]
    if isinstance(exc, OSError) or raised("maild.app", "NotMigrated") or raised("sqlalchemy.exc", "SQLAlchemyError"):
        return [f"maild: {exc}"]
    return None
