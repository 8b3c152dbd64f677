"""What a spooled message says before the database is asked: one of three frozen readings.

``Unreadable``: it cannot become a ticket (no parse, no sender): the quarantine keeps it.
``Returned``: a bounce; maild's own mail came back (or someone says it did).
``ToFile``: a message to thread and file, with its threading keys and the rules' decision.

Made by ``maild.read.read`` (parse, classify, rules: no database, no lock held); consumed by
``maild.core.plan``. A union instead of one class with optional fields: each stage can only
reach the fields its case has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from maild.core.kinds import QuarantineKind
from maild.core.members import member_numbers
from maild.core.threader import ThreadKeys
from maild.mail import Envelope, Parsed, Verdict

if TYPE_CHECKING:
    from maild.core.bounces import Bounce
    from maild.rules.model import Decision


@dataclass(frozen=True)
class Unreadable:
    envelope: Envelope
    kind: QuarantineKind
    reason: str
    sender: str
    subject: str = ""


@dataclass(frozen=True)
class Returned:
    envelope: Envelope
    parsed: Parsed
    verdict: Verdict
    sender: str
    bounce: Bounce | None
    outbox_id: int | None  # from the VERP address the bounce came back to: a row id (old tokens)
    outbox_token: str | None = None  # ... or the token stored on the row (``core.tokens.bounce_token``)


@dataclass(frozen=True)
class ToFile:
    envelope: Envelope
    parsed: Parsed
    verdict: Verdict
    sender: str
    keys: ThreadKeys
    decision: Decision
    numbers: tuple[str, ...] = field(init=False)  # the member numbers it mentions (``core.members``)

    def __post_init__(self) -> None:  # made with the reading: the reader process does it (``maild.read_ahead``)
        object.__setattr__(self, "numbers", member_numbers(self.parsed.subject, self.parsed.text))


Reading = Union[Unreadable, Returned, ToFile]
