"""The mail that maild writes: Jinja2 templates under ``templates/LANG/`` (docs/mail.md#templates).

File format
-----------
``templates/<lang>/<name>.txt`` names its own subject on its first line, then a blank
line, then the plain-text body::

    Subject: {{ ticket.tag }} Viestisi on vastaanotettu: {{ ticket.subject }}

    Hei {{ ticket.requester_name }}, ...

An optional ``templates/<lang>/<name>.html`` is the HTML alternative of the same mail;
it is autoescaped, the ``.txt`` files are not. Files whose names start with ``_`` are
partials for ``{% include %}``. Undefined variables are errors (``StrictUndefined``);
``trim_blocks`` and ``lstrip_blocks`` are on, so a ``{% if %}`` on its own line leaves
no blank line behind. The rendered subject goes through :func:`header_safe`, so nothing
taken from mail can add or split a header.

``templates/<lang>/_layout.html`` is the frame of every HTML mail: a mail's ``.html`` starts
with ``{% extends "<lang>/_layout.html" %}`` and fills the blocks ``content`` and ``automatic``
(it may also replace ``title``, ``greeting`` and ``signature``). The check follows
``extends`` and ``include``, so a layout or partial is checked with each mail that uses it.

A file that the directory has in none of the languages (a mail or layout added to maild after
``maild init`` wrote an instance's templates) is read from :data:`SHIPPED`; one it has in some
languages only is reported missing.

Templates are read on first use and then kept: a running daemon picks up edited files
by building a new :class:`Templates` (and calling :meth:`Templates.check` on it first).

Context
-------
Every template gets ``instance`` (the instance's name), ``language`` (``fi``/``sv``/
``en``, set by :meth:`Templates.render`), and, except ``digest``:

- ``queue``: ``id``, ``name``, ``address`` (a :class:`~maild.rules.model.Queue` will do);
- ``ticket``: ``number``, ``tag`` (``"[JP#12]"``), ``subject``, ``status``, ``priority``,
  ``category`` (or None), ``created_at`` (aware datetime), ``requester`` (address),
  ``requester_name`` (may be empty), ``assignee`` (address or None), ``confidential``.

Per template, besides those:

- ``ack``: ``sla`` (the priority's :class:`~maild.rules.model.BusinessDuration`, or None
  when the priority has no target), ``due`` (aware datetime of the expected first
  response, or None), ``member_text`` (the member's message; the shipped templates do
  not quote it, so a forged sender cannot use the acknowledgement to relay spam).
  Category ``eroaminen`` and ``jäsenhakemus`` get their own wording.
- ``staff_new``: ``member_text``, ``due`` (or None), ``other_open``: the requester's other
  open tickets, each ``tag``, ``subject``, ``status``, ``visible`` (False: a confidential
  ticket of another queue; only its tag is shown), ``not_recipients``, ``suggestions``: the
  canned answers the rules suggest, each ``name`` and ``title`` (for ``#answer NAME``).
- ``staff_followup``: ``sender`` (address), ``sender_name``, ``third_party`` (bool: not the
  requester, a CC or staff), ``member_text`` (the new message), ``not_recipients``.
- ``member`` (both): the requester in the member register, or None: ``member_number``,
  ``fields`` (``[(name, value)]`` of ``[members] show_fields``), ``linked_by`` (``address``
  or ``number``), ``conflict`` (another member's number that the mail named, or None).
- ``attachments`` (both): the files of the member's message, each ``id`` (for ``maild
  attachments get ID``), ``filename`` (cleaned to a plain file name), ``content_type``, ``size``
  and ``attached`` (False: over what is left of ``attach_max_bytes``, the limit in bytes, also
  in the context; docs/mail.md#attachments); at most ``notices.LISTED`` of them, and
  ``attachments_unlisted`` counts the rest.
- ``not_recipients`` (both): the addresses in the mail that are not recipients of the ticket
  (docs/mail.md#recipients: staff add one with ``#cc``), maild's own and the queue's staff left out.
- ``resolved``: ``lifecycle`` (:class:`~maild.rules.model.Lifecycle`; ``close_after_days``).
- ``reminder_staff``: ``reason`` (``"half_sla"`` or ``"breach"``), ``sla``, ``due``,
  ``waiting_since`` (aware datetime). Sent to the queue's staff, on breach to its leads;
  a confidential ticket's subject is left out.
- ``reminder_member``: ``waiting_since`` (when we asked the member), ``resolve_after_days``
  (days from this reminder until the ticket is resolved unless the member answers).
- ``command_errors``: ``writer`` (the staff member's address), ``errors``: what was wrong with
  their command lines, each as ``LINE: reason`` (the reason in English, as ``#`` commands are).
- ``files_not_relayed``: ``writer``, ``files`` (each ``id``, ``filename``, ``content_type``,
  ``size``: the files of their answer that did not go to the member) and ``attach_max_bytes``.
- ``nothing_relayed``: ``writer``. Both answer a staff member's mail and say that nothing went
  to the member; ``ticket.requester_name`` is empty.
- ``opening_refused`` (no ``ticket``): ``queue``, ``writer``, ``subject`` (of their mail) and
  ``errors``: why their ``#for`` mail opened no ticket (docs/mail.md#for), each in English.
- ``digest`` (no ``queue``/``ticket``): ``staff`` (the recipient's address), ``now``,
  ``items``: overdue first, then the recipient's own open tickets, then unassigned ones in
  their queues, oldest first, at most 25 per section (``schedule.DIGEST_SECTION_LIMIT``);
  each ``section`` (``"overdue"``/``"own"``/``"unassigned"``), ``tag``, ``subject``,
  ``queue`` (name), ``status``, ``priority``, ``age`` (timedelta), ``confidential``,
  ``visible`` (False: only the tag and the word "confidential" show). ``more``: per
  section, how many tickets ``items`` leaves out; ``total``: all of them, listed or not.
- ``report`` (the Monday mail to a queue's leads; ``maild.report.weekly``): ``queue``,
  ``lead`` (the recipient), ``week`` ("2027-W10"), ``start``/``end`` (dates), ``figures``
  (the queue's section of ``maild report --json``), ``shown`` (its hours and SLA per cent
  written for the language) and ``charts`` (inline SVG markup: ``weeks``, ``categories``,
  ``rules``, ``channels``).

:data:`SAMPLE_CONTEXTS` holds one example of each, and :data:`SAMPLE_VARIANTS` the
other branches worth rendering; :meth:`Templates.check` renders them all.

Filters
-------
``date`` (local time in the instance's zone: "ti 24.11.2026 klo 10.00", "tis 24.11.2026
kl. 10.00", "Tue 24 Nov 2026 at 10:00"), ``tag`` (12 -> "[JP#12]"), ``status`` and
``priority`` (localised names), ``filesize`` (bytes as "2,5 MB"), ``business_time`` (a BusinessDuration as "1 arkipäivä",
"4 arbetstimmar", "3 business days"), ``age`` (a timedelta as "3 päivää"), and
``header_safe``. The language-dependent ones use the template's ``language``.

Staff mail starts with a block between :data:`INTERNAL_START` and :data:`INTERNAL_END`
lines: ticket details and the mail commands (docs/mail.md#staff), for staff only, so that a
relay can cut it out of a quoted reply before anything goes to the member.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    BaseLoader,
    Environment,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
    pass_context,
    select_autoescape,
)
from jinja2.loaders import split_template_path
from jinja2.runtime import Context
from markupsafe import Markup

from maild.core.reply_text import INTERNAL_END, INTERNAL_START  # noqa: F401  (the marks live in core, which reads them)
from maild.rules.model import BusinessDuration, Lifecycle, Queue

NAMES = (
    "ack", "staff_new", "staff_followup", "resolved", "reminder_staff", "reminder_member", "digest",
    "command_errors", "nothing_relayed", "opening_refused", "files_not_relayed", "report",
)
LANGUAGES = ("fi", "sv", "en")
SUBJECT_LIMIT = 200

SHIPPED = (Path(__file__).resolve().parent.parent / "skeleton" / "templates").resolve()

_NAME = re.compile(r"[\w-]+")  # as rules.yaml's `ack: NAME`
_SUBJECT = "Subject:"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\s]+")  # \s covers U+2028/2029 and other breaks


@dataclass(frozen=True)
class Rendered:
    subject: str  # one line, header-safe
    text: str
    html: str | None


def header_safe(text: str, limit: int = SUBJECT_LIMIT) -> str:
    """``text`` as one line that cannot add or split a header.

    Line breaks, tabs and other control characters, in runs with the spaces around them,
    become one space; the result is stripped and cut to ``limit`` characters ("…" last).
    """
    line = _UNSAFE.sub(" ", text).strip()
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line


class Templates:
    """The templates of one directory, rendered with one timezone and tag prefix."""

    def __init__(
        self, directory: Path, *, timezone: str = "Europe/Helsinki", tag_prefix: str = "JP",
        shipped: Path | None = SHIPPED,
    ) -> None:
        self.directory = directory
        self._loader = _Loader(directory, shipped)
        self._html: dict[tuple[str, str], bool] = {}
        self.env = Environment(
            loader=self._loader,
            undefined=StrictUndefined,
            autoescape=select_autoescape(["html"], default_for_string=False),
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters.update(_filters(ZoneInfo(timezone), tag_prefix))

    def render(self, name: str, language: str, context: Mapping[str, Any]) -> Rendered:
        """The subject, text and (when the template has one) HTML of mail ``name``.

        Raises ``jinja2.TemplateNotFound`` when there is no ``LANG/NAME.txt`` and other
        ``jinja2.TemplateError``s for broken templates or missing context.
        """
        if language not in LANGUAGES or not _NAME.fullmatch(name):
            raise ValueError(f"no template {language}/{name}: expected a language of {LANGUAGES} and a plain name")
        values = {**context, "language": language}
        subject = self.env.get_template(f"{language}/{name}.txt#subject").render(values)
        text = self.env.get_template(f"{language}/{name}.txt#body").render(values)
        html = None
        if self._has_html(language, name):
            html = self.env.get_template(f"{language}/{name}.html").render(values)
        return Rendered(header_safe(subject), text, html)

    def _has_html(self, language: str, name: str) -> bool:
        """Whether mail ``name`` has an HTML alternative (looked up once, as templates are)."""
        key = (language, name)
        if key not in self._html:
            self._html[key] = self._loader.find(language, f"{name}.html") is not None
        return self._html[key]

    def check(self) -> list[str]:
        """Every problem as ``path:line: message``; empty when all templates render.

        Every file must exist in every language, and each template is rendered with its
        samples in each language. Names other than :data:`NAMES` are acknowledgements that
        a rule names (``ack: NAME``) and are rendered with the ``ack`` samples. A file that the
        directory has in no language is the shipped one (see :class:`_Loader`), checked too.
        """
        problems: dict[str, None] = {}  # ordered, without repeats
        for language, filename in self._missing():
            path = self.directory / language / filename
            problems[f"{path}:1: missing: every template exists in {', '.join(LANGUAGES)}"] = None
        for name in self._names():
            for language in LANGUAGES:
                problems.update(dict.fromkeys(self._problems(name, language)))
        return list(problems)

    # --- check, one template ---------------------------------------------------------------

    def _problems(self, name: str, language: str) -> list[str]:
        path = self._loader.find(language, f"{name}.txt")
        if path is None:
            return []  # reported as missing
        samples = _samples(name)
        found: list[str] = []
        for sample in samples:
            try:
                rendered = self.render(name, language, sample)
            except TemplateSyntaxError as exc:
                return [f"{exc.filename or path}:{exc.lineno}: {exc.message}"]
            except Exception as exc:  # noqa: BLE001 - any failure of a template is a finding
                found.append(f"{_where(exc, path)}: {_describe(exc)}")
                continue
            if not rendered.subject:
                found.append(f"{path}:1: the subject is empty")
        allowed = {key for sample in samples for key in sample} | {"language"}
        return found + list(self._undeclared(name, language, allowed))

    def _undeclared(self, name: str, language: str, allowed: set[str]) -> Iterator[str]:
        """Names used anywhere in the template and in what it includes or extends (a layout,
        a partial), also in branches the samples never take, that its context does not have."""
        parts = [f"{language}/{name}.txt#subject", f"{language}/{name}.txt#body"]
        if self._has_html(language, name):
            parts.append(f"{language}/{name}.html")
        seen: set[str] = set()
        while parts:
            part = parts.pop(0)
            if part in seen:
                continue
            seen.add(part)
            try:
                source, filename, _ = self._loader.get_source(self.env, part)
                tree = self.env.parse(source, part, filename)
            except (TemplateNotFound, TemplateSyntaxError):
                continue  # reported by rendering
            parts += [ref for ref in meta.find_referenced_templates(tree) if ref]
            unknown = meta.find_undeclared_variables(tree) - allowed - set(self.env.globals)
            lines: dict[str, int] = {}
            for node in tree.find_all(nodes.Name):
                if node.name in unknown:
                    lines.setdefault(node.name, node.lineno)
            for variable, line in sorted(lines.items(), key=lambda item: item[1]):
                yield f"{filename}:{line}: undefined: '{variable}' is undefined"

    # --- check, the directory ----------------------------------------------------------------

    def _files(self, language: str) -> set[str]:
        return _files(self.directory, language)

    def _missing(self) -> Iterator[tuple[str, str]]:
        """Files the directory has in some languages but not all, and mail of :data:`NAMES`
        that neither it nor the shipped templates have."""
        present = {language: self._files(language) for language in LANGUAGES}
        anywhere = set().union(*present.values())
        wanted = {f"{name}.txt" for name in NAMES} | anywhere
        for language in LANGUAGES:
            for filename in sorted(wanted - present[language]):
                if filename not in anywhere and self._loader.find(language, filename) is not None:
                    continue  # the shipped one
                yield language, filename

    def _names(self) -> list[str]:
        found = {
            filename.removesuffix(".txt")
            for language in LANGUAGES
            for filename in self._files(language)
            if filename.endswith(".txt") and not filename.startswith("_")
        }
        return [*NAMES, *sorted(found - set(NAMES))]


# --- loading -----------------------------------------------------------------------------------


def _files(directory: Path, language: str) -> set[str]:
    folder = directory / language
    if not folder.is_dir():
        return set()
    return {path.name for path in folder.iterdir() if path.suffix in (".txt", ".html") and path.is_file()}


class _Loader(BaseLoader):
    """Files under one directory; ``LANG/NAME.txt#subject`` and ``#body`` are the two parts of
    a text template, compiled apart so that a value can never move from body to subject.

    A file that the directory has in none of its languages comes from ``shipped`` (the
    templates maild ships): an instance made by an older ``maild init`` gets the mail and the
    layout added since, and a file it has in some languages only is still reported missing.
    """

    def __init__(self, directory: Path, shipped: Path | None) -> None:
        self.directory = directory
        self.shipped = shipped if shipped is not None and shipped.resolve() != directory.resolve() else None
        self._own: set[str] | None = None

    def find(self, language: str, filename: str) -> Path | None:
        """The file ``LANG/FILENAME`` is read from, or None when there is none."""
        if self._own is None:
            self._own = set().union(*(_files(self.directory, lang) for lang in LANGUAGES))
        own = self.directory / language / filename
        if filename in self._own or self.shipped is None:
            return own if own.is_file() else None
        shipped = self.shipped / language / filename
        return shipped if shipped.is_file() else None

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool] | None]:
        name, _, part = template.partition("#")
        pieces = split_template_path(name)
        path = self.find(*pieces) if len(pieces) == 2 else self.directory.joinpath(*pieces)
        try:
            if path is None:
                raise FileNotFoundError(name)
            source = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TemplateNotFound(template) from None
        except UnicodeDecodeError:
            raise TemplateSyntaxError("not UTF-8 text", 1, template, str(path)) from None
        if part:
            subject, body = _split(source, template, str(path))
            source = subject if part == "subject" else body
        return source, str(path), None


def _split(source: str, name: str, filename: str) -> tuple[str, str]:
    """The subject line's template and the body's, the body padded so its line numbers stay
    those of the file (a comment spanning the first two lines renders as nothing)."""
    first, _, rest = source.partition("\n")
    if not first.startswith(_SUBJECT):
        raise TemplateSyntaxError(f"the first line must be '{_SUBJECT} ...'", 1, name, filename)
    blank, _, body = rest.partition("\n")
    if blank.strip():
        raise TemplateSyntaxError(f"the {_SUBJECT} line must be followed by a blank line", 2, name, filename)
    return first.removeprefix(_SUBJECT).strip(), "{#\n\n#}" + body


# --- check helpers ------------------------------------------------------------------------------


def _samples(name: str) -> list[dict[str, Any]]:
    """The sample context of ``name`` and its variants (an acknowledgement's for other names)."""
    key = name if name in SAMPLE_CONTEXTS else "ack"
    base = SAMPLE_CONTEXTS[key]
    return [base, *({**base, **variant} for variant in SAMPLE_VARIANTS.get(key, ()))]


def _where(exc: BaseException, fallback: Path) -> str:
    """``path:line`` of the innermost template frame; Jinja rewrites tracebacks so that
    template code shows up with the template's file name and line."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename.endswith((".txt", ".html"))]
    if not frames:
        return f"{fallback}:1"
    return f"{frames[-1].filename}:{frames[-1].lineno}"


def _describe(exc: Exception) -> str:
    kind = "undefined" if isinstance(exc, UndefinedError) else type(exc).__name__
    return f"{kind}: {exc}"


# --- filters --------------------------------------------------------------------------------------

_WEEKDAYS = {
    "fi": ("ma", "ti", "ke", "to", "pe", "la", "su"),
    "sv": ("mån", "tis", "ons", "tors", "fre", "lör", "sön"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_STATUSES = {
    "fi": {"new": "uusi", "open": "avoin", "pending": "odottaa jäsentä", "resolved": "ratkaistu", "closed": "suljettu"},
    "sv": {"new": "ny", "open": "öppen", "pending": "väntar på medlemmen", "resolved": "löst", "closed": "stängd"},
    "en": {
        "new": "new",
        "open": "open",
        "pending": "waiting for the member",
        "resolved": "resolved",
        "closed": "closed",
    },
}
_PRIORITIES = {
    "fi": {"low": "matala", "normal": "normaali", "high": "korkea", "urgent": "kiireellinen"},
    "sv": {"low": "låg", "normal": "normal", "high": "hög", "urgent": "brådskande"},
    "en": {"low": "low", "normal": "normal", "high": "high", "urgent": "urgent"},
}
# language -> unit -> (one, many)
_BUSINESS_UNITS = {
    "fi": {"m": ("minuutti", "minuuttia"), "h": ("työtunti", "työtuntia"), "d": ("arkipäivä", "arkipäivää")},
    "sv": {"m": ("minut", "minuter"), "h": ("arbetstimme", "arbetstimmar"), "d": ("arbetsdag", "arbetsdagar")},
    "en": {
        "m": ("minute", "minutes"),
        "h": ("business hour", "business hours"),
        "d": ("business day", "business days"),
    },
}
_CALENDAR_UNITS = {
    "fi": {"d": ("päivä", "päivää"), "h": ("tunti", "tuntia"), "m": ("minuutti", "minuuttia")},
    "sv": {"d": ("dag", "dagar"), "h": ("timme", "timmar"), "m": ("minut", "minuter")},
    "en": {"d": ("day", "days"), "h": ("hour", "hours"), "m": ("minute", "minutes")},
}


def _count(amount: int, forms: tuple[str, str]) -> str:
    return f"{amount} {forms[0] if amount == 1 else forms[1]}"


def format_date(value: datetime, language: str, zone: ZoneInfo) -> str:
    """An aware datetime as the local date and time in the way ``language`` writes them."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {value!r}")
    if value.tzinfo is None:
        raise ValueError(f"expected an aware datetime, got {value.isoformat()}")
    local = value.astimezone(zone)
    weekday = _WEEKDAYS[language][local.weekday()]
    if language == "en":
        return f"{weekday} {local.day} {_MONTHS_EN[local.month - 1]} {local.year} at {local:%H:%M}"
    clock = "klo" if language == "fi" else "kl."
    return f"{weekday} {local.day}.{local.month}.{local.year} {clock} {local.hour}.{local:%M}"


