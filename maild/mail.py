"""Frozen values passed between the stages of the intake pipeline.

receive -> spool (raw, durable) -> parse (``Parsed``) -> classify (``Verdict``)
-> thread -> rules (``Decision``) -> persist.
Nothing here does I/O; every stage gets and returns one of these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Source = Literal["smtp", "imap", "pipe", "replay", "web"]
MachineKind = Literal["normal", "auto_reply", "bounce", "list", "loop"]


@dataclass(frozen=True)
class Envelope:
    """What the transport told us, beside the message itself.

    ``mail_from`` is ``""`` for the null sender (``MAIL FROM:<>``) and ``None``
    when the transport does not know it (a pipe without ``-f``, IMAP).
    """

    source: Source
    mail_from: str | None = None
    recipients: tuple[str, ...] = ()
    mailbox: str | None = None  # IMAP mailbox name, for the record


@dataclass(frozen=True)
class Attachment:
    """An attachment as parsed. ``content`` is the bytes, or for an attachment too big to hold,
    a function that gives them a chunk at a time (decoding them again from the raw message at
    each call); read it with ``chunks``. ``content_id``: the part's Content-ID, which an HTML
    part refers to as ``cid:...`` to show it inline. Two attachments are equal when their names, types,
    sizes and SHA-256 are."""

    filename: str
    content_type: str
    size: int
    sha256: str
    content: bytes | Callable[[], Iterator[bytes]] = field(repr=False, compare=False)
    content_id: str = field(default="", compare=False)  # without <>: an inline part's, for ``cid:`` in the HTML

    def chunks(self) -> Iterator[bytes]:
        if isinstance(self.content, bytes):
            yield self.content
        else:
            yield from self.content()

    @property
    def data(self) -> bytes:
        """The whole content in memory: ``chunks`` does not hold it."""
        return self.content if isinstance(self.content, bytes) else b"".join(self.content())


@dataclass(frozen=True)
class Parsed:
    """The readable parts of one message. Header names in ``headers`` are lower-case; values are
    unfolded and RFC 2047-decoded, except identifiers and trace headers, which are as sent.
    Addresses (``from_addr``, ``to``, ...) are read from the raw headers, never from ``headers``."""

    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    from_addr: str  # lower-case address, "" when missing
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    date: datetime | None
    headers: dict[str, tuple[str, ...]]
    text: str
    html: str | None
    attachments: tuple[Attachment, ...] = ()
    defects: tuple[str, ...] = ()
    # as written (no RFC 2047 decoding), topmost first: syntax for the staff proof, not text
    authentication_results: tuple[str, ...] = ()
    cleaned: tuple[str, ...] = ()  # what parsing cleaned or left out for control characters (docs/mail.md#recipients)
    fingerprint: str = ""  # identity of the whole content below the trace headers (docs/mail.md#threading)

    def header(self, name: str) -> str | None:
        """First value of a header, or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None


@dataclass(frozen=True)
class Verdict:
    """What kind of sender wrote the message (docs/mail.md#machines), and why we think so."""

    kind: MachineKind
    reason: str = ""

    @property
    def is_machine(self) -> bool:
        return self.kind != "normal"
