"""The shipped templates and their renderer: conventions, `maild check` findings, safety."""

from __future__ import annotations

import shutil
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import pytest

from maild.outbound.templates import (
    INTERNAL_END,
    INTERNAL_START,
    LANGUAGES,
    NAMES,
    SAMPLE_CONTEXTS,
    Rendered,
    Templates,
    format_age,
    format_date,
    header_safe,
)
from maild.rules.model import BusinessDuration

SHIPPED = Path(__file__).resolve().parents[2] / "templates"
TEMPLATES = Templates(SHIPPED)
HELSINKI = ZoneInfo("Europe/Helsinki")
INJECTION = "Jäsenmaksu\r\nBcc: x@evil.example\r\n\r\nspam"


def context(name: str, **changes: Any) -> dict[str, Any]:
    """The sample context of ``name``; ``ticket_*`` keywords change the ticket."""
    values = dict(SAMPLE_CONTEXTS[name])
    ticket = {key.removeprefix("ticket_"): value for key, value in changes.items() if key.startswith("ticket_")}
    if ticket:
        values["ticket"] = {**values["ticket"], **ticket}
    values.update({key: value for key, value in changes.items() if not key.startswith("ticket_")})
    return values


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped templates."""
    return Path(shutil.copytree(SHIPPED, tmp_path / "templates"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- conventions --------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", NAMES)
def test_every_template_exists_in_every_language(name: str, language: str) -> None:
    assert (SHIPPED / language / f"{name}.txt").is_file()


def test_every_language_has_the_same_files() -> None:
    files = {language: sorted(path.name for path in (SHIPPED / language).iterdir()) for language in LANGUAGES}

    assert files["fi"] == files["sv"] == files["en"]
    assert {"ack.html", "resolved.html"} <= set(files["fi"])


def test_the_shipped_templates_check_clean() -> None:
    assert TEMPLATES.check() == []


def test_samples_cover_every_template() -> None:
    assert set(SAMPLE_CONTEXTS) == set(NAMES)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", NAMES)
def test_every_template_renders_a_subject_and_text(name: str, language: str) -> None:
    rendered = TEMPLATES.render(name, language, SAMPLE_CONTEXTS[name])

    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.text.strip()
    assert "{{" not in rendered.text and "{%" not in rendered.text


# --- check(): each problem as path:line: message -------------------------------------------------


def test_an_undefined_attribute_is_reported_with_path_and_line(copy: Path) -> None:
    path = copy / "fi" / "resolved.txt"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(6, "Aiheesi: {{ ticket.subjet }}\n")  # becomes line 7
    path.write_text("".join(lines), encoding="utf-8")

    problems = Templates(copy).check()

    assert problems == [f"{path}:7: undefined: 'dict object' has no attribute 'subjet'"]


def test_an_undefined_name_in_a_branch_the_samples_never_take_is_reported(copy: Path) -> None:
    path = copy / "sv" / "ack.txt"
    text = path.read_text(encoding="utf-8")
    never = "{% if ticket.number > 10**9 %}{{ medlemsnummer }}{% endif %}"
    path.write_text(text.replace("Hej{%", never + "Hej{%", 1), encoding="utf-8")

    assert Templates(copy).check() == [f"{path}:3: undefined: 'medlemsnummer' is undefined"]


def test_a_syntax_error_is_reported_with_its_line(copy: Path) -> None:
    path = copy / "en" / "reminder_member.txt"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[4] = "{% if ticket.subject %}unclosed\n"  # line 5
    path.write_text("".join(lines), encoding="utf-8")

    [problem] = Templates(copy).check()

    assert problem.startswith(f"{path}:")
    assert "endif" in problem


def test_a_syntax_error_in_an_html_alternative(copy: Path) -> None:
    path = copy / "fi" / "ack.html"
    write(path, path.read_text(encoding="utf-8").replace("{% if ticket.category", "{% iff ticket.category", 1))

    [problem] = Templates(copy).check()

    assert problem.startswith(f"{path}:3: ")


# --- the shared HTML layout ---------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_html_mail_extends_the_shared_layout(language: str) -> None:
    # the leads' weekly report is a page of charts and tables with a layout of its own
    mails = [path for path in (SHIPPED / language).glob("*.html") if not path.name.startswith("_") and path.stem != "report"]
    assert mails
    for path in mails:
        assert path.read_text(encoding="utf-8").startswith(f'{{% extends "{language}/_layout.html" %}}\n'), path
        html = TEMPLATES.render(path.stem, language, SAMPLE_CONTEXTS[path.stem]).html
        assert html is not None and html.startswith("<!DOCTYPE html>") and f'<html lang="{language}">' in html
        assert html.rstrip().endswith("</html>") and html.count("<body") == 1


def test_a_syntax_error_in_the_layout_is_reported_with_its_path(copy: Path) -> None:
    path = copy / "sv" / "_layout.html"
    write(path, path.read_text(encoding="utf-8").replace("{% block content %}", "{% block content %", 1))

    problems = Templates(copy).check()

    assert problems and all(problem.startswith(f"{path}:") for problem in problems)


def test_an_undefined_name_in_the_layout_is_reported_even_in_a_branch_never_taken(copy: Path) -> None:
    path = copy / "en" / "_layout.html"
    text = path.read_text(encoding="utf-8")
    write(path, text.replace("</body>", "{% if ticket.number > 10**9 %}{{ membership_number }}{% endif %}\n</body>"))
    line = 1 + path.read_text(encoding="utf-8").split("\n").index(
        "{% if ticket.number > 10**9 %}{{ membership_number }}{% endif %}")

    assert Templates(copy).check() == [f"{path}:{line}: undefined: 'membership_number' is undefined"]


def test_a_layout_missing_in_one_language(copy: Path) -> None:
    (copy / "fi" / "_layout.html").unlink()

    assert f"{copy / 'fi' / '_layout.html'}:1: missing: every template exists in fi, sv, en" in Templates(copy).check()


def test_an_instance_from_an_older_init_gets_the_newer_templates_from_the_shipped_ones(copy: Path) -> None:
    """Mail and layout added to maild after an instance's templates were written come from the
    shipped templates; the instance's own files still win."""
    for language in LANGUAGES:
        for filename in ("command_errors.txt", "nothing_relayed.txt", "_layout.html"):
            (copy / language / filename).unlink()
    write(copy / "fi" / "resolved.html", "<p>Oma {{ ticket.tag }}</p>\n")
    templates = Templates(copy)

    assert templates.check() == []
    assert "lähetetty mitään:" in templates.render("command_errors", "fi", SAMPLE_CONTEXTS["command_errors"]).text
    assert templates.render("resolved", "fi", SAMPLE_CONTEXTS["resolved"]).html == "<p>Oma [JP#12]</p>\n"
    ack = templates.render("ack", "sv", SAMPLE_CONTEXTS["ack"]).html
    assert ack is not None and '<html lang="sv">' in ack  # the instance's ack.html, the shipped layout


