"""Reading SMTP DATA in blocks (RFC 5321 4.5.2), instead of aiosmtpd's line-by-line loop.

aiosmtpd awaits every line of a message separately, which costs more CPU than everything
else maild does with a message. Here the stream is read in blocks up to each ``.CRLF``;
one that starts a line is the terminator. Dot-stuffing is undone with one ``replace``.
"""

from __future__ import annotations

import asyncio

DOT_LINE = b".\r\n"


class TooMuchData(Exception):
    """The message exceeded the size limit; the rest of it was read and discarded."""


async def read_data(reader: asyncio.StreamReader, limit: int | None) -> bytes:
    """The message after ``354``, un-dot-stuffed, with its final CRLF; without the terminator.

    Over ``limit`` the data is still read to its end (so the session stays in step) but
    not kept, and ``TooMuchData`` is raised.
    """
    blocks: list[bytes] = []
    size = 0
    tail = b"\r\n"  # the start of the data counts as the start of a line
    allowed = None if limit is None else limit + len(DOT_LINE)
    while True:
        try:
            block = await reader.readuntil(DOT_LINE)
            found = True
        except asyncio.LimitOverrunError as overrun:  # no ".\r\n" within the reader's limit yet
            block = await reader.readexactly(overrun.consumed)
            found = False
        size += len(block)
        if allowed is None or size <= allowed:
            blocks.append(block)
        else:
            blocks.clear()  # over the limit: drain, keep nothing
        seen = tail + block
        if found and seen[-5:-3] == b"\r\n":
            break
        tail = seen[-2:]
    if allowed is not None and size > allowed:
        raise TooMuchData()
    return unstuff(b"".join(blocks)[: -len(DOT_LINE)])


def unstuff(data: bytes) -> bytes:
    """Remove the dot a sender put before every line that starts with a dot."""
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\r\n.", b"\r\n")