_BYTES = {"fi": ("tavu", "tavua"), "sv": ("byte", "byte"), "en": ("byte", "bytes")}


def format_size(value: int, language: str) -> str:
    """A file's size the way mail clients show it: "512 bytes", "2,5 MB" (decimal comma in
    Finnish and Swedish); kB and MB of 1024."""
    if value < 1024:
        return _count(value, _BYTES[language])
    amount, unit = (value / 1024, "kB") if value < 1024 * 1024 else (value / (1024 * 1024), "MB")
    shown = f"{amount:.0f}" if amount >= 100 or amount == int(amount) else f"{amount:.1f}"
    return f"{shown.replace('.', ',') if language != 'en' else shown} {unit}"


def format_age(value: timedelta, language: str) -> str:
    """A calendar span in its largest whole unit: "3 päivää", "1 timme", "20 minutes"."""
    units = _CALENDAR_UNITS[language]
    minutes = max(int(value.total_seconds() // 60), 0)
    if minutes >= 24 * 60:
        return _count(minutes // (24 * 60), units["d"])
    if minutes >= 60:
        return _count(minutes // 60, units["h"])
    return _count(minutes, units["m"])


def _filters(zone: ZoneInfo, tag_prefix: str) -> dict[str, Callable[..., str]]:
    def language_of(context: Context, language: str | None) -> str:
        return language or context["language"]

    @pass_context
    def date(context: Context, value: datetime, language: str | None = None) -> str:
        return format_date(value, language_of(context, language), zone)

    @pass_context
    def age(context: Context, value: timedelta, language: str | None = None) -> str:
        return format_age(value, language_of(context, language))

    @pass_context
    def filesize(context: Context, value: int, language: str | None = None) -> str:
        return format_size(value, language_of(context, language))

    @pass_context
    def business_time(context: Context, value: BusinessDuration, language: str | None = None) -> str:
        return _count(value.amount, _BUSINESS_UNITS[language_of(context, language)][value.unit])

    @pass_context
    def status(context: Context, code: str, language: str | None = None) -> str:
        return _STATUSES[language_of(context, language)].get(code, code)

    @pass_context
    def priority(context: Context, code: str, language: str | None = None) -> str:
        return _PRIORITIES[language_of(context, language)].get(code, code)

    def tag(number: int) -> str:
        return f"[{tag_prefix}#{number}]"

    return {
        "date": date,
        "age": age,
        "business_time": business_time,
        "filesize": filesize,
        "status": status,
        "priority": priority,
        "tag": tag,
        "header_safe": header_safe,
    }


# --- samples: the documented context of each template ----------------------------------------------

_QUEUE = Queue(
    id="jasenasiat",
    name="Jäsenasiat",
    address="jasenpalvelu@liitto.fi",
    staff=("maija.virtanen@liitto.fi", "pekka.korhonen@liitto.fi"),
    leads=("anna.nieminen@liitto.fi",),
    language="fi",
    default=True,
    confidential=False,
)
_TICKET: dict[str, Any] = {
    "number": 12,
    "tag": "[JP#12]",
    "subject": "Eroaminen liitosta",
    "status": "new",
    "priority": "high",
    "category": "eroaminen",
    "created_at": datetime(2026, 11, 23, 9, 12, tzinfo=UTC),  # Mon 23.11.2026 11.12 in Helsinki
    "requester": "matti.meikalainen@example.fi",
    "requester_name": "Matti Meikäläinen",
    "assignee": "maija.virtanen@liitto.fi",
    "confidential": False,
}
_COMMON: dict[str, Any] = {"instance": "Jäsenpalvelu", "queue": _QUEUE, "ticket": _TICKET}
_ONE_DAY = BusinessDuration(1, "d", timedelta(hours=8))
_DUE = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # Tue 24.11.2026 10.00 in Helsinki
_MEMBER = {  # member register (issue 16): core.members.template_member
    "member_number": "123456",
    "fields": [("Osasto", "Tampereen osasto"), ("maksettu", "ei"), ("Liittynyt", "1.3.2015")],
    "linked_by": "address",
    "conflict": None,
}
_ATTACHMENTS = [
    {"id": 31, "filename": "eroilmoitus.pdf", "content_type": "application/pdf", "size": 245760, "attached": True},
    {"id": 32, "filename": "palkkatodistukset.zip", "content_type": "application/zip", "size": 26214400,
     "attached": False},
]
_MEMBER_TEXT = "Hei,\n\nhaluan erota liitosta tämän kuun lopussa.\n\nTerveisin\nMatti Meikäläinen\n"

SAMPLE_CONTEXTS: dict[str, dict[str, Any]] = {
    "ack": {**_COMMON, "sla": _ONE_DAY, "due": _DUE, "member_text": _MEMBER_TEXT},
    "staff_new": {
        **_COMMON,
        "member_text": _MEMBER_TEXT,
        "due": _DUE,
        "other_open": [
            {"tag": "[JP#9]", "subject": "Laskun eräpäivä", "status": "pending", "visible": True},
            {"tag": "[JP#10]", "subject": "Irtisanominen", "status": "open", "visible": False},
        ],
        "not_recipients": ["puoliso@example.fi"],
        "suggestions": [{"name": "jasenmaksu", "title": "Jäsenmaksu: suuruus, maksutavat ja verovähennys"}],
        "member": _MEMBER,
        "attachments": [],
        "attachments_unlisted": 0,
        "attach_max_bytes": 10485760,
    },
    "staff_followup": {
        **_COMMON,
        "ticket": {**_TICKET, "status": "open"},
        "sender": "matti.meikalainen@example.fi",
        "sender_name": "Matti Meikäläinen",
        "third_party": False,
        "member_text": "Vielä yksi asia: pitääkö minun erota myös kassasta erikseen?\n",
        "not_recipients": [],
        "member": _MEMBER,
        "attachments": _ATTACHMENTS,
        "attachments_unlisted": 0,
        "attach_max_bytes": 10485760,
    },
    "resolved": {**_COMMON, "ticket": {**_TICKET, "status": "resolved"}, "lifecycle": Lifecycle()},
    "reminder_staff": {
        **_COMMON,
        "reason": "half_sla",
        "sla": _ONE_DAY,
        "due": _DUE,
        "waiting_since": datetime(2026, 11, 23, 9, 12, tzinfo=UTC),
    },
    "reminder_member": {
        **_COMMON,
        "ticket": {**_TICKET, "status": "pending"},
        "waiting_since": datetime(2026, 11, 25, 12, 30, tzinfo=UTC),
        "resolve_after_days": 9,
    },
    "command_errors": {
        **_COMMON,
        "ticket": {**_TICKET, "status": "open"},
        "writer": "maija.virtanen@liitto.fi",
        "errors": [
            "#priority kiire: priority must be one of low, normal, high, urgent",
            "#assign pekka@example.fi: pekka@example.fi is not staff of this queue",
        ],
    },
    "nothing_relayed": {**_COMMON, "ticket": {**_TICKET, "status": "open"}, "writer": "maija.virtanen@liitto.fi"},
    "opening_refused": {
        "instance": "Jäsenpalvelu",
        "queue": _QUEUE,
        "writer": "maija.virtanen@liitto.fi",
        "subject": "Puhelu: jäsenmaksu",
        "errors": ["#for: not proven to be from maija.virtanen@liitto.fi: send it to your own address for opening "
                   "tickets in queue jasenasiat", "#for matti@: 'matti@' is not one email address"],
    },
    "files_not_relayed": {**_COMMON, "ticket": {**_TICKET, "status": "pending"}, "writer": "maija.virtanen@liitto.fi",
                          "files": [{**_ATTACHMENTS[1], "attached": False}], "attach_max_bytes": 10485760},
    "digest": {
        "instance": "Jäsenpalvelu",
        "staff": "maija.virtanen@liitto.fi",
        "now": datetime(2026, 11, 26, 5, 0, tzinfo=UTC),
        "items": [
            {
                "section": "overdue",
                "tag": "[JP#7]",
                "subject": "Jäsenmaksun palautus",
                "queue": "Jäsenasiat",
                "status": "open",
                "priority": "high",
                "age": timedelta(days=4, hours=3),
                "confidential": False,
                "visible": True,
            },
            {
                "section": "own",
                "tag": "[JP#12]",
                "subject": "Eroaminen liitosta",
                "queue": "Jäsenasiat",
                "status": "pending",
                "priority": "normal",
                "age": timedelta(hours=5),
                "confidential": False,
                "visible": True,
            },
            {
                "section": "own",
                "tag": "[JP#13]",
                "subject": "Työtodistus",
                "queue": "Lakineuvonta",
                "status": "open",
                "priority": "normal",
                "age": timedelta(minutes=40),
                "confidential": True,
                "visible": True,
            },
            {
                "section": "unassigned",
                "tag": "[JP#14]",
                "subject": "Lomautus",
                "queue": "Lakineuvonta",
                "status": "new",
                "priority": "urgent",
                "age": timedelta(days=1),
                "confidential": True,
                "visible": False,
            },
        ],
        "more": {"overdue": 0, "own": 0, "unassigned": 0},
        "total": 4,
    },
}

_FIGURES: dict[str, Any] = {  # one queue's section of `maild report --json`
    "created": 3, "resolved": 2, "backlog": 1,
    "first_response_hours": {"median": 2.0, "p90": 5.2, "count": 3},
    "resolution_hours": {"median": 7.0, "p90": 9.4, "count": 2},
    "sla_met_percent": 66.7, "sla": {"met": 2, "missed": 1, "pending": 0},
    "staff": {"maija.virtanen@liitto.fi": {"assigned": 2, "answered": 2}},
    "categories": {"eroaminen": 2}, "uncategorised": 1, "channels": {"smtp": 3},
    "rules": {"Eroamiset kiireellisiksi": 2}, "no_rule": 1,
    "weeks": {"2026-W47": {"created": 3, "resolved": 2}},
    "oldest_open": [{"number": 12, "tag": "[JP#12]", "subject": "Eroaminen liitosta", "queue": "jasenasiat",
                     "status": "open", "priority": "high", "assignee": None, "created_at": "2026-11-23T09:12:00+00:00"}],
    "hidden": 0, "name": "Jäsenasiat", "confidential": False,
}
_SVG = Markup('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>')
SAMPLE_CONTEXTS["report"] = {
    "instance": "Jäsenpalvelu", "queue": _QUEUE, "lead": "anna.nieminen@liitto.fi", "week": "2026-W47",
    "start": date(2026, 11, 16), "end": date(2026, 11, 22), "figures": _FIGURES,
    "shown": {"first_response_median": "2", "first_response_p90": "5,2", "resolution_median": "7",
              "resolution_p90": "9,4", "sla_met_percent": "66,7 %"},
    "charts": {"weeks": _SVG, "categories": _SVG, "rules": _SVG, "channels": _SVG},
}

# Overrides of SAMPLE_CONTEXTS[name] that take the templates' other branches.
SAMPLE_VARIANTS: dict[str, tuple[dict[str, Any], ...]] = {
    "ack": (
        {"ticket": {**_TICKET, "category": "jäsenhakemus", "subject": "Jäsenhakemus"}},
        {"ticket": {**_TICKET, "category": None, "requester_name": ""}, "sla": None, "due": None},
    ),
    "staff_new": (
        {
            "ticket": {**_TICKET, "confidential": True, "assignee": None, "category": None},
            "due": None,
            "other_open": [],
            "not_recipients": ["puoliso@example.fi", "avustaja@example.fi"],
            "member": None,
        },
        {"not_recipients": [], "member": {**_MEMBER, "linked_by": "number", "fields": []},
         "attachments": _ATTACHMENTS},
        {"member": {**_MEMBER, "conflict": "654321"}, "attachments": _ATTACHMENTS[:1]},
        {"attachments": _ATTACHMENTS, "attachments_unlisted": 2900},
    ),
    "staff_followup": (
        {"ticket": {**_TICKET, "confidential": True, "assignee": None}, "third_party": True, "sender_name": "",
         "not_recipients": ["tuntematon@example.com"], "member": None},
        {"not_recipients": ["puoliso@example.fi"], "member": {**_MEMBER, "linked_by": "number", "conflict": "654321"},
         "attachments": []},
    ),
    "resolved": ({"ticket": {**_TICKET, "requester_name": ""}},),
    "reminder_staff": (
        {"reason": "breach"},
        {"reason": "breach", "ticket": {**_TICKET, "confidential": True, "assignee": None}},
    ),
    "reminder_member": ({"ticket": {**_TICKET, "requester_name": "", "subject": ""}},),
    "report": (
        {"figures": {**_FIGURES, "categories": {}, "rules": {}, "staff": {}, "oldest_open": []}},
    ),
    "digest": (
        {"items": [], "total": 0},
        {"more": {"overdue": 0, "own": 12, "unassigned": 3}, "total": 19},
    ),
}