def test_an_instance_with_a_file_in_some_languages_only_is_not_filled_in(copy: Path) -> None:
    (copy / "sv" / "command_errors.txt").unlink()

    assert Templates(copy).check() == [
        f"{copy / 'sv' / 'command_errors.txt'}:1: missing: every template exists in fi, sv, en"]
    with pytest.raises(jinja2.TemplateNotFound):
        Templates(copy).render("command_errors", "sv", SAMPLE_CONTEXTS["command_errors"])


# --- answers to staff --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "intro"),
    [
        ("fi", "Viestiäsi tiketissä [JP#12] ei käsitelty, eikä jäsenelle lähetetty mitään:"),
        ("sv", "Ditt meddelande i ärendet [JP#12] behandlades inte, och inget skickades till medlemmen:"),
        ("en", "Your message on ticket [JP#12] was not acted on, and nothing was sent to the member:"),
    ],
)
def test_command_errors_lists_each_error_as_written(language: str, intro: str) -> None:
    values = context("command_errors", errors=["#priority kiire: priority must be one of low, normal, high, urgent",
                                                "#foo\x1b[2J: unknown command"])

    rendered = TEMPLATES.render("command_errors", language, values)

    assert rendered.subject == "Re: [JP#12] Eroaminen liitosta" and rendered.html is None
    assert rendered.text == (f"{intro}\n\n  #priority kiire: priority must be one of low, normal, high, urgent\n"
                             "  #foo\x1b[2J: unknown command\n")


@pytest.mark.parametrize(("language", "says"), [("fi", "ei lähetetty mitään"), ("sv", "inget skickades"),
                                                ("en", "nothing was sent")])
