"""The ``maild`` command line (contract section 5). Thin: every command calls into the app."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from maild import views
from maild.app import App, NotMigrated, TemplatesError
from maild.core import threader
from maild.core.commands import Command
from maild.config import ConfigError, Settings, load_settings
from maild.rules.loader import RulesError

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

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOpt = Annotated[Optional[str], typer.Option("--config", help="maild.toml to use.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]


class _State:
    config: str | None = None


@app.callback()
def _global(config: ConfigOpt = None) -> None:
    _State.config = config


def _settings(config: str | None) -> Settings:
    return load_settings(config or _State.config)


def _app(config: str | None, migrate: bool = True) -> App:
    instance = App(_settings(config))
    if migrate:
        instance.prepare_database()
    return instance


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n")


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
def run(config: ConfigOpt = None) -> None:
    """The daemon: SMTP listener and spool processor, in the foreground."""
    from maild.daemon import run as run_daemon

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    instance = App(_settings(config))
    instance.rules  # refuse to start on bad rules  # noqa: B018
    problems = instance.check_templates()
    if problems:
        raise TemplatesError(problems)
    run_daemon(instance)


@app.command()
def check(config: ConfigOpt = None) -> None:
    """Validate configuration and rules; print every problem."""
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
        problems.extend(instance.check_templates())
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
    from maild.intake.spool import spool_sync
    from maild.mail import Envelope

    try:
        instance = _app(config)
    except (ConfigError, NotMigrated, SQLAlchemyError, OSError) as exc:
        _fail(f"cannot store: {exc}", EXIT_TEMPFAIL)
    envelope = Envelope(source="pipe", mail_from=sender, recipients=tuple(r.lower() for r in recipient or ()))
    stored = []
    for name in files or ["-"]:
        try:
            # the bytes go once stored: processing reads the stored copy (one 25 MB copy less at the peak)
            read = sys.stdin.buffer.read if name == "-" else Path(name).read_bytes
            stored.append(spool_sync(instance.engine, instance.raw_store, read(), envelope))
        except Exception as exc:  # anything that keeps a message from being stored is temporary
            _fail(f"{name}: could not store: {exc}", EXIT_TEMPFAIL)
    try:
        pipeline = instance.pipeline
    except RulesError as exc:  # stored: the daemon processes it once the rules are fixed
        err.print(f"maild: stored, not yet processed: {exc.errors[0]}", markup=False)
        return
    for inbound_id in stored:
        outcome = pipeline.process(inbound_id)
        err.print(f"{inbound_id}: {outcome}", markup=False)


# --- tickets ---------------------------------------------------------------------------------


@tickets_app.command("list")
def tickets_list(
    status: Annotated[Optional[str], typer.Option(help="new|open|pending|resolved|closed")] = None,
    queue: Annotated[Optional[str], typer.Option(help="Queue id.")] = None,
    assignee: Annotated[Optional[str], typer.Option(help="Staff address.")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Tickets, every status unless filtered."""
    instance = _app(config)
    with Session(instance.engine) as session:
        rows = views.ticket_rows(session, instance.settings.instance.tag_prefix, status=status, queue=queue, assignee=assignee)
    _ticket_table(rows, as_json)


