"""atheris fuzz target: the block-wise SMTP DATA reader (``maild.intake.smtp_data``).

Differential: for any byte stream, any StreamReader buffer limit, any way the bytes arrive in
chunks and any size limit, ``read_data`` must give what a plain line-by-line reading of
RFC 5321 4.5.2 gives (the lines before the first ``.`` line, un-dot-stuffed, or
``TooMuchData`` when they are over the limit), and leave exactly the bytes after the
terminator in the reader, so the session stays in step. A stream without a terminator ends
in ``IncompleteReadError`` (the client went away).

To make line structure likely, input byte 0x01 stands for CRLF and 0x02 for CRLF + ".".

Long run::

    mkdir -p /tmp/fuzz-data
    python tests/fuzz/fuzz_smtp_data.py /tmp/fuzz-data -max_total_time=3600 -artifact_prefix=/tmp/fuzz-data-
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout, when run as a script

with atheris.instrument_imports():
    from maild.intake.smtp_data import TooMuchData, read_data

from tests.fuzz.harness import fuzz  # noqa: E402

LOOP = asyncio.new_event_loop()


def expected(stream: bytes, limit: int | None) -> tuple[bytes | None, bytes | None]:
    """(message or None when over the limit, bytes after the terminator); (None, None) when
    the stream has no terminator."""
    seen = b"\r\n" + stream  # the data starts at the start of a line
    end = seen.find(b"\r\n.\r\n")
    if end < 0:
        return None, None
    body, rest = seen[2 : end + 2], seen[end + 5 :]
    if limit is not None and len(body) > limit:
        return None, rest
    lines = body.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines), rest


async def actual(stream: bytes, chunk: int, reader_limit: int, limit: int | None) -> tuple[bytes | None, bytes | None]:
    reader = asyncio.StreamReader(limit=reader_limit)
    for start in range(0, len(stream), chunk):
        reader.feed_data(stream[start : start + chunk])
    reader.feed_eof()
    try:
        message: bytes | None = await read_data(reader, limit)
    except TooMuchData:
        message = None
    except asyncio.IncompleteReadError:
        return None, None
    return message, await reader.read()


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    chunk = provider.ConsumeIntInRange(1, 64)
    reader_limit = provider.ConsumeIntInRange(5, 128)
    limit = provider.ConsumeIntInRange(-1, 256)
    stream = provider.ConsumeBytes(provider.remaining_bytes()).replace(b"\x01", b"\r\n").replace(b"\x02", b"\r\n.")
    size_limit = None if limit < 0 else limit
    got = LOOP.run_until_complete(actual(stream, chunk, reader_limit, size_limit))
    want = expected(stream, size_limit)
    assert got == want, f"stream={stream!r} chunk={chunk} reader_limit={reader_limit} limit={size_limit}: {got!r} != {want!r}"


if __name__ == "__main__":
    fuzz(one_input)