def test_nothing_relayed_says_so_and_how_to_answer(language: str, says: str) -> None:
    rendered = TEMPLATES.render("nothing_relayed", language, context("nothing_relayed", ticket_subject="Re:\nBcc: x"))

    assert rendered.subject == "Re: [JP#12] Re: Bcc: x"
    assert says in " ".join(rendered.text.split()) and "#note" in rendered.text


def test_a_template_missing_in_one_language(copy: Path) -> None:
    (copy / "sv" / "digest.txt").unlink()

    assert Templates(copy).check() == [f"{copy / 'sv' / 'digest.txt'}:1: missing: every template exists in fi, sv, en"]


def test_an_empty_subject_and_a_missing_subject_line(copy: Path) -> None:
    empty = copy / "fi" / "reminder_member.txt"
    text = empty.read_text(encoding="utf-8")
    write(empty, "Subject: {{ '' }}\n" + text.split("\n", 1)[1])
    headless = write(copy / "en" / "resolved.txt", "Hello,\n\nresolved.\n")

    problems = Templates(copy).check()

    assert f"{empty}:1: the subject is empty" in problems
    assert f"{headless}:1: the first line must be 'Subject: ...'" in problems


def test_a_file_that_is_not_utf8(copy: Path) -> None:
    path = copy / "sv" / "resolved.txt"
    path.write_bytes("Subject: Ärende\n\nHej\n".encode("latin-1"))

    assert Templates(copy).check() == [f"{path}:1: not UTF-8 text"]


def test_a_rules_own_ack_template_is_checked_with_the_ack_samples(copy: Path) -> None:
    """rules.yaml may say `ack: ack_laskutus`; such a template must exist in every language."""
    write(copy / "fi" / "ack_laskutus.txt", "Subject: {{ ticket.tag }} Laskusi\n\nHei, {{ due|date }} {{ nosuch }}\n")

    problems = Templates(copy).check()

    assert f"{copy / 'sv' / 'ack_laskutus.txt'}:1: missing: every template exists in fi, sv, en" in problems
    assert f"{copy / 'fi' / 'ack_laskutus.txt'}:3: undefined: 'nosuch' is undefined" in problems


# --- rendering -------------------------------------------------------------------------------------


def test_rendered_is_frozen() -> None:
    rendered = TEMPLATES.render("ack", "fi", SAMPLE_CONTEXTS["ack"])

    with pytest.raises(FrozenInstanceError):
        rendered.subject = "x"  # type: ignore[misc]
    assert isinstance(rendered, Rendered)


def test_render_refuses_what_is_no_template() -> None:
    with pytest.raises(ValueError):
        TEMPLATES.render("ack", "de", SAMPLE_CONTEXTS["ack"])
    with pytest.raises(ValueError):
        TEMPLATES.render("../ack", "fi", SAMPLE_CONTEXTS["ack"])
    with pytest.raises(jinja2.TemplateNotFound):
        TEMPLATES.render("nosuch", "fi", SAMPLE_CONTEXTS["ack"])


def test_missing_context_is_an_error() -> None:
    values = dict(SAMPLE_CONTEXTS["ack"])
    del values["due"]

    with pytest.raises(jinja2.UndefinedError):
        TEMPLATES.render("ack", "fi", values)


@pytest.mark.parametrize(
    ("language", "due", "keep"),
    [
        ("fi", "ti 24.11.2026 klo 10.00", "Säilytäthän tunnuksen [JP#12]"),
        ("sv", "tis 24.11.2026 kl. 10.00", "Behåll\närendenumret [JP#12] i ämnesraden"),
        ("en", "Tue 24 Nov 2026 at 10:00", "Please keep\n[JP#12] in the subject line"),
    ],
)
def test_ack_shows_the_tag_the_due_time_and_the_sla(language: str, due: str, keep: str) -> None:
    rendered = TEMPLATES.render("ack", language, context("ack", ticket_category=None))

    assert rendered.subject.startswith("[JP#12] ")
    assert due in rendered.text
    assert {"fi": "1 arkipäivä", "sv": "1 arbetsdag", "en": "1 business day"}[language] in rendered.text
    assert keep in rendered.text
    assert rendered.html is not None and due in rendered.html and "[JP#12]" in rendered.html


