"""Canned answers: rendering, listing and what `maild check` finds (docs/coming.md#staff-daily-work)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from maild.outbound.answers import Answers
from maild.outbound.templates import SAMPLE_CONTEXTS, Templates
from maild.rules.loader import RulesError, parse_rules

REPO = Path(__file__).resolve().parents[2]

RULES = """\
queues:
  jasenasiat: {name: Jäsenasiat, address: jasenpalvelu@liitto.fi, staff: [maija@liitto.fi], language: fi, default: true}
  medlem: {name: Medlem, address: medlem@liitto.fi, staff: [maija@liitto.fi], language: sv}
rules:
  - name: Jäsenmaksu
    if: {subject: {contains: jäsenmaksu}}
    then: {answer: jasenmaksu, suggest: [jasenmaksu, yhteystiedot]}
  - name: Vain suomeksi
    if: {subject: {contains: kortti}}
    then: {queue: jasenasiat, suggest: vain_suomeksi}
"""


@pytest.fixture()
def templates(tmp_path: Path) -> Templates:
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    return Templates(tmp_path / "templates")


def test_render_fills_the_ticket_context_and_splits_the_title(templates: Templates) -> None:
    rendered = Answers(templates).render("jasenmaksu", "fi", SAMPLE_CONTEXTS["ack"])
    assert rendered.title == "Jäsenmaksu: suuruus, maksutavat ja verovähennys"
    assert rendered.text.startswith("Hei Matti Meikäläinen,\n") and "{{" not in rendered.text
    assert rendered.text.rstrip().endswith(SAMPLE_CONTEXTS["ack"]["instance"])


def test_a_name_missing_in_the_language_is_a_lookup_error(templates: Templates) -> None:
    (templates.directory / "fi" / "answers" / "vain_suomeksi.txt").write_text("Otsikko\nTeksti\n", encoding="utf-8")
    answers = Answers(templates)
    assert answers.render("vain_suomeksi", "fi", SAMPLE_CONTEXTS["ack"]).text == "Teksti\n"
    with pytest.raises(LookupError, match="no canned answer 'vain_suomeksi' in sv"):
        answers.render("vain_suomeksi", "sv", SAMPLE_CONTEXTS["ack"])
    with pytest.raises(LookupError):
        answers.render("../ack", "fi", SAMPLE_CONTEXTS["ack"])


def test_check_finds_broken_answers_empty_titles_and_rules_naming_missing_ones(templates: Templates) -> None:
    folder = templates.directory / "fi" / "answers"
    (folder / "vain_suomeksi.txt").write_text("Otsikko\n{{ ticket.nosuch }}\n", encoding="utf-8")
    (folder / "tyhja.txt").write_text("\nTeksti\n", encoding="utf-8")
    rules = parse_rules(RULES, "rules.yaml")
    problems = Answers(templates).check(rules)
    assert any("vain_suomeksi.txt:1: UndefinedError" in p for p in problems), problems
    assert any("tyhja.txt:1: the first line" in p for p in problems), problems
    # the rule sets queue jasenasiat (fi): vain_suomeksi exists there, so only the broken text is reported
    assert not any("rule 'Vain suomeksi'" in p for p in problems), problems
    (folder / "vain_suomeksi.txt").unlink()
    assert any(p.startswith("rules.yaml:8: rule 'Vain suomeksi': no canned answer 'vain_suomeksi' in fi")
               for p in Answers(templates).check(rules))


def test_the_shipped_answers_pass_the_check(templates: Templates) -> None:
    rules = parse_rules((REPO / "rules.yaml").read_text(encoding="utf-8"), "rules.yaml")
    assert Answers(templates).check(rules) == []
    assert len(Answers(templates).listing()) >= 15


def test_rules_suggest_and_answer_are_read_and_merged() -> None:
    from maild.rules.engine import decide
    from maild.rules.model import Facts

    rules = parse_rules(RULES, "rules.yaml")
    facts = Facts("matti@example.fi", ("jasenpalvelu@liitto.fi",), "Jäsenmaksu ja kortti", "", {}, False)
    decision = decide(facts, rules)
    assert decision.answer == "jasenmaksu"
    assert decision.suggest == ("jasenmaksu", "yhteystiedot", "vain_suomeksi")
    assert decision.to_json()["suggest"] == ["jasenmaksu", "yhteystiedot", "vain_suomeksi"]


@pytest.mark.parametrize("then, message", [
    ("{answer: [a, b]}", "answer: expected the name of a canned answer"),
    ("{suggest: ['../etc']}", "suggest: expected the name of a canned answer"),
    ("{answer: false}", "answer: expected the name of a canned answer"),
])
def test_rules_refuse_bad_answer_names(then: str, message: str) -> None:
    text = RULES.split("rules:")[0] + f"rules:\n  - name: X\n    if: {{subject: {{contains: x}}}}\n    then: {then}\n"
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.yaml")
    assert any(message in error for error in caught.value.errors), caught.value.errors
