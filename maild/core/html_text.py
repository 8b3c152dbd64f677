"""Readable plain text from HTML mail, for HTML-only messages (no I/O, stdlib only).

Laid out the way a mail client shows it, which is what quote cutting and relaying need:
one line per ``<div>`` or ``<br>`` (Gmail and Outlook write a block per line, and
``<p class=MsoNormal>`` has no margin), a blank line around other paragraphs, and
``<blockquote>`` quoted with ``>`` as a plain-text reply would be.

The markup is read by a small tokenizer of our own, not ``html.parser``: that one scans to the
end of the input again for every tag left open (30 KB of ``<a <a <a`` took 20 s, 1 MB hours)
and fails on a numeric character reference of over 4,300 digits. This one reads every
character a bounded number of times. Markup that is never closed (a tag, comment or
declaration running to the end) is shown as text from there on, so nothing the writer typed
is lost.
"""

from __future__ import annotations

import html as entities
import re

_LINE = frozenset(
    "address article aside dd div dl dt footer form header li main nav section table tr".split())
_PARAGRAPH = frozenset("h1 h2 h3 h4 h5 h6 hr ol p pre ul".split())
_SKIP = frozenset({"script", "style", "head", "title", "template"})
MAX_QUOTE_DEPTH = 32  # '>' shown at most: 10,000 nested <blockquote> must not make every line 10 KB
_SPACE = re.compile(r"[ \t\n\r\f\v]+")  # not \xa0: &nbsp; is kept until the line ends


_RAW_TEXT = frozenset({"script", "style"})  # their content is never markup
# One attribute: a name, and '=' with a quoted or bare value. A quote never closed is an ordinary
# character of a bare value. Possessive throughout: no backtracking, whatever the input.
_ATTRIBUTE = (r"""[\t\n\f\r /]*+([^\t\n\f\r />][^\t\n\f\r />=]*+)"""
              r"""(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+("[^"]*+"|'[^']*+'|[^\t\n\f\r >]*+))?+""")
_ONE_ATTRIBUTE = re.compile(_ATTRIBUTE)
# The next markup: a comment's start, a whole tag (its '>' missing when the input ends first), or
# the start of a doctype, processing instruction or bogus comment. Any other '<' is text.
_MARKUP = re.compile(
    r"<(?:(?P<comment>!--)"
    rf"|(?P<tag>/?[a-zA-Z][^\t\n\f\r />]*+)(?P<attrs>(?:{_ATTRIBUTE})*+)[\t\n\f\r /]*+(?P<close>>)?"
    r"|[!?/])")
_RAW_TEXT_END = {name: re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE) for name in _RAW_TEXT}
# a numeric reference of 8 or more digits names no character; int() refuses over 4,300 digits
_LONG_CHARREF = re.compile(r"&#(?:[xX][0-9a-fA-F]{8,}|[0-9]{8,});?")


def unescape(text: str) -> str:
    """Character references decoded (``html.unescape``, safe for any number of digits)."""
    if "&" not in text:
        return text
    return entities.unescape(_LONG_CHARREF.sub(_long_charref, text))


def _long_charref(found: re.Match[str]) -> str:
    digits = found.group().strip("&#;")
    hexadecimal = digits[:1] in ("x", "X")
    significant = (digits[1:] if hexadecimal else digits).lstrip("0") or "0"
    if len(significant) > 7:
        return "\ufffd"
    return f"&#{'x' if hexadecimal else ''}{significant};"


def attributes(text: str) -> dict[str, str]:
    """A tag's attributes (the text after its name) by lower-case name; the first of a name wins."""
    found: dict[str, str] = {}
    for attribute in _ONE_ATTRIBUTE.finditer(text):
        name, value = attribute.group(1).lower(), attribute.group(2) or ""
        if len(value) >= 2 and value[0] in "\"'" and value[-1] == value[0]:
            value = value[1:-1]
        found.setdefault(name, unescape(value))
    return found


class _Layout:
    """Collects the lines of text as the tokenizer (``_read``) reports tags and text."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []  # (quote depth, text)
        self.current: list[str] = []
        self.depth = 0
        self.skipping = 0
        self.pre = 0
        self.paragraph: list[bool] = []  # per open <p>: does it have a margin?

    def handle_starttag(self, tag: str, attrs: str) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag == "br":
            self._flush(always=True)
        elif tag == "blockquote":
            self._flush()
            self._blank()
            self.depth += 1
        elif tag == "p":
            margin = "msonormal" not in attributes(attrs).get("class", "").lower()
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
        if not self.current:  # most tags end no text: the cheap way
            if always:
                self.lines.append((self.depth, ""))
            return
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
            quoted = f"{'>' * min(depth, MAX_QUOTE_DEPTH)} {line}".strip() if depth else line
            if not line and out and out[-1] == quoted:
                continue  # one blank line at most, inside a quotation too
            out.append(quoted)
        return "\n".join(out).strip("\n")


def html_to_text(html: str) -> str:
    """Text a person would read in the rendered HTML (see the module's docstring)."""
    layout = _Layout()
    _read(html, layout)
    return layout.text()


def _read(html: str, layout: _Layout) -> None:
    """Tokenize ``html`` into the layout's handlers, in one pass."""
    index = 0
    while found := _MARKUP.search(html, index):
        start = found.start()
        if start > index:
            layout.handle_data(unescape(html[index:start]))
        if found["tag"]:
            after = _tag(html, found, layout)
        else:  # the end of a comment, or of a doctype, processing instruction or bogus comment
            terminator = "-->" if found["comment"] else ">"
            close = html.find(terminator, found.end())
            after = None if close < 0 else close + len(terminator)
        if after is None:  # never closed: the rest is text
            index = start
            break
        index = after
    if index < len(html):
        layout.handle_data(unescape(html[index:]))


def _tag(html: str, found: re.Match[str], layout: _Layout) -> int | None:
    """Report a tag that ``_MARKUP`` found; return where it ends, None if it runs to the end."""
    if found["close"] is None:
        return None
    name, after = found["tag"], found.end()
    if name[0] == "/":
        layout.handle_endtag(name[1:].lower())
        return after
    tag = name.lower()
    layout.handle_starttag(tag, found["attrs"])
    if html[after - 2] == "/":  # <br/>, <p/>: opened and closed, as html.parser has it
        layout.handle_endtag(tag)
    elif tag in _RAW_TEXT:
        content_end = _RAW_TEXT_END[tag].search(html, after)
        stop = content_end.start() if content_end else len(html)
        layout.handle_data(html[after:stop])
        return stop
    return after