@tickets_app.command("search")
def tickets_search(text: str, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Tickets whose subject, text or addresses match TEXT."""
    instance = _app(config)
    with Session(instance.engine) as session:
        rows = views.ticket_rows(session, instance.settings.instance.tag_prefix, text=text)
    _ticket_table(rows, as_json)


def _ticket_table(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        _print_json(rows)
        return
    table = Table("tag", "status", "queue", "priority", "category", "requester", "assignee", "msgs", "subject")
    for row in rows:
        table.add_row(row["tag"], row["status"], row["queue"], row["priority"], row["category"] or "",
                      row["requester"], row["assignee"] or "", str(row["message_count"]), row["subject"])
    out.print(table)


@tickets_app.command("show")
def tickets_show(number: int, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """One ticket with its messages and events, oldest first."""
    instance = _app(config)
    with Session(instance.engine) as session:
        detail = views.ticket_detail(session, instance.settings.instance.tag_prefix, number)
    if detail is None:
        _fail(f"no ticket {number}")
    if as_json:
        _print_json(detail)
        return
    out.print(f"{detail['tag']} {detail['subject']}", markup=False)
    for key in ("status", "queue", "priority", "category", "requester", "assignee", "cc", "created_at"):
        out.print(f"  {key}: {detail[key] if detail[key] not in (None, []) else '-'}", markup=False)
    for message in detail["messages"]:
        out.rule(f"{message['date'] or ''} {message['direction']} {message['kind']} {message['from']}")
        out.print(f"Subject: {message['subject']}\n\n{message['text']}", markup=False)
    out.rule("events")
    for event in detail["events"]:
        out.print(f"{event['at']} {event['actor']} {event['kind']} {json.dumps(event['data'], ensure_ascii=False)}", markup=False)


ActorOpt = Annotated[Optional[str], typer.Option("--as", help="Who does it (for the audit trail); default: $USER.")]


def _act(number: int, command: Command, actor: str | None, config: str | None, note: str = "") -> None:
    instance = _app(config)
    who = actor or f"{os.environ.get('USER', 'operator')} (shell)"
    error = instance.pipeline.act(number, command, who, note)
    if error:
        _fail(error)
    out.print(f"{threader.format_tag(instance.settings.instance.tag_prefix, number)}: done", markup=False)


@tickets_app.command("assign")
def tickets_assign(number: int, address: str, actor: ActorOpt = None, config: ConfigOpt = None) -> None:
    """Give a ticket to a staff member of its queue."""
    _act(number, Command("assign", address.lower()), actor, config)


@tickets_app.command("close")
def tickets_close(number: int, actor: ActorOpt = None, config: ConfigOpt = None) -> None:
    """Resolve a ticket; the member gets the resolved notice (as with #close)."""
    _act(number, Command("close"), actor, config)


@tickets_app.command("reopen")
def tickets_reopen(number: int, actor: ActorOpt = None, config: ConfigOpt = None) -> None:
    """Open a pending or resolved ticket again."""
    _act(number, Command("open"), actor, config)


@tickets_app.command("note")
def tickets_note(number: int, text: str, actor: ActorOpt = None, config: ConfigOpt = None) -> None:
    """Add an internal note; nothing is sent to the member."""
    _act(number, Command("note"), actor, config, note=text)


@app.command("members")
def members(
    action: Annotated[str, typer.Argument(metavar="show")],
    address: str,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """members show ADDRESS: a member's tickets, open ones first."""
    if action != "show":
        _fail(f"unknown action {action!r}: use `maild members show ADDRESS`")
    instance = _app(config)
    with Session(instance.engine) as session:
        rows = views.ticket_rows(session, instance.settings.instance.tag_prefix, requester=address)
    rows.sort(key=lambda row: (row["status"] not in ("new", "open", "pending"), -row["number"]))
    _ticket_table(rows, as_json)


# --- quarantine ------------------------------------------------------------------------------


@quarantine_app.command("list")
def quarantine_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Messages kept in the quarantine, with the reason."""
    instance = _app(config)
    with Session(instance.engine) as session:
        rows = views.quarantine_rows(session)
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "kind", "received_at", "from", "subject", "size", "reason")
    for row in rows:
        table.add_row(str(row["id"]), row["kind"], row["received_at"], row["from"], row["subject"], str(row["size"]),
                      row["reason"].splitlines()[0] if row["reason"] else "")
    out.print(table)


@quarantine_app.command("show")
def quarantine_show(qid: Annotated[int, typer.Argument(metavar="ID")], raw: bool = False, config: ConfigOpt = None) -> None:
    """One kept message: its reason and the raw message (--raw: only the raw bytes)."""
    instance = _app(config)
    with Session(instance.engine) as session:
        row = views.quarantine_row(session, qid)
    if row is None:
        _fail(f"no quarantined message {qid}")
    content = instance.raw_store.read(row["raw_path"]) if row["raw_path"] else b""
    if raw:
        sys.stdout.buffer.write(content)
        return
    for key in ("id", "kind", "received_at", "from", "subject", "size", "released_at"):
        out.print(f"{key}: {row[key]}", markup=False)
    out.print(f"reason: {row['reason']}", markup=False)
    out.rule("raw message")
    out.print(content.decode("utf-8", "replace"), markup=False)


@quarantine_app.command("replay")
def quarantine_replay(qids: Annotated[list[int], typer.Argument(metavar="ID...")], config: ConfigOpt = None) -> None:
    """Try kept messages again through the whole pipeline."""
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
    instance = _app(config)
    states = tuple(state or ()) or (() if show_all else ("queued", "sending", "failed"))
    with Session(instance.engine) as session:
        rows = views.outbox_rows(session, instance.settings.instance.tag_prefix, states)
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "ticket", "kind", "recipient", "state", "tries", "next attempt", "subject", "last error")
    for row in rows:
        table.add_row(str(row["id"]), row["ticket"] or "", row["kind"], row["recipient"], row["state"], str(row["attempts"]),
                      row["next_attempt_at"] or "", row["subject"], (row["last_error"] or "")[:60])
    out.print(table)


# --- jobs ----------------------------------------------------------------------------------


def _at(value: str | None) -> datetime:
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

    instance = _app(config)
    now = _at(at)
    rows = [{"job": name, "schedule": f"every {SWEEP_MINUTES} minutes" + (", sends on business days from 08:00" if name == "digest" else ""),
             "due_now": run_job(instance.pipeline, name, now, dry_run=True)} for name in JOBS]
    if as_json:
        _print_json(rows)
        return
    table = Table("job", "schedule", "due now")
    for row in rows:
        table.add_row(row["job"], row["schedule"], str(len(row["due_now"])))
    out.print(table)


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


# --- rules -----------------------------------------------------------------------------------


@rules_app.command("test")
def rules_test(message: Annotated[Path, typer.Argument(metavar="FILE.eml")], as_json: JsonOpt = False,
               recipient: Annotated[Optional[list[str]], typer.Option("--recipient")] = None,
               config: ConfigOpt = None) -> None:
    """What would happen to this message, and why. Changes nothing."""
    instance = App(_settings(config))
    try:
        raw = message.read_bytes()
    except OSError as exc:
        _fail(f"{message}: {exc.strerror}")
    result = views.rules_verdict(instance.rules, raw, tuple(r.lower() for r in recipient or ()))
    if as_json:
        _print_json(result)
        return
    for key in ("classification", "queue", "priority", "category", "assignee", "ack", "ack_reason"):
        out.print(f"{key}: {result[key]}", markup=False)
    out.print("matched rules:" if result["matched_rules"] else "matched rules: none", markup=False)
    for hit in result["matched_rules"]:
        out.print(f"  - {hit['name']}: {json.dumps(hit['actions'], ensure_ascii=False)}", markup=False)


def main() -> None:
    """Entry point: known errors become one line on stderr and a non-zero exit."""
    try:
        app()
    except ConfigError as exc:
        for error in exc.errors:
            err.print(error, markup=False)
        sys.exit(1)
    except (RulesError, TemplatesError) as exc:
        for error in exc.errors:
            err.print(error, markup=False)
        sys.exit(1)
    except (NotMigrated, SQLAlchemyError, OSError) as exc:
        err.print(f"maild: {exc}", markup=False)
        sys.exit(1)
