"""The block-wise DATA reader against byte streams as clients send them."""

from __future__ import annotations

import asyncio

import pytest

from maild.intake.smtp_data import TooMuchData, read_data, unstuff


def stuffed(message: bytes) -> bytes:
    """What a client sends: dot-stuffed lines and the terminator (as smtplib does)."""
    lines = message.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines) + b".\r\n"


def read(stream: bytes, limit: int | None = None, reader_limit: int = 64, chunk: int = 7, after: bytes = b"") -> bytes:
    async def go() -> bytes:
        reader = asyncio.StreamReader(limit=reader_limit)
        data = stream + after
        for i in range(0, len(data), chunk):
            reader.feed_data(data[i : i + chunk])
        reader.feed_eof()
        result = await read_data(reader, limit)
        assert await reader.read() == after  # the session stays in step
        return result

    return asyncio.run(go())


MESSAGES = [
    b"Subject: x\r\n\r\nbody\r\n",
    b"Subject: dots\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\n.\r\nend\r\n",
    b".first line is a dot line\r\n\r\n",
    b"Subject: y\r\n\r\n" + b"a" * 500 + b"\r\n" + b"b\r\n" * 100,
    b"Subject: z\r\n\r\nno trailing dot line\r\n\r\n\r\n",
]


@pytest.mark.parametrize("message", MESSAGES)
@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_round_trip(message: bytes, chunk: int) -> None:
    assert read(stuffed(message), chunk=chunk, after=b"QUIT\r\n") == message


def test_empty_message() -> None:
    assert read(b".\r\n", after=b"RSET\r\n") == b""


def test_limit_reads_everything_then_refuses() -> None:
    message = b"Subject: big\r\n\r\n" + b"x" * 1000 + b"\r\n"
    with pytest.raises(TooMuchData):
        read(stuffed(message), limit=500, after=b"QUIT\r\n")
    assert read(stuffed(message), limit=len(message)) == message


def test_unstuff() -> None:
    assert unstuff(b"..a\r\n..\r\nb\r\n") == b".a\r\n.\r\nb\r\n"


def test_sentences_ending_in_a_dot_and_bare_lf_lines() -> None:
    message = b"Subject: x\n\nHei.\nKiitos.\r\nTerveisin.\r\n"
    assert read(stuffed(message), chunk=3) == message
    assert read(b"no final crlf.\r\n.\r\n") == b"no final crlf.\r\n"
