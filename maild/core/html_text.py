"""Readable plain text from HTML mail, for HTML-only messages (no I/O, stdlib only).

Laid out the way a mail client shows it, which is what quote cutting and relaying need:
one line per ``<div>`` or ``<br>`` (Gmail and Outlook write a block per line, and
``<p class=MsoNormal>`` has no margin), a blank line around other paragraphs, and
``<blockquote>`` quoted with ``>`` as a plain-text reply would be.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_LINE = frozenset(
    "address article aside dd div dl dt footer form header li main nav section table tr".split())
_PARAGRAPH = frozenset("h1 h2 h3 h4 h5 h6 hr ol p pre ul".split())
_SKIP = frozenset({"script", "style", "head", "title", "template"})
_SPACE = re.compile(r"[ \t\n\r\f\v]+")  # not \xa0: &nbsp; is kept until the line ends


class _Layout(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []  # (quote depth, text)
        self.current: list[str] = []
        self.depth = 0
        self.skipping = 0
        self.pre = 0
        self.paragraph: list[bool] = []  # per open <p>: does it have a margin?

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag == "br":
            self._flush(always=True)
        elif tag == "blockquote":
            self._flush()
            self._blank()
            self.depth += 1
        elif tag == "p":
            margin = "msonormal" not in (dict(attrs).get("class") or "").lower()
            self.paragraph.append(margin)
            self._flush()
            if margin:
                self._blank()
        elif tag in _PARAGRAPH:
            self.pre += tag == "pre"
            self._flush()
            self._blank()
        elif tag in _LINE:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag == "blockquote":
            self._flush()
            self.depth = max(0, self.depth - 1)
            self._blank()
        elif tag == "p":
            self._flush()
            if not self.paragraph or self.paragraph.pop():
                self._blank()
        elif tag in _PARAGRAPH:
            self._flush()
            self.pre = max(0, self.pre - (tag == "pre"))
            self._blank()
        elif tag in _LINE:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if self.pre:
            *whole, last = data.replace("\r\n", "\n").split("\n")
            for line in whole:
                self.current.append(line)
                self._flush(always=True)
            self.current.append(last)
        else:
            self.current.append(_SPACE.sub(" ", data))

    def _flush(self, always: bool = False) -> None:
        """End the line; one holding only &nbsp; is a blank line (Outlook's empty paragraph)."""
        raw = "".join(self.current)
        self.current = []
        text = raw.replace("\xa0", " ")
        text = text.rstrip() if self.pre else text.strip()
        if text or always or "\xa0" in raw:
            self.lines.append((self.depth, text))

    def _blank(self) -> None:
        if self.lines and self.lines[-1][1]:
            self.lines.append((self.depth, ""))

    def text(self) -> str:
        self._flush()
        out: list[str] = []
        for depth, line in self.lines:
            quoted = f"{'>' * depth} {line}".strip() if depth else line
            if not line and out and out[-1] == quoted:
                continue  # one blank line at most, inside a quotation too
            out.append(quoted)
        return "\n".join(out).strip("\n")


def html_to_text(html: str) -> str:
    """Text a person would read in the rendered HTML (see the module's docstring)."""
    layout = _Layout()
    try:
        layout.feed(html)
        layout.close()
    except Exception:  # html.parser is lenient, but never let bad markup lose the message
        return re.sub(r"<[^>]*>", " ", html).strip()
    return layout.text()