def test_ack_without_an_sla_promises_no_time() -> None:
    rendered = TEMPLATES.render("ack", "fi", context("ack", sla=None, due=None))

    assert "mahdollisimman pian" in rendered.text
    assert "klo" not in rendered.text


BENEFITS = {
    "fi": ["työttömyyskassa", "erillinen", "Lakineuvonta", "työsuhderiido", "Työehtosopimukset", "Vakuutukset",
           "Jäsenedut", "vastaa vain tähän viestiin"],
    "sv": ["arbetslöshetskassan", "skilt från", "Juridisk rådgivning", "tvister", "Kollektivavtal", "Försäkringar",
           "Medlemsförmåner", "ändrat dig"],
    "en": ["unemployment fund", "separate", "Legal advice", "employment disputes", "Collective agreements",
           "Insurance", "Member benefits", "changed your mind"],
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_resignation_ack_reminds_of_what_membership_gives(language: str) -> None:
    resigning = TEMPLATES.render("ack", language, context("ack", ticket_category="eroaminen"))
    other = TEMPLATES.render("ack", language, context("ack", ticket_category=None))

    for phrase in BENEFITS[language]:
        assert phrase in resigning.text, phrase
        assert phrase in (resigning.html or ""), phrase
    assert BENEFITS[language][2] not in other.text


@pytest.mark.parametrize(
    ("language", "welcome"),
    [
        ("fi", "kiitos jäsenhakemuksestasi"),
        ("sv", "Tack för din medlemsansökan"),
        ("en", "Thank you for your membership application"),
    ],
)
def test_the_application_ack_welcomes(language: str, welcome: str) -> None:
    rendered = TEMPLATES.render("ack", language, context("ack", ticket_category="jäsenhakemus"))

    assert welcome in rendered.text


# --- headers and escaping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Re: jäsenmaksu", "Re: jäsenmaksu"),
        ("a\r\nBcc: x@evil", "a Bcc: x@evil"),
        ("a\nb\rc", "a b c"),
        ("  a \t\x00 b\x1b ", "a b"),
        ("a\u2028b\u2029c\x85d\x0bE\x0cF", "a b c d E F"),
        ("x" * 300, "x" * 199 + "…"),
    ],
)
def test_header_safe(text: str, expected: str) -> None:
    assert header_safe(text) == expected


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", [name for name in NAMES if name not in ("digest", "report", "opening_refused")])  # no ticket in them
def test_values_from_mail_cannot_split_the_subject(name: str, language: str) -> None:
    values = context(name, ticket_subject=INJECTION, ticket_requester_name="Matti\r\nBcc: x@evil.example")

    rendered = TEMPLATES.render(name, language, values)

    assert "\r" not in rendered.subject and "\n" not in rendered.subject
    assert "Bcc: x@evil.example" in rendered.subject  # kept as harmless text on the one line
    assert "\nBcc:" not in rendered.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_refused_openings_subject_cannot_be_split(language: str) -> None:
    """``opening_refused`` answers a mail that opened no ticket: its subject is the mail's own."""
    rendered = TEMPLATES.render("opening_refused", language, context("opening_refused", subject=INJECTION))

    assert "\r" not in rendered.subject and "\n" not in rendered.subject
    assert "Bcc: x@evil.example" in rendered.subject


def test_html_is_escaped_and_text_is_not(tmp_path: Path) -> None:
    for language in LANGUAGES:
        write(tmp_path / language / "note.txt", "Subject: {{ ticket.tag }}\n\n{{ member_text }}\n")
        write(tmp_path / language / "note.html", "<p>{{ member_text }}</p>\n")
    values = {**SAMPLE_CONTEXTS["ack"], "member_text": "<script>alert(1)</script> & co"}

    rendered = Templates(tmp_path).render("note", "fi", values)

    assert rendered.text == "<script>alert(1)</script> & co\n"
    assert rendered.html == "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</p>\n"


@pytest.mark.parametrize("name", ["ack", "resolved"])
def test_shipped_html_escapes_values_from_mail(name: str) -> None:
    values = context(name, ticket_subject="<script>x()</script>", ticket_requester_name="<b>Matti</b>")

    rendered = TEMPLATES.render(name, "fi", values)

    assert rendered.html is not None
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "<b>Matti</b>" not in rendered.html and "&lt;b&gt;Matti&lt;/b&gt;" in rendered.html
    assert "<b>Matti</b>" in rendered.text


