"""The words of the report's table and page, in fi, sv and en (the mail's are in its template)."""

from __future__ import annotations

LABELS: dict[str, dict[str, str]] = {
    "fi": {
        "title": "Raportti", "period": "Ajanjakso", "as_of": "tilanne", "overall": "Kaikki jonot",
        "created": "Saapuneet", "resolved": "Ratkaistut", "backlog": "Avoinna lopussa",
        "first_response": "Ensivastaus, työtuntia", "resolution": "Ratkaisu, työtuntia", "median": "mediaani",
        "p90": "90 %", "sla_met": "Vasteaikatavoite saavutettu", "weeks": "Viikoittain", "week": "Viikko",
        "categories": "Yleisimmät aiheet", "rules": "Yleisimmät osuneet säännöt", "channels": "Kanavat",
        "staff": "Käsittelijät", "assigned": "Vastuulla", "answered": "Vastannut", "oldest": "Vanhimmat avoimet",
        "uncategorised": "ilman aihetta", "no_rule": "ei osunutta sääntöä", "hidden": "luottamuksellisia, ei listattu",
        "confidential": "luottamuksellinen", "queue": "Jono", "name": "Nimi", "count": "Määrä", "subject": "Aihe",
        "status": "Tila", "since": "Saapunut", "assignee": "Käsittelijä", "none": "–",
    },
    "sv": {
        "title": "Rapport", "period": "Period", "as_of": "läge", "overall": "Alla köer",
        "created": "Inkomna", "resolved": "Lösta", "backlog": "Öppna vid slutet",
        "first_response": "Första svar, arbetstimmar", "resolution": "Lösning, arbetstimmar", "median": "median",
        "p90": "90 %", "sla_met": "Svarstidsmål uppnått", "weeks": "Per vecka", "week": "Vecka",
        "categories": "Vanligaste ämnen", "rules": "Vanligaste träffade regler", "channels": "Kanaler",
        "staff": "Handläggare", "assigned": "Ansvarig", "answered": "Svarat", "oldest": "Äldsta öppna",
        "uncategorised": "utan ämne", "no_rule": "ingen regel träffade", "hidden": "konfidentiella, ej listade",
        "confidential": "konfidentiell", "queue": "Kö", "name": "Namn", "count": "Antal", "subject": "Ämne",
        "status": "Status", "since": "Inkom", "assignee": "Handläggare", "none": "–",
    },
    "en": {
        "title": "Report", "period": "Period", "as_of": "as of", "overall": "All queues",
        "created": "Created", "resolved": "Resolved", "backlog": "Open at the end",
        "first_response": "First response, business hours", "resolution": "Resolution, business hours",
        "median": "median", "p90": "p90", "sla_met": "SLA met", "weeks": "Per week", "week": "Week",
        "categories": "Most frequent categories", "rules": "Most frequent matched rules", "channels": "Channels",
        "staff": "Staff", "assigned": "Assigned", "answered": "Answered", "oldest": "Oldest open tickets",
        "uncategorised": "uncategorised", "no_rule": "no rule matched", "hidden": "confidential, not listed",
        "confidential": "confidential", "queue": "Queue", "name": "Name", "count": "Count", "subject": "Subject",
        "status": "Status", "since": "Created", "assignee": "Assignee", "none": "–",
    },
}


def labels(language: str) -> dict[str, str]:
    return LABELS.get(language, LABELS["en"])


def decimal(value: float | None, language: str) -> str:
    """A figure as the language writes it (a decimal comma in fi and sv); "–" for none."""
    if value is None:
        return "–"
    text = f"{value:g}"
    return text.replace(".", ",") if language in ("fi", "sv") else text


def percent(value: float | None, language: str) -> str:
    return "–" if value is None else f"{decimal(value, language)} %"
