"""Inline images of a staff answer (docs/mail.md#inline-images): which of the files of a
staff member's reply are pictures in their answer, which belong to the quotation, and the
HTML that shows them to the member. Pure: no I/O.

maild relays the staff member's answer as text (the quotation, the commands and the internal
``--- maild ---`` block cut off), never their HTML: cutting a quotation out of HTML reliably
is not possible, and what stays in it would leak. So the HTML the member gets is written from
the relayed text, with each picture where the writer's client marked it in its text version:
``[cid:image001.png@01DB...]`` (Outlook) or ``[image: name.png]`` (Gmail). A client that marks
nothing (Thunderbird, Apple Mail) has its pictures taken from its HTML above the quotation and
shown below the text.
"""

from __future__ import annotations

import html as entities
import re
from collections.abc import Sequence
from dataclasses import dataclass

_CID_MARKER = re.compile(r"\[cid:([^\]\s]{1,250})\]")
_IMAGE_MARKER = re.compile(r"\[image: ([^\]\n]{1,255})\]")
_MARKER = re.compile(rf"{_CID_MARKER.pattern}|{_IMAGE_MARKER.pattern}")
# where clients start the quotation in their HTML: Thunderbird, Gmail, Outlook (web and desktop)
# (possessive: a long run of spaces is read once, whatever follows it)
_QUOTE_START = re.compile(
    r"<blockquote|moz-cite-prefix|gmail_quote|divRplyFwdMsg|appendonsend|<hr[\s/>]"
    r"|border-top:\s*+solid\s++#(?:E1E1E1|B5C4DF)", re.IGNORECASE)
_CID_REFERENCE = re.compile(r"""src\s*+=\s*+["']?+\s*+cid:([^"'\s>]{1,250})""", re.IGNORECASE)


@dataclass(frozen=True)
class Image:
    """A file of the reply that can be shown inline: a picture with a Content-ID."""

    content_id: str
    filename: str


@dataclass(frozen=True)
class Choice:
    """``inline``: the Content-IDs of the pictures of the answer; ``quoted``: those that only
    the quotation shows (not relayed, like the quotation's text). Every other file is an
    ordinary attachment."""

    inline: tuple[str, ...]
    quoted: tuple[str, ...]


def choose(answer: str, html: str | None, images: Sequence[Image]) -> Choice:
    """Which ``images`` the relayed ``answer`` shows; ``html``: the reply's own HTML part."""
    by_id = {image.content_id: image for image in images}
    by_name = {image.filename: image.content_id for image in reversed(images)}
    marked = [found.group(1) if found.group(1) else by_name.get(found.group(2), "")
              for found in _MARKER.finditer(answer)]
    if marked:
        in_answer = [cid for cid in marked if cid in by_id]
    else:
        start = _QUOTE_START.search(html or "")
        in_answer = [cid for cid in _CID_REFERENCE.findall((html or "")[:start.start() if start else None])
                     if cid in by_id]
    referenced = set(_CID_REFERENCE.findall(html or "")) | set(_CID_MARKER.findall(answer))
    inline = tuple(dict.fromkeys(in_answer))
    quoted = tuple(cid for cid in by_id if cid in referenced and cid not in inline)
    return Choice(inline, quoted)


def answer_html(answer: str, images: Sequence[Image]) -> str:
    """The relayed ``answer`` as HTML, each of ``images`` where a marker put it, the rest
    below the text. Everything from the text is escaped."""
    by_id = {image.content_id: image for image in images}
    by_name = {image.filename: image for image in reversed(images)}
    shown: set[str] = set()

    def picture(found: re.Match[str]) -> str:
        image = by_id.get(found.group(1)) if found.group(1) else by_name.get(found.group(2))
        if image is None:
            return entities.escape(found.group())
        shown.add(image.content_id)
        return _img(image)

    lines = []
    for line in answer.splitlines():
        pieces, at = [], 0
        for found in _MARKER.finditer(line):
            pieces += [entities.escape(line[at:found.start()]), picture(found)]
            at = found.end()
        pieces.append(entities.escape(line[at:]))
        lines.append("".join(pieces))
    body = "<br>\n".join(lines)
    rest = "".join(f"\n<p>{_img(image)}</p>" for image in images if image.content_id not in shown)
    return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
            f'<body><div style="font-family: sans-serif">{body}</div>{rest}\n</body></html>\n')


def _img(image: Image) -> str:
    return (f'<img src="cid:{entities.escape(image.content_id)}" alt="{entities.escape(image.filename)}"'
            ' style="max-width: 100%">')
