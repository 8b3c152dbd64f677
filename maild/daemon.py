"""``maild run``: the SMTP listener, the spool processor and (later) pollers and senders.

SIGTERM/SIGINT: stop accepting, finish what is in flight, exit 0. SIGHUP: reload rules;
a bad new file keeps the old rules running and logs every error.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from maild.app import App
from maild.ingest import Pipeline
from maild.intake.imap import start_pollers, stop_pollers
from maild.intake.smtp import IntakeHandler, start_listener
from maild.intake.spool import GroupCommitter
from maild.rules.loader import RulesError

log = logging.getLogger("maild")

IDLE_RECHECK_SECONDS = 2.0  # also picks up `maild quarantine replay` from another process
DRAIN_SECONDS = 30.0


async def process_spool(pipeline: Pipeline, wake: asyncio.Event, stopping: asyncio.Event) -> None:
    """Work through pending spool rows; one worker thread, woken by every commit."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline") as worker:
        while True:
            wake.clear()
            done = await loop.run_in_executor(worker, pipeline.process_pending)
            if stopping.is_set() and not done:
                return
            if not done:
                try:
                    await asyncio.wait_for(wake.wait(), IDLE_RECHECK_SECONDS)
                except asyncio.TimeoutError:
                    pass


def reload_rules(app: App) -> None:
    try:
        rules = app.reload_rules()
    except RulesError as exc:
        for error in exc.errors:
            log.error("rules not reloaded: %s", error)
        return
    log.info("rules reloaded from %s: %d queues, %d rules", rules.path, len(rules.queues), len(rules.rules))


async def serve(app: App, ready: asyncio.Event | None = None) -> None:
    settings = app.settings
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, reload_rules, app)

    committer = GroupCommitter(app.engine, app.raw_store)
    committer.start()
    handler = IntakeHandler(committer.accept, settings.smtp.accept_domains)
    host, port = settings.smtp.host_port()
    server = await start_listener(handler, host, port, settings.smtp.max_message_bytes, settings.instance.hostname)
    pollers = start_pollers(settings, committer.accept, app.engine, stopping)  # one per [[imap]]
    processor = asyncio.create_task(process_spool(app.pipeline, committer.committed, stopping), name="processor")
    log.info("maild listening on %s:%d (SMTP), database %s", host, port, app.engine.url.render_as_string())
    if ready:
        ready.set()

    await stopping.wait()
    log.info("stopping: no new connections; finishing messages in flight")
    server.close()
    for _ in range(int(DRAIN_SECONDS * 10)):
        if handler.in_flight == 0:
            break
        await asyncio.sleep(0.1)
    await stop_pollers(pollers, DRAIN_SECONDS)  # before the committer closes: they may be storing
    await committer.close()
    committer.committed.set()
    await processor
    log.info("stopped")


def run(app: App) -> None:
    app.prepare_database()
    asyncio.run(serve(app))
