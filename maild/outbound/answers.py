"""Canned answers: ``templates/LANG/answers/NAME.txt`` (docs/mail.md, canned answers).

The first line of a file is its title, shown in ``maild answers list`` and in the staff
notification's suggestions; the rest is the text. Both are Jinja2 with the ticket's context
(as the acknowledgement has it), rendered by the instance's :class:`Templates` environment, so
the same filters and the same strictness apply. A name exists per language: a staff member's
``#answer NAME`` on a Swedish queue needs ``sv/answers/NAME.txt``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError

from maild.outbound.templates import LANGUAGES, SAMPLE_CONTEXTS, SAMPLE_VARIANTS, Templates
from maild.rules.model import RuleSet

FOLDER = "answers"
_NAME = re.compile(r"[\w-]+")


@dataclass(frozen=True)
class Answer:
    name: str
    language: str
    title: str


@dataclass(frozen=True)
class RenderedAnswer:
    title: str
    text: str


@lru_cache(maxsize=8)
def answer_titles(templates: Templates) -> Mapping[str, Mapping[str, str]]:
    """language -> name -> title of every canned answer, read once per ``Templates`` (which
    are themselves read once and replaced on reload), for the planner's decisions."""
    titles: dict[str, dict[str, str]] = {}
    for answer in Answers(templates).listing():
        titles.setdefault(answer.language, {})[answer.name] = answer.title
    return titles


class Answers:
    """The canned answers of one templates directory."""

    def __init__(self, templates: Templates) -> None:
        self.templates = templates

    def names(self, language: str) -> list[str]:
        folder = self.templates.directory / language / FOLDER
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.txt") if p.is_file() and _NAME.fullmatch(p.stem))

    def exists(self, name: str, language: str) -> bool:
        return language in LANGUAGES and bool(_NAME.fullmatch(name)) and (
            self.templates.directory / language / FOLDER / f"{name}.txt").is_file()

    def listing(self) -> list[Answer]:
        """Every answer in every language, each with its title (the raw first line: the list
        is for staff choosing an answer, so no ticket is needed)."""
        found = []
        for language in LANGUAGES:
            for name in self.names(language):
                path = self.templates.directory / language / FOLDER / f"{name}.txt"
                first = path.read_text(encoding="utf-8").partition("\n")[0].strip()
                found.append(Answer(name, language, first))
        return found

    def render(self, name: str, language: str, context: Mapping[str, Any]) -> RenderedAnswer:
        """The answer's title and text for one ticket. Raises ``LookupError`` when the
        language has no such answer and ``jinja2.TemplateError`` when it does not render."""
        if not self.exists(name, language):
            raise LookupError(f"no canned answer {name!r} in {language} ({language}/{FOLDER}/{name}.txt)")
        template = self.templates.env.get_template(f"{language}/{FOLDER}/{name}.txt")
        rendered = template.render({**context, "language": language})
        title, _, text = rendered.partition("\n")
        return RenderedAnswer(title.strip(), text.strip("\n") + "\n")

    def check(self, rules: RuleSet | None = None) -> list[str]:
        """Every problem as ``path:line: message``: an answer that does not render with the
        ticket context, an empty title, and a rule's ``answer:`` or ``suggest:`` naming an
        answer that is missing in the language of a queue the rule can put mail in."""
        problems: dict[str, None] = {}
        samples = [SAMPLE_CONTEXTS["ack"], *({**SAMPLE_CONTEXTS["ack"], **v} for v in SAMPLE_VARIANTS.get("ack", ()))]
        for language in LANGUAGES:
            for name in self.names(language):
                path = self.templates.directory / language / FOLDER / f"{name}.txt"
                for sample in samples:
                    try:
                        rendered = self.render(name, language, sample)
                    except TemplateSyntaxError as exc:
                        problems[f"{exc.filename or path}:{exc.lineno}: {exc.message}"] = None
                        break
                    except (TemplateError, TypeError, ValueError) as exc:
                        problems[f"{path}:1: {type(exc).__name__}: {exc}"] = None
                        break
                    if not rendered.title:
                        problems[f"{path}:1: the first line (the answer's title) is empty"] = None
                        break
        if rules is not None:
            problems.update(dict.fromkeys(self._missing_for_rules(rules)))
        return list(problems)

    def _missing_for_rules(self, rules: RuleSet) -> Iterable[str]:
        for rule in rules.rules:
            languages = {rules.queues[rule.actions.queue].language} if rule.actions.queue else {
                queue.language for queue in rules.queues.values()}
            named = [*rule.actions.suggest, *([rule.actions.answer] if rule.actions.answer else [])]
            for name in named:
                for language in sorted(languages):
                    if not self.exists(name, language):
                        yield (f"{rules.path}:{rule.line}: rule {rule.name!r}: no canned answer {name!r} in "
                               f"{language} ({self.templates.directory / language / FOLDER / (name + '.txt')})")
