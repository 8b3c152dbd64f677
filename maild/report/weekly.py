"""The Monday mail: each queue's leads get the queue's report of the week before (docs/coming.md#reports-and-privacy).

Due from Monday 08:00 in the instance's timezone (a public holiday too: the report is read
when the lead is back). The week is claimed once for all queues (``report:2027-W10``, a
counter row written in the same transaction as the mail, under the sweep's lock, as the
digest claims its day), so it goes out exactly once however many instances sweep and
however often they restart; a daemon that was down on Monday sends it when it next sweeps
that week.

The mail is text plus HTML (template ``report``). Its HTML carries the charts as inline
SVG, which Apple Mail, Thunderbird and most phone clients show; Gmail and Outlook drop
inline SVG, so every chart has its figures beside it as a plain HTML table: a reader there
loses the picture, never a number. (No PNG: it would need an image library and a
multipart/related part for a few bars.) For the full page, ``maild report --queue ID
--html FILE``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from maild.outbound.compose import Outgoing, new_message_id
from maild.outbound.notices import Mailer
from maild.report.build import make_report
from maild.report.figures import week_label
from maild.report.html import charts
from maild.report.labels import decimal, percent
from maild.rules.model import Queue
from maild.store import tickets as store
from maild.store.tables import Counter

if TYPE_CHECKING:
    from maild.schedule import Sweep

REPORT_HOUR = 8


def week_due(now: datetime, zone: Any) -> tuple[date, date]:
    """Monday and Sunday of the week whose report is due at ``now``: the one before the
    latest Monday 08:00 (local) at or before ``now``."""
    local = now.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    if local.replace(tzinfo=None) < datetime.combine(monday, time(REPORT_HOUR)):
        monday -= timedelta(days=7)
    return monday - timedelta(days=7), monday - timedelta(days=1)


def weekly_report(sweep: Sweep) -> list[str]:
    """Each queue's week report to its leads, once per week."""
    mailer, rules = sweep.pipeline.mailer, sweep.rules
    zone = sweep.calendar().zone
    start, end = week_due(sweep.now, zone)
    label = week_label(start)
    claim = f"report:{label}"
    if sweep.session.get(Counter, claim) is not None:
        return []  # sent already (by this or another instance)
    store.next_number(sweep.session, claim)
    actions = []
    for queue in rules.queues.values():
        if not queue.leads:
            continue
        report = make_report(sweep.session, rules, mailer.timezone, mailer.tag_prefix, start, end, sweep.now, queue.id)
        figures = report["queues"][queue.id]
        sweep.pipeline.queue_mail(sweep.session, None, "report", lambda q=queue, f=figures: [
            report_mail(mailer, q, lead, label, start, end, f, sweep.now) for lead in q.leads])
        actions.append(f"report {label} of {queue.id} to {', '.join(queue.leads)}: {figures['created']} created")
    return actions


def shown(figures: dict[str, Any], language: str) -> dict[str, str]:
    """The figures that are not plain counts, written as the language writes numbers."""
    return {
        "first_response_median": decimal(figures["first_response_hours"]["median"], language),
        "first_response_p90": decimal(figures["first_response_hours"]["p90"], language),
        "resolution_median": decimal(figures["resolution_hours"]["median"], language),
        "resolution_p90": decimal(figures["resolution_hours"]["p90"], language),
        "sla_met_percent": percent(figures["sla_met_percent"], language),
    }


def report_context(instance: str, queue: Queue, lead: str, week: str, start: date, end: date,
                   figures: dict[str, Any]) -> dict[str, Any]:
    """What template ``report`` gets (see ``outbound.templates``)."""
    return {"instance": instance, "queue": queue, "lead": lead, "week": week, "start": start, "end": end,
            "figures": figures, "shown": shown(figures, queue.language), "charts": charts(figures, queue.language)}


def report_mail(mailer: Mailer, queue: Queue, lead: str, week: str, start: date, end: date,
                figures: dict[str, Any], now: datetime) -> Outgoing:
    context = report_context(mailer.instance_name, queue, lead, week, start, end, figures)
    rendered = mailer.templates.render("report", queue.language, context)
    return Outgoing(
        from_name=queue.name, from_addr=queue.address, to=(lead,), subject=rendered.subject, text=rendered.text,
        html=rendered.html, message_id=new_message_id(mailer.hostname), reply_to=queue.address,
        auto="auto-generated", date=now,
    )
