"""``maild run``: the SMTP listener, IMAP pollers, the spool processor and the outbound sender.

SIGTERM/SIGINT: stop accepting, finish what is in flight, exit 0. SIGHUP: reload rules;
a bad new file keeps the old rules running and logs every error.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import datetime, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from maild import sdnotify
from maild.app import App, TemplatesError
from maild.intake.imap import start_pollers, stop_pollers
from maild.intake.smtp import IntakeHandler, start_listener
from maild.intake.spool import GroupCommitter
from maild.processor import Processor
from maild.rules.loader import RulesError
from maild.schedule import run_all

log = logging.getLogger("maild")

DRAIN_SECONDS = 30.0
SWEEP_MINUTES = 5


def start_scheduler(app: App) -> AsyncIOScheduler:
    """All sweeps every few minutes, and once right away (catching up on any missed while
    the daemon was down). Each sweep decides from the database what is due."""
    scheduler = AsyncIOScheduler(timezone=app.settings.instance.timezone)

    async def sweep() -> None:
        try:
            results = await asyncio.to_thread(run_all, app.pipeline, datetime.now(timezone.utc))
        except Exception:  # logged; the next run tries again
            log.exception("sweeps failed")
            return
        for name, actions in results.items():
            for action in actions:
                log.info("%s: %s", name, action)

    scheduler.add_job(sweep, "interval", minutes=SWEEP_MINUTES, next_run_time=datetime.now(timezone.utc),
                      max_instances=1, coalesce=True, id="sweeps")
    scheduler.start()
    return scheduler


def reload_rules(app: App, processor: Processor | None) -> None:
    """SIGHUP: check the new rules here; only valid ones reach the processor (none yet while
    the daemon starts: it starts with the app's rules)."""
    try:
        rules = app.reload_rules()
    except (RulesError, TemplatesError) as exc:
        for error in exc.errors:
            log.error("rules and templates not reloaded: %s", error)
        return
    if processor:
        processor.reload(app.rules_text)
    log.info("rules reloaded from %s: %d queues, %d rules", rules.path, len(rules.queues), len(rules.rules))


async def wake_processor(processor: Processor, committed: asyncio.Event) -> None:
    """Tell the processor about every spool commit."""
    while True:
        await committed.wait()
        committed.clear()
        processor.wake()


async def serve(app: App, ready: asyncio.Event | None = None) -> None:
    settings = app.settings
    if settings.staff.authentication == "none":
        log.warning("[staff] authentication = none: anyone who writes a staff From address is obeyed; for trials only")
    if settings.staff.authentication == "authres" and not settings.staff.trusted_authserv_ids:
        log.warning("[staff] authentication = authres with no trusted_authserv_ids: no staff mail will be proven")
    sender = app.sender()  # fails here, before anything listens, on a bad transport
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, reload_rules, app, None)
    committer = GroupCommitter(app.engine, app.raw_store)
    committer.start()
    handler = IntakeHandler(committer.accept, settings.smtp.accept_domains)
    host, port = settings.smtp.host_port()
    server = await start_listener(handler, host, port, settings.smtp.max_message_bytes, settings.instance.hostname)
    # Only now the child: a port in use must end the start-up with no process left behind.
    # (No await from here to the handler: a SIGHUP cannot fall between the two.)
    processor = Processor(settings, app.rules_text)
    processor.start()
    loop.add_signal_handler(signal.SIGHUP, reload_rules, app, processor)
    pollers = start_pollers(settings, committer.accept_many, app.engine, stopping)  # one per [[imap]]
    waker = asyncio.create_task(wake_processor(processor, committer.committed), name="waker")
    sending = asyncio.create_task(sender.run(stopping), name="sender")
    scheduler = start_scheduler(app)
    log.info("maild listening on %s:%d (SMTP), database %s", host, port, app.engine.url.render_as_string())
    if ready:
        ready.set()
    sdnotify.notify(f"READY=1\nSTATUS=listening on {host}:{port}")
    watchdog = sdnotify.watchdog_seconds()
    feeding = asyncio.create_task(sdnotify.keep_watchdog_fed(watchdog), name="watchdog") if watchdog else None

    await stopping.wait()
    sdnotify.notify("STOPPING=1")
    log.info("stopping: no new connections; finishing messages in flight")
    scheduler.shutdown(wait=False)
    server.close()
    for _ in range(int(DRAIN_SECONDS * 10)):
        if handler.in_flight == 0:
            break
        await asyncio.sleep(0.1)
    await stop_pollers(pollers, DRAIN_SECONDS)  # before the committer closes: they may be storing
    await committer.close()
    await sending  # finishes the mail in flight; the rest stays queued
    waker.cancel()
    code = await asyncio.get_running_loop().run_in_executor(None, processor.stop, DRAIN_SECONDS * 4)
    log.info("stopped (processor exit code %s)", code)
    if feeding:
        feeding.cancel()


def run(app: App) -> None:
    app.prepare_database()
    asyncio.run(serve(app))