def test_templates_without_html_have_none() -> None:
    assert TEMPLATES.render("staff_new", "fi", SAMPLE_CONTEXTS["staff_new"]).html is None


# --- dates and other filters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "language", "expected"),
    [
        (datetime(2026, 11, 24, 8, 0, tzinfo=UTC), "fi", "ti 24.11.2026 klo 10.00"),
        (datetime(2026, 11, 24, 8, 0, tzinfo=UTC), "sv", "tis 24.11.2026 kl. 10.00"),
        (datetime(2026, 11, 24, 8, 0, tzinfo=UTC), "en", "Tue 24 Nov 2026 at 10:00"),
        (datetime(2026, 6, 1, 6, 5, tzinfo=UTC), "fi", "ma 1.6.2026 klo 9.05"),  # summer time, UTC+3
        (datetime(2026, 6, 1, 6, 5, tzinfo=UTC), "sv", "mån 1.6.2026 kl. 9.05"),
        (datetime(2026, 6, 1, 6, 5, tzinfo=UTC), "en", "Mon 1 Jun 2026 at 09:05"),
        (datetime(2026, 12, 6, 22, 30, tzinfo=UTC), "fi", "ma 7.12.2026 klo 0.30"),  # local date differs
    ],
)
def test_dates_per_language(when: datetime, language: str, expected: str) -> None:
    assert format_date(when, language, HELSINKI) == expected


def test_the_date_filter_uses_the_templates_language_and_zone(tmp_path: Path) -> None:
    for language in LANGUAGES:
        write(tmp_path / language / "when.txt", "Subject: {{ due|date }}\n\n{{ due|date('en') }}\n")
    templates = Templates(tmp_path, timezone="Europe/Stockholm")
    values = {"due": datetime(2026, 11, 24, 8, 0, tzinfo=UTC)}

    expected = Rendered("tis 24.11.2026 kl. 9.00", "Tue 24 Nov 2026 at 09:00\n", None)
    assert templates.render("when", "sv", values) == expected


def test_a_naive_date_is_an_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        format_date(datetime(2026, 11, 24, 10, 0), "fi", HELSINKI)


@pytest.mark.parametrize(
    ("amount", "unit", "fi", "sv", "en"),
    [
        (1, "d", "1 arkipäivä", "1 arbetsdag", "1 business day"),
        (3, "d", "3 arkipäivää", "3 arbetsdagar", "3 business days"),
        (1, "h", "1 työtunti", "1 arbetstimme", "1 business hour"),
        (4, "h", "4 työtuntia", "4 arbetstimmar", "4 business hours"),
        (30, "m", "30 minuuttia", "30 minuter", "30 minutes"),
    ],
)
def test_business_time_filter(tmp_path: Path, amount: int, unit: str, fi: str, sv: str, en: str) -> None:
    for language in LANGUAGES:
        write(tmp_path / language / "sla.txt", "Subject: {{ sla|business_time }}\n\n")
    templates = Templates(tmp_path)
    sla = BusinessDuration(amount, unit, timedelta(hours=8))  # type: ignore[arg-type]

    assert [templates.render("sla", language, {"sla": sla}).subject for language in LANGUAGES] == [fi, sv, en]


@pytest.mark.parametrize(
    ("age", "fi", "sv", "en"),
    [
        (timedelta(days=1, hours=5), "1 päivä", "1 dag", "1 day"),
        (timedelta(days=4), "4 päivää", "4 dagar", "4 days"),
        (timedelta(hours=1, minutes=59), "1 tunti", "1 timme", "1 hour"),
        (timedelta(minutes=5), "5 minuuttia", "5 minuter", "5 minutes"),
    ],
)
def test_ages(age: timedelta, fi: str, sv: str, en: str) -> None:
    assert [format_age(age, language) for language in LANGUAGES] == [fi, sv, en]


def test_the_tag_filter_uses_the_instances_prefix(tmp_path: Path) -> None:
    for language in LANGUAGES:
        write(tmp_path / language / "tag.txt", "Subject: {{ 12|tag }}\n\n")

    assert Templates(tmp_path, tag_prefix="LIITTO").render("tag", "fi", {}).subject == "[LIITTO#12]"


# --- staff mail and confidentiality ------------------------------------------------------------------

