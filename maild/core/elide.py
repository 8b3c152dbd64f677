"""A big message parsed in small memory: long runs of base64 lines are kept out of what the
stdlib parser sees, and read again from the raw message when they are needed.

The stdlib parser keeps every body line as a str and joins them at the end of the part: an
18 MiB attachment (24 MB of base64, 330,000 lines) costs it about 70 MB at once, beside the raw
bytes. Here every run of at least ``ELIDE_AT`` bytes of whole lines made of base64 characters
alone (``A-Z a-z 0-9 + / =``, each line ended by LF or CRLF) becomes one stand-in line of letters
and digits. Such a line is never a header line (it has no colon), a boundary (no leading
``--``), a blank line or a continuation (no leading space), and to the parser many body lines
and one body line are the same: the structure it finds in the skeleton is the one it would find
in the whole message. Only payloads, preambles and epilogues can hold stand-ins, and
``Skeleton.expand`` puts back exactly the text the parser would have kept (its text layer makes
every line end LF; the line end before a boundary may be cut off, and then the stand-in's is).

The raw message is bytes in memory or a file; a file is read a chunk at a time, when needed.
"""

from __future__ import annotations

import binascii
import email.message
import io
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ELIDE_AT = 64 * 1024  # a shorter run costs the parser little; a longer one is read from the raw message
CHUNK = 1 << 18  # read and decoded this much at a time
READ_WHOLE = CHUNK  # a file up to this size is read whole: most mail, one read
_LONG_LINE = 4 * CHUNK  # a line longer than this (no line break) is never elided, nor held by the scan
_RUN = re.compile(rb"(?m)^(?:[A-Za-z0-9+/=]+\r?\n)+")
_NOT_BASE64 = bytes(c for c in range(256) if not re.fullmatch(rb"[A-Za-z0-9+/=]", bytes([c])))


@dataclass(frozen=True)
class Raw:
    """The raw message: ``data`` in memory, or the file at ``path`` (immutable, as the raw store's are)."""

    size: int
    data: bytes | None = None
    path: Path | None = None

    @classmethod
    def of(cls, raw: bytes | os.PathLike[str]) -> Raw:
        if isinstance(raw, (bytes, bytearray, memoryview)):
            data = bytes(raw) if not isinstance(raw, bytes) else raw
            return cls(len(data), data=data)
        path = Path(raw)
        size = path.stat().st_size
        if size <= READ_WHOLE:
            return cls.of(path.read_bytes())
        return cls(size, path=path)

    def chunks(self, start: int = 0, end: int | None = None, size: int | None = None) -> Iterator[bytes]:
        """The bytes from ``start`` to ``end``, ``size`` (default ``CHUNK``) at a time."""
        size = size or CHUNK
        end = self.size if end is None else min(end, self.size)
        if self.data is not None:
            view = memoryview(self.data)
            for at in range(start, end, size):
                yield bytes(view[at : min(at + size, end)])
            return
        assert self.path is not None
        with self.path.open("rb") as file:
            file.seek(start)
            while start < end:
                piece = file.read(min(size, end - start))
                if not piece:
                    raise ValueError(f"{self.path}: shorter than when it was read")
                start += len(piece)
                yield piece

    def read(self, start: int, end: int) -> bytes:
        if self.data is not None:
            return self.data[start:end]
        return b"".join(self.chunks(start, end))

    def is_blank(self) -> bool:
        """Nothing but whitespace (as ``bytes.strip`` sees it)."""
        return not any(piece.strip() for piece in self.chunks())


def base64_runs(raw: Raw, at_least: int) -> list[tuple[int, int]]:
    """(start, end) of every run of whole base64-only lines of ``at_least`` bytes or more, in order.

    The message is scanned a line-aligned chunk at a time; only offsets are kept."""
    runs: list[tuple[int, int]] = []
    start = end = 0
    base, carry, skipping = 0, b"", False
    for chunk in raw.chunks():
        if skipping:  # the rest of a line too long to hold: it ends any run
            newline = chunk.find(b"\n")
            if newline < 0:
                base += len(chunk)
                continue
            chunk, base, skipping = chunk[newline + 1 :], base + newline + 1, False
        block = carry + chunk if carry else chunk
        cut = block.rfind(b"\n") + 1
        for found in _RUN.finditer(block, 0, cut):
            at, to = base + found.start(), base + found.end()
            if at != end:
                if end - start >= at_least:
                    runs.append((start, end))
                start = at
            end = to
        carry, base = block[cut:], base + cut
        if len(carry) > _LONG_LINE:
            base, carry, skipping = base + len(carry), b"", True
    if end - start >= at_least:
        runs.append((start, end))
    return runs


