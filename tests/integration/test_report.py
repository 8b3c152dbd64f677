"""`maild report` and the Monday mail on a known history, every figure worked out by hand.

Three weeks in Helsinki, Mon 23.3. to Sun 12.4.2026 (ISO weeks W13, W14, W15), business
hours 08-16 Mon-Fri with Finnish holidays: DST starts Sun 29.3. at 03:00 (EET -> EEST),
Good Friday 3.4. and Easter Monday 6.4. are holidays. SLA: urgent 4h, high 1d, normal 3d,
low 5d. Tickets come in as real mail through the spool and the pipeline; the clock is faked
afterwards, as in test_fortnight: the times are set on the rows, and status changes go
through ``Pipeline.set_status`` at their time (it writes the ``status`` events).

| ticket | queue | prio | created (local) | answered | resolved | notes |
| T0 Vanha asia | jasen | normal | Sun 22.3. 23:50 | | | before the period |
| T1 Eroaminen liitosta | jasen | high | Mon 23.3. 09:00 | Mon 11:00 (2 h, maija) | Tue 24.3. 10:00 (7 + 2 = 9 h) | |
| T2 Laskun eräpäivä | jasen | normal | Thu 2.4. 15:00 | Tue 7.4. 09:00 (1 + 1 = 2 h across Easter, pekka) | Wed 8.4. 12:00 (1 + 8 + 4 = 13 h) | |
| T3 Kysymys | jasen | normal | Mon 30.3. 00:30 EEST (Sun 21:30 UTC: W14 locally) | - | - | due Thu 2.4. 08:00: missed; via pipe |
| T4 Eroaminen kassasta | jasen | high | Sun 29.3. 02:30 EET (before the jump) | Mon 30.3. 08:30 (0.5 h, maija) | - | pending |
| T5 Irtisanominen | laki (confidential) | normal | Wed 8.4. 10:00 | Thu 9.4. 08:00 (6 h, juristi) | Thu 15:00 (6 + 7 = 13 h) | via imap |
| T6 Lasku väärin | jasen | urgent | Thu 9.4. 15:00 | Mon 13.4. 09:00, after the end | - | due Fri 10.4. 11:00: missed |
| T7 Jäsenmaksu | jasen | low | Fri 10.4. 09:00 | Fri 10:00 (1 h, maija) | Tue 14.4., after the end | |
| T8 Lomautus | laki (confidential) | normal | Thu 9.4. 10:00 | - | - | 14 h of 24 by the end: pending |
| T9 Myöhässä | jasen | normal | Mon 13.4. 00:10 EEST (Sun 21:10 UTC) | | | after the period |
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.report.build import make_report
from maild.schedule import run_job
from maild.store import db
from maild.store import tickets as store
from maild.store.tables import Outbox, Ticket
from tests.conftest import MakeInstance, run_maild
from tests.mailgen import mail

HKI = ZoneInfo("Europe/Helsinki")
RULES = """\
queues:
  jasenasiat:
    name: Jäsenasiat
    address: jasenpalvelu@liitto.fi
    staff: [maija@liitto.fi, pekka@liitto.fi]
    leads: [johtaja@liitto.fi]
    language: fi
    default: true
  lakineuvonta:
    name: Lakineuvonta
    address: lakineuvonta@liitto.fi
    staff: [juristi@liitto.fi]
    leads: [lakijohtaja@liitto.fi]
    language: sv
    confidential: true
sla: {urgent: 4h, high: 1d, normal: 3d, low: 5d}
business_hours: {days: [mon, tue, wed, thu, fri], hours: "08:00-16:00", holidays: FI}
rules:
  - name: Eroamiset
    if: {subject: {contains: eroaminen}}
    then: {priority: high, category: eroaminen}
  - name: Laskut
    if: {subject: {contains: lasku}}
    then: {category: laskutus}