COMMANDS = ("#note", "#take", "#assign ", "#close", "#pending", "#open", "#priority ", "#queue ", "#category ")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", ["staff_new", "staff_followup", "reminder_staff"])
def test_staff_mail_starts_with_a_delimited_internal_block(name: str, language: str) -> None:
    text = TEMPLATES.render(name, language, SAMPLE_CONTEXTS[name]).text
    lines = text.splitlines()

    assert lines[0] == INTERNAL_START
    assert lines.count(INTERNAL_START) == 1 and lines.count(INTERNAL_END) == 1
    block = "\n".join(lines[: lines.index(INTERNAL_END)])
    for command in COMMANDS:
        assert f"\n  {command}" in block, command
    if "member_text" in SAMPLE_CONTEXTS[name]:
        assert text.split(INTERNAL_END + "\n", 1)[1].strip() == SAMPLE_CONTEXTS[name]["member_text"].strip()


CONFIDENTIAL = [("fi", "luottamuksellinen"), ("sv", "konfidentiellt"), ("en", "confidential")]


@pytest.mark.parametrize(("language", "word"), CONFIDENTIAL)
def test_staff_new_notes_why_confidential_content_is_included(language: str, word: str) -> None:
    word = word.upper()
    assert word in TEMPLATES.render("staff_new", language, context("staff_new", ticket_confidential=True)).text
    assert word not in TEMPLATES.render("staff_new", language, context("staff_new", ticket_confidential=False)).text


@pytest.mark.parametrize(("language", "word"), CONFIDENTIAL)
def test_invisible_tickets_show_only_their_tag(language: str, word: str) -> None:
    digest = TEMPLATES.render("digest", language, SAMPLE_CONTEXTS["digest"]).text
    staff_new = TEMPLATES.render("staff_new", language, SAMPLE_CONTEXTS["staff_new"]).text

    assert f"[JP#14] {word}\n" in digest and "Lomautus" not in digest
    assert "[JP#13] Työtodistus" in digest  # confidential, but the recipient may see it
    assert f"[JP#10] {word}\n" in staff_new and "Irtisanominen" not in staff_new


@pytest.mark.parametrize("language", LANGUAGES)
def test_digest_lists_overdue_first_then_own_then_unassigned(language: str) -> None:
    text = TEMPLATES.render("digest", language, SAMPLE_CONTEXTS["digest"]).text

    assert text.index("[JP#7]") < text.index("[JP#12]") < text.index("[JP#13]") < text.index("[JP#14]")


@pytest.mark.parametrize(
    ("language", "subject", "more"),
    [("fi", "16 tikettiä", "… ja 12 muuta"), ("sv", "16 ärenden", "… och 12 till"), ("en", "16 tickets", "… and 12 more")],
)
def test_digest_says_how_many_more_a_section_has(language: str, subject: str, more: str) -> None:
    values = {**SAMPLE_CONTEXTS["digest"], "more": {"overdue": 0, "own": 12, "unassigned": 0}, "total": 16}
    rendered = TEMPLATES.render("digest", language, values)

    assert rendered.subject.endswith(subject)
    assert rendered.text.count("…") == 1
    assert rendered.text.index("[JP#13]") < rendered.text.index(more) < rendered.text.index("[JP#14]")


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_staff_reminder_leaves_out_a_confidential_subject(language: str) -> None:
    values = context("reminder_staff", reason="breach", ticket_confidential=True, ticket_subject="Raskaussyrjintä")

    rendered = TEMPLATES.render("reminder_staff", language, values)

    assert "Raskaussyrjintä" not in rendered.subject + rendered.text
    assert "matti.meikalainen@example.fi" not in rendered.text


@pytest.mark.parametrize(
    ("language", "days"), [("fi", "9 päivän kuluessa"), ("sv", "inom 9 dagar"), ("en", "within 9 days")]
)
def test_member_reminder_says_when_the_request_is_resolved(language: str, days: str) -> None:
    assert days in TEMPLATES.render("reminder_member", language, SAMPLE_CONTEXTS["reminder_member"]).text


@pytest.mark.parametrize(
    ("language", "days"), [("fi", "7 päivän kuluessa"), ("sv", "inom 7 dagar"), ("en", "within 7 days")]
)
def test_resolved_says_how_long_a_reply_reopens(language: str, days: str) -> None:
    rendered = TEMPLATES.render("resolved", language, SAMPLE_CONTEXTS["resolved"])

    assert days in rendered.text and days in (rendered.html or "")
