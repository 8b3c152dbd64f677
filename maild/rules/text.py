"""Text normalisation shared by rule patterns (at load) and message fields (per decision).

Both sides go through :func:`normalise`, so a pattern written in ``rules.yaml``
and the text of a message compare in the same form.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maild.rules.model import Facts

MAX_TEXT_CHARS = 100_000
"""Only the first 100,000 characters of a field (in practice: the body) are matched.

Python's ``re`` has no timeout, so bounding the input bounds the time any rule,
regex or not, can take on one message. Mail whose distinguishing words come
after 100 kB of text is not something routing rules can sensibly judge anyway.
"""


def normalise(text: str) -> str:
    """Casefold, compose (NFC) and collapse whitespace.

    ``EROAMINEN``, ``Eroaminen`` and a decomposed ``a`` + U+0308 all become the
    same string. Every run of whitespace (line breaks and the no-break spaces
    that Outlook likes included) becomes one space, so a phrase such as
    ``säga upp mitt medlemskap`` matches across a wrapped line. The Turkish
    dotless ``ı`` is read as ``i``, as ``re.IGNORECASE`` already does; then a
    casefolded literal of a regex is exactly what its matches contain, which
    :class:`~maild.rules.model.PrefilteredRegex` relies on.
    """
    folded = unicodedata.normalize("NFC", text[:MAX_TEXT_CHARS].casefold()).replace("\u0131", "i")
    return " ".join(folded.split())


class FactsView(dict[str, tuple[str, ...]]):
    """The normalised fields of one message, each computed on first use and then kept.

    Keys are ``from``, ``to``, ``subject``, ``body``, ``channel``, ``header:<lower-case name>`` and
    ``member:<field>`` (a register field of the sender, matched by name case-insensitively).
    One view lives for one ``decide()`` call, so a field is normalised at most once
    however many rules look at it, and never if no rule does.
    """

    __slots__ = ("facts",)

    def __init__(self, facts: Facts) -> None:
        super().__init__()
        self.facts = facts

    def __missing__(self, key: str) -> tuple[str, ...]:
        values = self[key] = tuple(normalise(value) for value in self._raw(key))
        return values

    def _raw(self, key: str) -> tuple[str, ...]:
        facts = self.facts
        if key.startswith("header:"):
            return tuple(facts.headers.get(key[len("header:") :], ()))
        if key.startswith("member:"):
            value = facts.member.field(key[len("member:") :]) if facts.member is not None else None
            return () if value is None else (value,)
        return {
            "from": (facts.from_addr,),
            "to": facts.recipients,
            "subject": (facts.subject,),
            "body": (facts.body,),
            "channel": (facts.channel,),
        }[key]
