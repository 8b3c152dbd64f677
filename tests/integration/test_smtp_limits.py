"""SMTP resource limits of a real `maild run` (docs/guarantees.md), over real sockets: recipients per
message, sessions at once, and the idle timeout."""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Daemon, MakeInstance, free_port
from tests.integration.test_smtp import tickets, wait_for
from tests.mailgen import mail


@pytest.fixture
def limited(make_instance: MakeInstance, sqlite_url: str) -> Iterator[Callable[[str], Daemon]]:
    """`maild run` with these lines added to its ``[smtp]`` section; stopped (exit 0) at teardown."""
    started: list[Daemon] = []

    def start(smtp_lines: str) -> Daemon:
        port = free_port()
        config = make_instance(sqlite_url, port=port)
        config.write_text(config.read_text().replace("[smtp]\n", f"[smtp]\n{smtp_lines}"))
        started.append(Daemon(config, port).start())
        return started[-1]

    yield start
    for running in started:
        assert running.stop() == 0, running.log.read_text()


def banner(sock: socket.socket) -> bytes:
    """The server's first reply line."""
    sock.settimeout(10)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    return data


def test_recipients_beyond_the_limit_get_452_and_the_message_keeps_the_first_hundred(daemon) -> None:  # type: ignore[no-untyped-def]
    running = daemon()  # max_recipients: the default, 100
    with smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
        client.ehlo()
        client.mail("matti@example.fi")
        codes = [client.rcpt(f"jasen{i}@liitto.fi")[0] for i in range(150)]
        assert codes == [250] * 100 + [452] * 50
        assert client.data(mail(subject="Sadalle"))[0] == 250
        client.mail("matti@example.fi")  # a new transaction starts a new count
        assert client.rcpt("jasenpalvelu@liitto.fi")[0] == 250
        client.rset()
    assert [t["subject"] for t in wait_for(lambda: tickets(running.config))] == ["Sadalle"]


def test_a_connection_beyond_the_limit_gets_421_and_a_freed_place_is_given_again(limited) -> None:  # type: ignore[no-untyped-def]
    running = limited("max_connections = 3\n")
    time.sleep(0.2)  # the start-up probe's connection is closed
    held = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(3)]
    try:
        assert all(banner(sock).startswith(b"220 ") for sock in held)
        with socket.create_connection(("127.0.0.1", running.port)) as refused:
            assert banner(refused).startswith(b"421 4.3.2")
            assert refused.recv(1024) == b""  # and closed
        held.pop().close()
        time.sleep(0.2)  # the server sees the close
        with smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
            client.sendmail("matti@example.fi", ["jasenpalvelu@liitto.fi"], mail(subject="Paikka vapautui"))
    finally:
        for sock in held:
            sock.close()
    assert "refused, 3 SMTP sessions open already" in running.log.read_text()


def test_an_idle_session_is_closed_but_a_slow_message_still_arriving_is_not(limited) -> None:  # type: ignore[no-untyped-def]
    running = limited("timeout_seconds = 1\n")
    with socket.create_connection(("127.0.0.1", running.port)) as idle:
        assert banner(idle).startswith(b"220 ")
        started = time.monotonic()
        assert banner(idle).startswith(b"421 4.4.2")
        assert idle.recv(1024) == b""
        assert 0.9 < time.monotonic() - started < 5
    with smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
        client.ehlo()
        client.mail("matti@example.fi")
        client.rcpt("jasenpalvelu@liitto.fi")
        client.putcmd("data")
        assert client.getreply()[0] == 354
        head, _, body = mail(subject="Hidas yhteys").replace(b"\n", b"\r\n").partition(b"\r\n\r\n")
        client.send(head + b"\r\n\r\n")
        for _ in range(6):  # 3 s of data in all, never 1 s without a byte
            time.sleep(0.5)
            client.send(b"Rivi kerrallaan.\r\n")
        client.send(body + b".\r\n")
        assert client.getreply()[0] == 250
    assert [t["subject"] for t in wait_for(lambda: tickets(running.config))] == ["Hidas yhteys"]
