"""The documentation under docs/ cannot rot unnoticed.

- Every ``docs/PAGE.md#anchor`` cited in the code, the READMEs or the docs themselves names a
  page that exists and an anchor on it (explicit ``<a id="...">`` anchors: they survive a
  reworded heading). Relative Markdown links between the pages resolve too.
- Every command that ``maild --help`` offers is documented in docs/commands.md.
- Every table has the same number of cells in each row (an unescaped ``|`` inside a cell
  silently breaks a Markdown table).
- The ``rules.yaml`` examples in docs/rules.md load with the real loader.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

# docs/mail.md#threading, as cited in code comments and the READMEs (a path may lead up to it)
CITATION = re.compile(r"(?<![\w.-])docs/([\w-]+\.md)(?:#([\w-]+))?")
# [text](target.md#anchor) in Markdown; external links (scheme:) are not ours to check
MD_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:)([^)\s#]*)(?:#([^)\s]+))?\)")
# on a line of its own, so that one shown as an example inside `code` does not count
EXPLICIT_ANCHOR = re.compile(r"""^<a\s+(?:id|name)=["']([^"']+)["']\s*>\s*</a>\s*$""", re.MULTILINE)


def _citing_files() -> list[Path]:
    files = sorted((REPO / "maild").rglob("*.py"))
    files += [REPO / "README.md", REPO / "deploy" / "README.md", *sorted(DOCS.glob("*.md"))]
    return [path for path in files if path.is_file()]


def _github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    """The anchors a link may use: explicit ones everywhere, and GitHub's heading slugs
    outside docs/ (the READMEs do not use explicit anchors)."""
    text = page.read_text(encoding="utf-8")
    found = set(EXPLICIT_ANCHOR.findall(text))
    if page.parent != DOCS:
        found |= {_github_slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.MULTILINE)}
    return found


def test_cited_docs_anchors_exist() -> None:
    missing = []
    cited = 0
    for path in _citing_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for page, anchor in CITATION.findall(line):
                cited += 1
                target = DOCS / page
                where = f"{path.relative_to(REPO)}:{number}: docs/{page}{'#' + anchor if anchor else ''}"
                if not target.is_file():
                    missing.append(f"{where}: no such page")
                elif anchor and anchor not in anchors_of(target):
                    missing.append(f"{where}: no such anchor")
    assert cited > 0  # the READMEs cite docs/ at least
    assert not missing, "\n".join(missing)


def test_markdown_links_between_pages_resolve() -> None:
    broken = []
    for page in [*sorted(DOCS.glob("*.md")), REPO / "README.md"]:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
            for target, anchor in MD_LINK.findall(line):
                resolved = (page.parent / target).resolve() if target else page
                where = f"{page.relative_to(REPO)}:{number}: {target}{'#' + anchor if anchor else ''}"
                if not resolved.exists():
                    broken.append(f"{where}: no such file")
                elif anchor and resolved.suffix == ".md" and anchor not in anchors_of(resolved):
                    broken.append(f"{where}: no such anchor")
    assert not broken, "\n".join(broken)


def _cli_commands() -> list[str]:
    """Every command path that ``maild --help`` and its groups' ``--help`` list."""
    import typer

    from maild.cli import app

    def walk(command: Any, path: tuple[str, ...]) -> list[str]:
        # a group has ``commands`` (typer's own click, vendored or not: no isinstance here)
        subcommands = getattr(command, "commands", None)
        if isinstance(subcommands, dict):
            return [found for name, sub in sorted(subcommands.items()) if not getattr(sub, "hidden", False)
                    for found in walk(sub, (*path, name))]
        return [" ".join(path)]

    return walk(typer.main.get_command(app), ())


def test_every_command_is_documented() -> None:
    commands = _cli_commands()
    assert "tickets list" in commands and "run" in commands  # the walk found the real ones
    text = (DOCS / "commands.md").read_text(encoding="utf-8")
    undocumented = [name for name in commands if not re.search(rf"`maild {re.escape(name)}\b", text)]
    assert not undocumented, f"not in docs/commands.md: {', '.join(undocumented)}"


def test_tables_have_one_cell_count() -> None:
    wrong = []
    for page in sorted(DOCS.glob("*.md")):
        width = None
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.startswith("|"):
                width = None
                continue
            cells = len(re.split(r"(?<!\\)\|", line))
            if width is None:
                width = cells
            elif cells != width:
                wrong.append(f"{page.name}:{number}: {cells - 2} cells, the header has {width - 2}")
    assert not wrong, "\n".join(wrong)


def _rules_examples() -> list[tuple[int, str]]:
    text = (DOCS / "rules.md").read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 2, m.group(1)) for m in re.finditer(r"```yaml\n(.*?)```", text, re.S)]


@pytest.mark.parametrize(("line", "example"), _rules_examples(), ids=lambda value: str(value)[:20])
def test_rules_examples_load(line: int, example: str) -> None:
    """Each example is completed into a rules file the way a reader would use it: top-level
    sections get the shipped queues, rule lists a ``rules:`` key, bare conditions a rule."""
    from maild.rules.loader import parse_rules

    shipped = yaml.safe_load((REPO / "rules.yaml").read_text(encoding="utf-8"))
    queues = yaml.safe_dump({"queues": shipped["queues"]}, allow_unicode=True)
    if example.startswith("queues:"):
        document = example
    elif example.startswith("  - name:"):
        document = f"{queues}rules:\n{example}"
    elif example.startswith("- "):
        document = f"{queues}rules:\n  - name: example\n    if:\n      any:\n{textwrap.indent(example, '        ')}    then: {{tags: [x]}}\n"
    else:
        document = f"{queues}{example}"
    parse_rules(document, f"docs/rules.md:{line}")