class _Pieces(io.RawIOBase):
    """A read-only stream of byte pieces, for the stdlib parser."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._left:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._left = memoryview(piece)
        count = min(len(buffer), len(self._left))
        buffer[:count] = self._left[:count]
        self._left = self._left[count:]
        return count


@dataclass(frozen=True)
class Skeleton:
    """The raw message with its long base64 runs each replaced by a stand-in line."""

    raw: Raw
    runs: tuple[tuple[int, int], ...]
    token: str  # random: no message can hold a stand-in of its own

    @classmethod
    def of(cls, raw: Raw, elide_at: int = ELIDE_AT) -> Skeleton:
        runs = tuple(base64_runs(raw, elide_at)) if raw.size >= elide_at else ()
        return cls(raw, runs, f"MAILDelided{secrets.token_hex(8)}x" if runs else "")

    def _stand_in(self, index: int) -> str:
        return f"{self.token}{index:08d}"

    def stream(self) -> io.BufferedIOBase:
        """The skeleton as a binary stream (never whole in memory when the message is a file)."""
        if not self.runs and self.raw.data is not None:
            return io.BytesIO(self.raw.data)  # shares the bytes, no copy
        return io.BufferedReader(_Pieces(self._skeleton_pieces()), buffer_size=1 << 16)

    def _skeleton_pieces(self) -> Iterator[bytes]:
        at = 0
        for index, (start, end) in enumerate(self.runs):
            yield from self.raw.chunks(at, start)
            yield self._stand_in(index).encode("ascii") + b"\n"
            at = end
        yield from self.raw.chunks(at)

    def holds(self, text: str) -> bool:
        return bool(self.runs) and self.token in text

    def _pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.token) + r"(\d{8})")

    def expand(self, text: str) -> str:
        """``text`` with every stand-in replaced by the run's text as the parser keeps it:
        LF line ends, and the run's last line end left to the stand-in's."""
        if not self.holds(text):
            return text

        def run_text(found: re.Match[str]) -> str:
            start, end = self.runs[int(found.group(1))]
            run = self.raw.read(start, end)
            run = run[:-2] if run.endswith(b"\r\n") else run[:-1]
            return run.replace(b"\r\n", b"\n").decode("ascii")

        return self._pattern().sub(run_text, text)

    def expand_parts(self, message: email.message.Message, keep: Iterable[email.message.Message] = ()) -> None:
        """Put the runs back into every part of ``message`` but those in ``keep``, whose
        payloads are read with ``pieces`` instead."""
        if not self.runs:
            return
        kept = {id(part) for part in keep}
        for part in message.walk():
            for name in ("preamble", "epilogue"):
                value = getattr(part, name, None)
                if isinstance(value, str) and self.holds(value):
                    setattr(part, name, self.expand(value))
            payload = part._payload  # the stored text as is: get_payload() may decode it
            if id(part) not in kept and isinstance(payload, str) and self.holds(payload):
                part.set_payload(self.expand(payload))

    def pieces(self, text: str) -> Iterator[bytes]:
        """``text`` as bytes, its stand-ins read from the raw message a chunk at a time (with the
        line ends as sent: for base64, which skips them)."""
        at = 0
        for found in self._pattern().finditer(text):
            yield text[at : found.start()].encode("ascii")
            start, end = self.runs[int(found.group(1))]
            yield from self.raw.chunks(start, end)
            at = found.end()
        yield text[at:].encode("ascii")


def decode_base64(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """What ``binascii.a2b_base64`` makes of the pieces joined, a piece at a time; it raises
    ``binascii.Error`` where that would.

    a2b_base64 skips every byte outside the alphabet and the pad, so those are dropped first;
    it stops at the first complete pad, so from the first ``=`` on the rest is decoded in one
    call (in a well-formed attachment, the last few bytes). Before that, pieces are decoded in
    whole quads, which leaves it in the state it starts in."""
    carry = b""
    tail: list[bytes] | None = None
    for piece in pieces:
        piece = piece.translate(None, _NOT_BASE64)
        if tail is not None:
            tail.append(piece)
            continue
        if b"=" in piece:
            tail = [carry, piece]
            continue
        piece = carry + piece if carry else piece
        cut = len(piece) - len(piece) % 4
        carry = piece[cut:]
        if cut:
            yield binascii.a2b_base64(piece[:cut] if cut < len(piece) else piece)
    rest = b"".join(tail) if tail is not None else carry
    if rest:
        yield binascii.a2b_base64(rest)
