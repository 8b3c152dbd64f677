"""IMAP acts on exactly the UIDs it stored (docs/guarantees.md), against a real Dovecot behind a proxy
that leaves one message out of a FETCH reply, as a server may."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from typing import BinaryIO

import pytest

from tests.integration.dovecot import Dovecot, Proxy
from tests.integration.test_imap import subjects, tickets_when, wait_for
from tests.mailgen import mail

LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot.start()
    yield server
    server.stop()


def read_response(stream: BinaryIO) -> bytes:
    """One whole server response: its line and every literal in it (``{n}`` then n bytes)."""
    response = stream.readline()
    while (literal := LITERAL.search(response)) is not None:
        response += stream.read(int(literal[1]))
        response += stream.readline()
    return response


class OmittingProxy(Proxy):
    """Passes the IMAP conversation through, except the first ``times`` responses (every one
    when None) that carry the message of ``uid``: the server's reply to UID FETCH lacks it."""

    def __init__(self, target_port: int, uid: int, times: int | None = 1) -> None:
        self.pattern = re.compile(rb"^\* \d+ FETCH \(.*\bUID %d\b" % uid, re.DOTALL)
        self.times = times
        self.omitted = 0
        super().__init__(target_port)

    def relay(self, client: socket.socket, server: socket.socket, number: int) -> None:
        threading.Thread(target=self._requests, args=(client, server), daemon=True).start()
        threading.Thread(target=self._responses, args=(server, client), daemon=True).start()

    @staticmethod
    def _requests(client: socket.socket, server: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                server.sendall(data)
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_WR)

    def _responses(self, server: socket.socket, client: socket.socket) -> None:
        stream = server.makefile("rb")
        with contextlib.suppress(OSError):
            while response := read_response(stream):
                if self._omits(response):
                    self.omitted += 1
                    continue
                client.sendall(response)
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.close()

    def _omits(self, response: bytes) -> bool:
        wanted = self.times is None or self.omitted < self.times
        return wanted and b"BODY[]" in response and self.pattern.match(response) is not None


def test_a_uid_left_out_of_a_fetch_reply_is_neither_deleted_nor_skipped(dovecot: Dovecot, daemon) -> None:  # type: ignore[no-untyped-def]
    box = dovecot.add_user()
    dovecot.append_many(box, [mail(subject=f"Viesti {i}") for i in (1, 2, 3)])  # UIDs 1, 2, 3
    proxy = OmittingProxy(dovecot.port, uid=2)
    try:
        running = daemon(extra=dovecot.imap_toml(box, port=proxy.port, after="delete"))
        listed = tickets_when(running.config, 3)  # UID 2 comes with the next sync
    finally:
        proxy.close()
    assert sorted(t["subject"] for t in listed) == ["Viesti 1", "Viesti 2", "Viesti 3"]
    assert proxy.omitted == 1
    assert "the server sent no message for UID 2; fetched again later" in running.log.read_text()
    wait_for(lambda: dovecot.messages(box) == [])


def test_a_uid_left_out_stays_in_the_folder_until_it_is_stored(dovecot: Dovecot, daemon) -> None:  # type: ignore[no-untyped-def]
    """The server leaves UID 2 out for good (a broken message, say): deleted are 1 and 3 only,
    also after a restart, which once applied the after-action to every UID up to the highest."""
    box = dovecot.add_user()
    dovecot.append_many(box, [mail(subject=f"Viesti {i}") for i in (1, 2, 3)])
    proxy = OmittingProxy(dovecot.port, uid=2, times=None)
    try:
        running = daemon(extra=dovecot.imap_toml(box, port=proxy.port, after="delete"))
        tickets_when(running.config, 2)
        wait_for(lambda: len(dovecot.messages(box)) == 1)
        assert running.stop() == 0
        asked = proxy.omitted
        running.start()
        wait_for(lambda: proxy.omitted > asked or not dovecot.messages(box))  # asked again, or (once) deleted
    finally:
        proxy.close()
    assert subjects(dovecot.messages(box)) == ["Viesti 2"]