"""
LAKI = "lakineuvonta@liitto.fi"
# key: (subject, to, channel, priority, assignee, created, [(when, what, who)])
HISTORY = {
    "T0": ("Vanha asia", None, "smtp", "normal", None, "2026-03-22T23:50", []),
    "T1": ("Eroaminen liitosta", None, "smtp", "high", "maija@liitto.fi", "2026-03-23T09:00",
           [("2026-03-23T11:00", "answer", "maija@liitto.fi"), ("2026-03-24T10:00", "resolve", "maija@liitto.fi")]),
    "T2": ("Laskun eräpäivä", None, "smtp", "normal", "pekka@liitto.fi", "2026-04-02T15:00",
           [("2026-04-07T09:00", "answer", "pekka@liitto.fi"), ("2026-04-08T12:00", "resolve", "pekka@liitto.fi")]),
    "T3": ("Kysymys", None, "pipe", "normal", None, "2026-03-30T00:30", []),
    "T4": ("Eroaminen kassasta", None, "smtp", "high", "maija@liitto.fi", "2026-03-29T02:30",
           [("2026-03-30T08:30", "answer", "maija@liitto.fi")]),
    "T5": ("Irtisanominen", LAKI, "imap", "normal", "juristi@liitto.fi", "2026-04-08T10:00",
           [("2026-04-09T08:00", "answer", "juristi@liitto.fi"), ("2026-04-09T15:00", "resolve", "juristi@liitto.fi")]),
    "T6": ("Lasku väärin", None, "smtp", "urgent", "pekka@liitto.fi", "2026-04-09T15:00",
           [("2026-04-13T09:00", "answer", "pekka@liitto.fi")]),
    "T7": ("Jäsenmaksu", None, "smtp", "low", "maija@liitto.fi", "2026-04-10T09:00",
           [("2026-04-10T10:00", "answer", "maija@liitto.fi"), ("2026-04-14T09:00", "resolve", "maija@liitto.fi")]),
    "T8": ("Lomautus", LAKI, "smtp", "normal", None, "2026-04-09T10:00", []),
    "T9": ("Myöhässä", None, "smtp", "normal", None, "2026-04-13T00:10", []),
}


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HKI)


@pytest.fixture
def history(make_instance: MakeInstance, db_url: str) -> tuple[Path, App, dict[str, int]]:
    config = make_instance(db_url, rules=RULES)
    db.upgrade(load_settings(str(config)).database_url)
    app = App(load_settings(str(config)))
    numbers: dict[str, int] = {}
    for key, (subject, to, channel, priority, assignee, created, life) in HISTORY.items():
        raw = mail(subject=subject, sender=f"{key.lower()}@example.fi", to=to or "jasenpalvelu@liitto.fi",
                   message_id=f"<{key}@example.fi>")
        envelope = Envelope(channel, None if channel != "smtp" else f"{key.lower()}@example.fi", (to or "jasenpalvelu@liitto.fi",))
        result = app.pipeline.process(spool_sync(app.engine, app.raw_store, raw, envelope))
        numbers[key] = int(result.split(":")[1])
        with Session(app.engine) as session:
            ticket = session.exec(select(Ticket).where(Ticket.number == numbers[key])).one()
            ticket.priority, ticket.assignee = priority, assignee
            ticket.created_at = ticket.updated_at = ticket.status_changed_at = local(created)
            for when, what, who in life:
                if what == "answer":  # what Pipeline._relay records, at its time
                    ticket.first_response_at = ticket.first_response_at or local(when)
                    store.add_event(session, ticket, "relayed", actor=who, at=local(when), to=[ticket.requester])
                    app.pipeline.set_status(session, ticket, "staff_reply", who, local(when))
                else:
                    app.pipeline.set_status(session, ticket, what, who, local(when))
            session.commit()
    return config, app, numbers


def report(app: App, start: str, end: str, now: str, queue: str | None = None) -> dict:  # type: ignore[type-arg]
    from datetime import date

    with Session(app.engine) as session:
        return make_report(session, app.rules, "Europe/Helsinki", "JP", date.fromisoformat(start),
                           date.fromisoformat(end), local(now), queue)


def test_the_figures_of_three_weeks_across_dst_and_easter(history: tuple[Path, App, dict[str, int]]) -> None:
    _, app, numbers = history
    document = report(app, "2026-03-23", "2026-04-12", "2026-04-20T12:00")
    overall, jasen, laki = document["overall"], document["queues"]["jasenasiat"], document["queues"]["lakineuvonta"]

    assert (overall["created"], overall["resolved"], overall["backlog"]) == (8, 3, 5)
    # first responses 2, 2, 0.5, 6, 1 h (T6's came after the end); resolutions 9, 13, 13 h
    assert overall["first_response_hours"] == {"median": 2.0, "p90": 4.4, "count": 5}
    assert overall["resolution_hours"] == {"median": 13.0, "p90": 13.0, "count": 3}
    # met T1 T2 T4 T5 T7, missed T3 T6, pending T8
    assert overall["sla"] == {"met": 5, "missed": 2, "pending": 1} and overall["sla_met_percent"] == 71.4
    assert overall["weeks"] == {"2026-W13": {"created": 2, "resolved": 1}, "2026-W14": {"created": 2, "resolved": 0},
                                "2026-W15": {"created": 4, "resolved": 2}}
    assert overall["staff"] == {"juristi@liitto.fi": {"assigned": 1, "answered": 1},
                                "maija@liitto.fi": {"assigned": 3, "answered": 3},
                                "pekka@liitto.fi": {"assigned": 2, "answered": 1}}
    assert overall["categories"] == {"eroaminen": 2, "laskutus": 2} and overall["uncategorised"] == 4
    assert overall["rules"] == {"Eroamiset": 2, "Laskut": 2} and overall["no_rule"] == 4
    assert overall["channels"] == {"smtp": 6, "imap": 1, "pipe": 1}
    # the backlog, oldest first; the confidential T8 only counted
    assert [i["tag"] for i in overall["oldest_open"]] == [f"[JP#{numbers[k]}]" for k in ("T4", "T3", "T6", "T7")]
    assert [i["status"] for i in overall["oldest_open"]] == ["pending", "new", "new", "pending"]  # as of the end
    assert overall["hidden"] == 1

    assert (jasen["created"], jasen["resolved"], jasen["backlog"]) == (6, 2, 4)
    assert jasen["first_response_hours"] == {"median": 1.5, "p90": 2.0, "count": 4}  # 0.5 1 2 2
    assert jasen["resolution_hours"] == {"median": 11.0, "p90": 12.6, "count": 2}  # 9 13
    assert jasen["sla_met_percent"] == 66.7
    assert jasen["staff"] == {"maija@liitto.fi": {"assigned": 3, "answered": 3},
                              "pekka@liitto.fi": {"assigned": 2, "answered": 1}}
    assert (laki["created"], laki["resolved"], laki["backlog"], laki["sla_met_percent"]) == (2, 1, 1, 100.0)
    assert laki["first_response_hours"] == {"median": 6.0, "p90": 6.0, "count": 1}
    assert laki["oldest_open"] == [] and laki["hidden"] == 1 and laki["confidential"] is True
    assert "Lomautus" not in json.dumps(document, ensure_ascii=False)

    own = report(app, "2026-03-23", "2026-04-12", "2026-04-20T12:00", queue="lakineuvonta")
    assert list(own["queues"]) == ["lakineuvonta"] and own["overall"]["created"] == 2
    assert [(i["tag"], i["subject"]) for i in own["queues"]["lakineuvonta"]["oldest_open"]] == [
        (f"[JP#{numbers['T8']}]", "Lomautus")]


def test_a_past_week_is_as_it_was_at_its_end(history: tuple[Path, App, dict[str, int]]) -> None:
    """W13 (23.-29.3.): T1 resolved; T4 created on its Sunday, answered only on Monday."""
    _, app, _ = history
    week = report(app, "2026-03-23", "2026-03-29", "2026-04-20T12:00")["overall"]
    assert (week["created"], week["resolved"], week["backlog"]) == (2, 1, 1)
    assert week["first_response_hours"]["count"] == 1 and week["sla"] == {"met": 1, "missed": 0, "pending": 1}
    # the same period while it is still running (now = Sun 29.3. 12:00): T4 is not yet created
    running = report(app, "2026-03-23", "2026-03-29", "2026-03-29T01:00")["overall"]
    assert (running["created"], running["resolved"]) == (1, 1)


def test_an_empty_period_is_zeros(history: tuple[Path, App, dict[str, int]]) -> None:
    _, app, _ = history
    part = report(app, "2025-01-01", "2025-01-07", "2026-04-20T12:00")["overall"]
    assert (part["created"], part["resolved"], part["backlog"], part["sla_met_percent"]) == (0, 0, 0, None)
    assert part["weeks"] == {"2025-W01": {"created": 0, "resolved": 0}, "2025-W02": {"created": 0, "resolved": 0}}


def report_mails(app: App) -> list[email.message.EmailMessage]:
    with Session(app.engine) as session:
        rows = session.exec(select(Outbox).where(Outbox.kind == "report").order_by(col(Outbox.id))).all()
    return [email.message_from_bytes(row.raw, policy=email.policy.default) for row in rows]  # type: ignore[misc]


def test_the_monday_mail_goes_once_a_week_to_each_queues_leads(history: tuple[Path, App, dict[str, int]]) -> None:
    config, app, numbers = history
    sent = run_job(app.pipeline, "weekly_report", local("2026-03-30T07:59"))  # W12's was due since 23.3. 08:00
    assert [line.split(":")[0] for line in sent] == ["report 2026-W12 of jasenasiat to johtaja@liitto.fi",
                                                     "report 2026-W12 of lakineuvonta to lakijohtaja@liitto.fi"]
    assert run_job(app.pipeline, "weekly_report", local("2026-03-30T07:59")) == []
    assert len(run_job(app.pipeline, "weekly_report", local("2026-03-30T08:00"))) == 2  # W13
    assert run_job(app.pipeline, "weekly_report", local("2026-03-30T08:05"), dry_run=False) == []
    app.engine.dispose()
    app = App(load_settings(str(config)))  # a restart sends nothing twice
    assert run_job(app.pipeline, "weekly_report", local("2026-04-02T09:00")) == []
    assert run_job(app.pipeline, "weekly_report", local("2026-04-06T09:00"), dry_run=True) != []  # Easter Monday
    assert len(run_job(app.pipeline, "weekly_report", local("2026-04-13T08:00"))) == 2  # 6.4. was missed: W15 now
    assert run_job(app.pipeline, "weekly_report", local("2026-04-13T08:00")) == []

    mails = report_mails(app)
    assert [(m["To"], m["Subject"].strip()) for m in mails] == [
        ("johtaja@liitto.fi", "Jäsenpalvelu: Jäsenasiat, viikkoraportti 2026-W12"),
        ("lakijohtaja@liitto.fi", "Jäsenpalvelu: Lakineuvonta, veckorapport 2026-W12"),
        ("johtaja@liitto.fi", "Jäsenpalvelu: Jäsenasiat, viikkoraportti 2026-W13"),
        ("lakijohtaja@liitto.fi", "Jäsenpalvelu: Lakineuvonta, veckorapport 2026-W13"),
        ("johtaja@liitto.fi", "Jäsenpalvelu: Jäsenasiat, viikkoraportti 2026-W15"),
        ("lakijohtaja@liitto.fi", "Jäsenpalvelu: Lakineuvonta, veckorapport 2026-W15"),
    ]
    w12, w13, w15_jasen, w15_laki = mails[0], mails[2], mails[4], mails[5]
    assert "Saapuneet:                    1" in w12.get_body(("plain",)).get_content()  # T0
    # W13 as it was at its end (Sun 29.3. 24:00): T1 resolved, T4 not yet answered
    text = w13.get_body(("plain",)).get_content()
    assert "Saapuneet:                    2" in text and "Ratkaistut:                   1" in text
    assert "Ensivastaus, työtuntia:       mediaani 2, 90 % 2" in text
    assert f"[JP#{numbers['T4']}] Eroaminen kassasta (odottaa jäsentä)" not in text
    assert f"[JP#{numbers['T4']}] Eroaminen kassasta (uusi)" in text
    assert w13["Auto-Submitted"] == "auto-generated"
    # W15: the confidential queue's subjects go to its own lead only
    laki_text = w15_laki.get_body(("plain",)).get_content()
    assert f"[JP#{numbers['T8']}] Lomautus" in laki_text and "Ensivastaus" not in laki_text
    assert "Första svar, arbetstimmar:    median 6, 90 % 6" in laki_text
    assert "Lomautus" not in w15_jasen.as_string() and "Irtisanominen" not in w15_jasen.as_string()
    html = w15_jasen.get_body(("html",)).get_content()
    assert html.count("<svg") == 3 and "<script" not in html  # weeks, categories, rules; no channels chart
    assert "<td>eroaminen</td>" not in html and "<td>laskutus</td>" in html  # the chart's figures as a table


def test_the_command_line(history: tuple[Path, App, dict[str, int]], tmp_path: Path) -> None:
    config, _, _ = history
    done = run_maild("report", "--config", str(config), "--from", "2026-03-23", "--to", "2026-04-12", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["overall"]["created"] == 8 and set(document["queues"]) == {"jasenasiat", "lakineuvonta"}
    table = run_maild("report", "--config", str(config), "--from", "2026-03-23", "--to", "2026-04-12")
    assert table.returncode == 0 and "Saapuneet" in table.stdout.decode() and "Lomautus" not in table.stdout.decode()
    own = run_maild("report", "--config", str(config), "--from", "2026-03-23", "--to", "2026-04-12", "--queue", "lakineuvonta")
    assert "Lomautus" in own.stdout.decode()
    for args, message in [(("--queue", "nope"), "no queue 'nope'"), (("--from", "1.4.2026"), "not a date"),
                          (("--from", "2026-04-02", "--to", "2026-04-01"), "is after"),
                          (("--json", "--html", str(tmp_path / "x.html")), "choose one")]:
        wrong = run_maild("report", "--config", str(config), *args)
        assert wrong.returncode != 0 and message in wrong.stderr.decode() and b"Traceback" not in wrong.stderr, args


def test_the_html_page_renders_in_a_real_browser(history: tuple[Path, App, dict[str, int]], tmp_path: Path) -> None:
    config, _, _ = history
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    page = tmp_path / "raportti.html"
    done = run_maild("report", "--config", str(config), "--from", "2026-03-23", "--to", "2026-04-12", "--html", str(page))
    assert done.returncode == 0, done.stderr
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text and "Lomautus" not in text
    chrome = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "phone.png"
    subprocess.run([*chrome, f"--screenshot={shot}", "--window-size=390,844", page.as_uri()],
                   capture_output=True, timeout=90, check=True)
    print(f"screenshot: {shot}")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000  # a blank page compresses to ~2 kB
    dom = subprocess.run([*chrome, "--dump-dom", page.as_uri()], capture_output=True, timeout=90, check=True).stdout.decode()
    assert dom.count("<svg") == 12 and "<rect" in dom  # 4 charts each: overall and both queues
    assert "Saapuneet" in dom and "Kaikki jonot" in dom
