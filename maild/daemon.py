"""``maild run``: the SMTP listener, IMAP pollers, the spool processor and the outbound sender.

SIGTERM/SIGINT: stop accepting, finish what is in flight, exit 0. SIGHUP: reload rules;
a bad new file keeps the old rules running and logs every error.

The long-running parts (IMAP pollers, sender, scheduler, the processor child's tending) run
under ``maild.supervise``: restarted after an error, with backoff; each part's health and the
daemon's heartbeat are in the ``components`` table.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import datetime, timezone
from typing import Any

from maild import sdnotify
from maild.app import App, TemplatesError
from maild.intake.imap import first_done, start_pollers, stop_pollers
from maild.intake.smtp import Accept, IntakeHandler, start_listener
from maild.intake.spool import GroupCommitter
from maild.processor import Processor
from maild.rules.loader import RulesError
from maild.schedule import JOBS, run_job
from maild.supervise import RESTART_SECONDS, Backoff, Health, Supervisor, Tracker, describe, pause

log = logging.getLogger("maild")

DRAIN_SECONDS = 30.0
SWEEP_MINUTES = 5  # also what `maild jobs list` shows
PROCESSOR_CHECK_SECONDS = 1.0


async def run_sweeps(app: App, health: Health, stopping: asyncio.Event, scheduler: Tracker) -> None:
    """Every sweep every few minutes, and each once right away (catching up on any missed while
    the daemon was down); each decides from the database what is due. A sweep that fails is
    tried again after a backoff of its own (``sweep:<job>`` in the health), the others go on."""
    jobs = {name: (health.track(f"sweep:{name}"), Backoff(*RESTART_SECONDS)) for name in JOBS}
    due = dict.fromkeys(JOBS, 0.0)
    while not stopping.is_set():
        for name, (tracker, backoff) in jobs.items():
            if stopping.is_set() or due[name] > time.monotonic():
                continue
            try:
                actions = await asyncio.to_thread(run_job, app.pipeline, name, datetime.now(timezone.utc))
            except Exception as exc:
                delay = backoff.next()
                log.error("sweep %s failed: %s; next try in %.1f s", name, describe(exc), delay)
                tracker.failed(exc)
                due[name] = time.monotonic() + delay
                continue
            backoff.reset()
            tracker.ok()
            due[name] = time.monotonic() + SWEEP_MINUTES * 60
            for action in actions:
                log.info("%s: %s", name, action)
        scheduler.ok()
        await pause(stopping, max(0.0, min(due.values()) - time.monotonic()))


async def tend_processor(processor: Processor, committed: asyncio.Event, stopping: asyncio.Event, health: Tracker) -> None:
    """Wake the processor child on every spool commit, and start it again when it died, also
    while no mail comes; count its restarts. Pauses grow while it keeps dying (meanwhile the
    child, once up, finds the spool's work by itself)."""
    backoff = Backoff(*RESTART_SECONDS)
    started = time.monotonic()
    while not stopping.is_set():
        code = processor.restart_if_dead()
        if code is not None:
            health.failed(f"spool processor exited (code {code})")
            health.restarted()
            started = time.monotonic()
            await pause(stopping, backoff.next())
            continue
        if time.monotonic() - started > RESTART_SECONDS[1]:
            backoff.reset()
        health.ok()
        await first_done(committed.wait(), stopping.wait(), timeout=PROCESSOR_CHECK_SECONDS)
        if committed.is_set():
            committed.clear()
            processor.wake()


async def start_web_form(app: App, accept: Accept, tracker: Tracker) -> tuple[Any, asyncio.Task[None]]:
    """The web form listener (``[web] listen``): bound before the start is reported done."""
    from maild.intake import web

    settings = app.settings
    queue = app.web_form_queue()
    page = web.FormPage(settings.templates_dir, settings.instance.name)
    form = web.build(
        accept=accept, page=page, to=queue.address, language=queue.language, hostname=settings.instance.hostname,
        secret=app.mailer.secret, max_body_bytes=settings.web.max_body_bytes,
        per_ip_per_hour=settings.web.per_ip_per_hour, per_address_per_hour=settings.web.per_address_per_hour,
        health=tracker,
    )
    started = await web.start(form, settings.web.listen, settings.web.forwarded_allow_ips)
    log.info("web form on http://%s/ (queue %s)", settings.web.listen, queue.id)
    return started


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
    health = Health(app.engine)
    await health.prune()
    supervisor = Supervisor(health, stopping)
    committer = GroupCommitter(app.engine, app.raw_store)
    committer.start()
    handler = IntakeHandler(committer.accept, settings.smtp.accept_domains, settings.smtp.max_recipients,
                            health.track("listener"))
    host, port = settings.smtp.host_port()
    metrics_server = None
    if settings.metrics.listen:
        from maild.metrics import serve as serve_metrics

        metrics_server = serve_metrics(app.engine, settings.metrics.listen)
    server = await start_listener(handler, settings.smtp, settings.instance.hostname)
    web = await start_web_form(app, committer.accept, health.track("web")) if settings.web.listen else None
    # Only now the child: a port in use must end the start-up with no process left behind.
    # (No await from here to the handler: a SIGHUP cannot fall between the two.)
    processor = Processor(settings, app.rules_text)
    processor.start()
    sender.hold = processor.intake_busy
    loop.add_signal_handler(signal.SIGHUP, reload_rules, app, processor)
    pollers = start_pollers(settings, committer.accept_many, app.engine, supervisor)  # one per [[imap]]
    tending = supervisor.spawn("processor", lambda tracker: tend_processor(processor, committer.committed, stopping, tracker))
    sending = supervisor.spawn("sender", lambda tracker: sender.run(stopping, tracker))
    sweeping = supervisor.spawn("scheduler", lambda tracker: run_sweeps(app, health, stopping, tracker))
    heartbeat = asyncio.create_task(health.beat(), name="heartbeat")
    log.info("maild listening on %s:%d (SMTP), database %s", host, port, app.engine.url.render_as_string())
    if ready:  # everything has started
        ready.set()
    sdnotify.notify(f"READY=1\nSTATUS=listening on {host}:{port}")
    watchdog = sdnotify.watchdog_seconds()
    feeding = asyncio.create_task(sdnotify.keep_watchdog_fed(watchdog), name="watchdog") if watchdog else None

    await stopping.wait()
    sdnotify.notify("STOPPING=1")
    log.info("stopping: no new connections; finishing messages in flight")
    server.close()
    if web is not None:
        from maild.intake.web import stop as stop_web

        await stop_web(*web)
    if metrics_server is not None:
        metrics_server.shutdown()
    for _ in range(int(DRAIN_SECONDS * 10)):
        if handler.in_flight == 0:
            break
        await asyncio.sleep(0.1)
    await stop_pollers(pollers, DRAIN_SECONDS)  # before the committer closes: they may be storing
    await committer.close()
    await sending  # finishes the mail in flight; the rest stays queued
    await sweeping  # finishes the sweep in progress
    await tending  # before the processor stops: nothing starts it again then
    code = await asyncio.get_running_loop().run_in_executor(None, processor.stop, DRAIN_SECONDS * 4)
    heartbeat.cancel()
    await health.close()
    log.info("stopped (processor exit code %s)", code)
    if feeding:
        feeding.cancel()


def run(app: App) -> None:
    app.prepare_database()
    asyncio.run(serve(app))
