"""IMAP polling against a real Dovecot on loopback (one per module) and a real `maild run`.

Mail reaches a mailbox by APPEND from Python's imaplib, the way another mail client puts it
there; maild fetches it, stores it, and only then moves, flags or deletes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import re
import signal
import smtplib
import socket
import sqlite3
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from maild.config import Imap
from maild.intake.imap import (
    Backoff,
    Poller,
    by_size,
    envelope_recipients,
    imap_utf7,
    parse_bodies,
    parse_search,
    uid_set,
)
from maild.intake.imap_state import FolderState, load_state, save_state
from maild.intake.spool import GroupCommitter, RawStore
from maild.store import db
from tests.conftest import free_port
from tests.integration.dovecot import Dovecot, Proxy, Stored
from tests.mailgen import mail

UNDISCLOSED = "undisclosed-recipients:;"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot.start()
    yield server
    server.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def sql(url: str, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)) as conn:
        return conn.execute(query).fetchall()


def stored(url: str) -> int:
    """Messages durably stored from IMAP (spool rows), processed or not."""
    return sql(url, "select count(*) from inbound where source = 'imap'")[0][0]


def processed(url: str, total: int) -> bool:
    """All ``total`` spool rows exist and none is still waiting for the pipeline."""
    return sql(url, "select count(*), sum(state = 'pending') from inbound")[0] == (total, 0)


def database_of(config: Path) -> str:
    """The SQLite database of an instance made by the ``daemon`` fixture (its ``sqlite_url``)."""
    return f"sqlite:///{config.parent.parent}/maild.db"


def tickets(config: Path) -> list[dict[str, Any]]:
    """Tickets read from the database (cheaper than starting `maild tickets list`); ``message_count``
    counts the mail received, not acknowledgements or notifications sent."""
    rows = sql(database_of(config), "select t.subject, t.queue, count(m.id) from tickets t left join messages m "
                                    "on m.ticket_id = t.id and m.direction = 'in' group by t.id")
    return [{"subject": subject, "queue": queue, "message_count": count} for subject, queue, count in rows]


def tickets_when(config: Path, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    return wait_for(lambda: (lambda found: found if len(found) >= count else None)(tickets(config)), timeout)


def subject_of(raw: bytes) -> str:
    return str(email.message_from_bytes(raw, policy=email.policy.default)["subject"])


def subjects(messages: list[Stored]) -> list[str]:
    return sorted(subject_of(message.raw) for message in messages)


def send_smtp(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("matti@example.fi", ["jasenpalvelu@liitto.fi"], raw)


# --- the adapter's small pieces -------------------------------------------------------------


@pytest.mark.parametrize(
    ("uids", "expected"),
    [([1], "1"), ([1, 2, 3, 7], "1:3,7"), ([9, 3, 4, 10], "3:4,9:10"), ([5, 7, 9], "5,7,9")],
)
def test_uid_set_is_compact(uids: list[int], expected: str) -> None:
    assert uid_set(uids) == expected


def test_batches_are_bounded_by_bytes_and_a_big_message_goes_alone() -> None:
    sizes = {1: 400, 2: 400, 3: 5000, 4: 100, 6: 100}  # 5 vanished since the search
    assert by_size([1, 2, 3, 4, 5, 6], sizes, limit=1000) == [[1, 2], [3], [4, 6]]


@pytest.mark.parametrize(
    ("name", "encoded"),
    [("INBOX", "INBOX"), ("Käsitelty", "K&AOQ-sitelty"), ("A&B", "A&-B"), ("Päätetyt/Öljy", "P&AOQA5A-tetyt/&ANY-ljy")],
)
def test_folder_names_are_modified_utf7(name: str, encoded: str) -> None:
    assert imap_utf7(name) == encoded


def test_envelope_recipients_come_from_delivery_headers_then_the_mailbox() -> None:
    raw = mail(headers={"Delivered-To": "Kirjaamo@Liitto.fi", "X-Original-To": "Laskutus <laskutus@liitto.fi>"})
    raw += b"\r\nDelivered-To: body@liitto.fi\r\n"  # not a header: after the blank line
    assert envelope_recipients(raw, "jasenpalvelu@liitto.fi") == (
        "kirjaamo@liitto.fi", "laskutus@liitto.fi", "jasenpalvelu@liitto.fi",
    )
    assert envelope_recipients(mail(), "jasenpalvelu") == ()


def test_fetch_and_search_responses_are_read_as_aioimaplib_delivers_them() -> None:
    lines = [
        b"1 FETCH (UID 7 BODY[] {5}", bytearray(b"hello"), b")",
        b"2 FETCH (FLAGS (\\Seen))",  # an unsolicited flag change in between
        b"3 FETCH (BODY[] {2}", bytearray(b"hi"), b" UID 9)",
        b"Fetch completed.",
    ]
    assert parse_bodies(lines) == [(7, b"hello"), (9, b"hi")]
    assert parse_search([b"3 12 4", b"Search completed."]) == [3, 4, 12]
    assert parse_search([b"", b"Search completed."]) == []


def test_backoff_grows_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(1.0, 8.0)
    delays = [backoff.next() for _ in range(6)]
    for delay, ceiling in zip(delays, [1, 2, 4, 8, 8, 8]):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next() <= 1


def test_folder_state_round_trip_and_32_bit_uidvalidity(db_url: str) -> None:
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        assert load_state(engine, "jasenpalvelu", "INBOX") is None
        save_state(engine, "jasenpalvelu", "INBOX", FolderState(4_294_967_295, 12))
        save_state(engine, "jasenpalvelu", "Arkisto", FolderState(1, 1))
        save_state(engine, "jasenpalvelu", "INBOX", FolderState(4_294_967_295, 4_294_967_290))
        assert load_state(engine, "jasenpalvelu", "INBOX") == FolderState(4_294_967_295, 4_294_967_290)
        assert load_state(engine, "jasenpalvelu", "Arkisto") == FolderState(1, 1)
    finally:
        engine.dispose()


# --- a real maild against a real Dovecot ----------------------------------------------------


def test_tls_starttls_and_plain_mailboxes_are_polled_side_by_side(dovecot: Dovecot, daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    tls, starttls, plain, refused = (dovecot.add_user() for _ in range(4))
    config = (
        dovecot.imap_toml(tls, name="tls", security="tls")
        + dovecot.imap_toml(starttls, name="starttls", security="starttls")
        + dovecot.imap_toml(plain, name="plain", security="none")
        + dovecot.imap_toml(refused, name="refused", password="väärä")
        + dovecot.imap_toml(plain, name="down", port=free_port())  # nothing listens there
    )
    for account in (tls, starttls, plain):
        dovecot.append(account, mail(subject=f"Ennen {account.username}"))
    running = daemon(extra=config)
    for account in (tls, starttls, plain):
        dovecot.append(account, mail(subject=f"Jälkeen {account.username}"))
    send_smtp(running.port, mail(subject="SMTP toimii"))

    listed = tickets_when(running.config, 7)
    assert sorted(t["subject"] for t in listed) == sorted(
        ["SMTP toimii"] + [f"{when} {a.username}" for a in (tls, starttls, plain) for when in ("Ennen", "Jälkeen")]
    )
    for account in (tls, starttls, plain):
        assert dovecot.messages(account) == []
        assert len(dovecot.messages(account, "Processed")) == 2
    log = running.log.read_text()
    assert re.search(r"mailbox refused: login as \S+ refused: \[AUTHENTICATIONFAILED\].*next try in \d+ s", log)
    assert log.count("mailbox refused: login") == 1  # retried slowly, not hammered
    assert re.search(r"mailbox down: ConnectionRefusedError.*reconnecting in [\d.]+ s", log)
    assert dovecot.messages(refused) == []


def test_delivery_headers_and_the_mailbox_address_select_the_queue(dovecot: Dovecot, daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    billing = dovecot.add_user("laskutus@liitto.fi")
    shared = dovecot.add_user()
    dovecot.append(billing, mail(subject="Maksumuistutus", to=UNDISCLOSED))
    forwarded = mail(subject="Välitetty", to=UNDISCLOSED,
                     headers={"Delivered-To": "kirjaamo@liitto.fi", "X-Original-To": "laskutus@liitto.fi"})
    dovecot.append(shared, forwarded)
    running = daemon(extra=dovecot.imap_toml(billing, name="laskutus") + dovecot.imap_toml(shared, name="yhteinen"))

    listed = tickets_when(running.config, 2)
    assert {t["subject"]: t["queue"] for t in listed} == {"Maksumuistutus": "laskutus", "Välitetty": "laskutus"}
    recipients = {box: json.loads(value) for box, value in sql(sqlite_url, "select mailbox, recipients from inbound")}
    assert recipients == {
        "laskutus": ["laskutus@liitto.fi"],
        "yhteinen": ["kirjaamo@liitto.fi", "laskutus@liitto.fi", shared.username],
    }


def test_move_creates_a_folder_with_a_finnish_name(dovecot: Dovecot, daemon) -> None:  # type: ignore[no-untyped-def]
    box = dovecot.add_user()
    dovecot.append(box, mail(subject="Siirretään"))
    running = daemon(extra=dovecot.imap_toml(box, after="move:Käsitelty"))
    tickets_when(running.config, 1)
    assert "K&AOQ-sitelty" in dovecot.folders(box)  # RFC 3501 modified UTF-7, as any client shows it
    assert subjects(dovecot.messages(box, "K&AOQ-sitelty")) == ["Siirretään"]
    assert dovecot.messages(box) == []


def test_a_move_the_server_refuses_does_not_stop_intake(dovecot: Dovecot, daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    box = dovecot.add_user()
    dovecot.append(box, mail(subject="Ensimmäinen"))
    running = daemon(extra=dovecot.imap_toml(box, after="move:~Arkisto"))  # Dovecot: invalid name
    dovecot.append(box, mail(subject="Toinen"))
    assert sorted(t["subject"] for t in tickets_when(running.config, 2)) == ["Ensimmäinen", "Toinen"]
    time.sleep(1.5)  # more polls: stored messages are not fetched again
    assert stored(sqlite_url) == 2
    assert len(dovecot.messages(box)) == 2
    log = running.log.read_text()
    assert "mailbox jasenpalvelu: CREATE ~Arkisto: NO [CANNOT]" in log
    assert re.search(r"mailbox jasenpalvelu: UID MOVE ~Arkisto: NO .*; \d stored messages stay in INBOX", log)


def test_flag_marks_what_was_stored_and_skips_what_is_marked(dovecot: Dovecot, daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    box = dovecot.add_user()
    dovecot.append(box, mail(subject="Jo luettu"), flags="(\\Seen)")  # read by a person: still to be stored
    dovecot.append(box, mail(subject="Jo tallennettu"), flags="($MaildStored)")  # stored earlier: skipped
    running = daemon(extra=dovecot.imap_toml(box, after="flag"))
    dovecot.append(box, mail(subject="Uusi"))

    listed = tickets_when(running.config, 2)
    assert sorted(t["subject"] for t in listed) == ["Jo luettu", "Uusi"]
    in_folder = wait_for(lambda: (lambda found: found if len(found["Uusi"]) > 1 else None)(
        {subject_of(m.raw): m.flags - {"\\Recent"} for m in dovecot.messages(box)}
    ))
    assert in_folder == {
        "Jo luettu": {"\\Seen", "$MaildStored"},
        "Jo tallennettu": {"$MaildStored"},
        "Uusi": {"\\Seen", "$MaildStored"},
    }
    assert running.stop() == 0
    running.start()
    time.sleep(2.5)  # a couple of polls: nothing is fetched again
    assert stored(sqlite_url) == 2


def test_restart_resumes_after_the_saved_uid_and_a_new_uidvalidity_rescans(dovecot: Dovecot, daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    box = dovecot.add_user()
    dovecot.append_many(box, [mail(subject=f"Viesti {i}") for i in range(3)])
    running = daemon(extra=dovecot.imap_toml(box, after="flag"))
    wait_for(lambda: stored(sqlite_url) == 3)
    assert running.stop() == 0
    [(uidvalidity, last_uid)] = sql(sqlite_url, "select uidvalidity, last_uid from imap_state")
    assert last_uid == 3

    dovecot.append(box, mail(subject="Viesti 3"))
    running.start()
    wait_for(lambda: processed(sqlite_url, 4))
    assert running.stop() == 0

    # The server renumbers the folder (restored from a backup, say) and keywords are lost.
    client = dovecot.client(box)
    client.select("INBOX")
    client.uid("STORE", "1:*", "-FLAGS.SILENT", "($MaildStored)")
    client.logout()
    dovecot.doveadm("mailbox", "update", "-u", box.username, "--uid-validity", str(uidvalidity + 1000), "INBOX")
    running.start()
    wait_for(lambda: processed(sqlite_url, 8))

    listed = tickets(running.config)
    assert sorted(t["subject"] for t in listed) == [f"Viesti {i}" for i in range(4)]
    assert all(t["message_count"] == 1 for t in listed)
    assert sql(sqlite_url, "select count(*) from inbound where error like 'duplicate of message %'") == [(4,)]
    assert sql(sqlite_url, "select uidvalidity, last_uid from imap_state") == [(uidvalidity + 1000, 4)]
    assert "UIDVALIDITY of INBOX changed" in running.log.read_text()


def test_the_same_message_by_imap_and_smtp_is_stored_once(dovecot: Dovecot, daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    box = dovecot.add_user()
    raw = mail(subject="Kahta reittiä", message_id="<kaksi-reittia@example.fi>")
    running = daemon(extra=dovecot.imap_toml(box))
    send_smtp(running.port, raw)
    dovecot.append(box, raw)
    wait_for(lambda: processed(sqlite_url, 2))
    [ticket] = tickets(running.config)
    assert ticket["subject"] == "Kahta reittiä" and ticket["message_count"] == 1
    assert sql(sqlite_url, "select source, error from inbound order by id")[1:] in (
        [("imap", "duplicate of message 1 on [JP#1]")], [("smtp", "duplicate of message 1 on [JP#1]")])


def test_a_conversation_fetched_in_one_batch_is_filed_in_mailbox_order(dovecot: Dovecot, daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """The original is big and its replies small: their files are written first, yet the
    spool keeps the mailbox's order, so every reply finds the ticket its original opened."""
    box = dovecot.add_user()
    ids = [f"<keskustelu-{i}@example.fi>" for i in range(8)]
    dovecot.append(box, mail(subject="Jäsenmaksu", body="Liite:\n" + "x" * 3_000_000, message_id=ids[0]))
    for i in range(1, 8):
        dovecot.append(box, mail(subject="Re: Jäsenmaksu", body=f"Lisäys {i}", message_id=ids[i],
                                 in_reply_to=ids[i - 1], references=" ".join(ids[:i])))
    running = daemon(extra=dovecot.imap_toml(box))
    wait_for(lambda: processed(sqlite_url, 8))
    [ticket] = tickets(running.config)
    assert ticket["message_count"] == 8
    spooled = [row[0] for row in sql(sqlite_url, "select m.message_id from messages m join inbound i "
                                                  "on m.inbound_id = i.id order by i.id")]
    assert [f"<{m.strip('<>')}>" for m in spooled] == ids


def test_an_unparseable_message_is_quarantined_and_still_moved(dovecot: Dovecot, daemon) -> None:  # type: ignore[no-untyped-def]
    box = dovecot.add_user()
    garbage = b"\r\nno headers at all\r\n"
    dovecot.append(box, garbage)
    running = daemon(extra=dovecot.imap_toml(box))

    quarantined = wait_for(lambda: sql(database_of(running.config), "select kind, reason from quarantine"))
    assert quarantined == [("unparseable", "no headers")]
    assert dovecot.messages(box) == []
    assert [m.raw for m in dovecot.messages(box, "Processed")] == [garbage]


def test_a_message_that_cannot_be_stored_stays_untouched(dovecot: Dovecot, daemon) -> None:  # type: ignore[no-untyped-def]
    box = dovecot.add_user()
    running = daemon(extra=dovecot.imap_toml(box))
    raw_dir = running.config.parent / "var" / "raw"
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    raw_dir.write_text("not a directory")  # the raw store cannot write
    dovecot.append(box, mail(subject="Odottaa"))

    wait_for(lambda: "mailbox jasenpalvelu: could not store UID 1" in running.log.read_text())
    [waiting] = dovecot.messages(box)
    assert not waiting.flags & {"\\Seen", "\\Deleted", "$MaildStored"}
    assert dovecot.messages(box, "Processed") == []
    raw_dir.unlink()
    assert [t["subject"] for t in tickets_when(running.config, 1)] == ["Odottaa"]
    assert dovecot.messages(box) == []


def test_sigkill_in_the_middle_of_a_batch_stores_every_message_once(dovecot: Dovecot, daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    box = dovecot.add_user()
    count = 200
    dovecot.append_many(box, [mail(subject=f"Erä {i}", body="Rivi tekstiä.\n" * 100) for i in range(count)])
    running = daemon(extra=dovecot.imap_toml(box))
    wait_for(lambda: stored(sqlite_url) >= 30, interval=0.005)
    running.stop(signal.SIGKILL)
    assert stored(sqlite_url) < count, "killed too late to test anything"

    running.start()
    listed = tickets_when(running.config, count, timeout=90)
    assert sorted(t["subject"] for t in listed) == sorted(f"Erä {i}" for i in range(count))
    assert all(t["message_count"] == 1 for t in listed)
    assert dovecot.messages(box) == []
    assert len(dovecot.messages(box, "Processed")) == count


def test_sigterm_in_the_middle_of_a_sync_finishes_the_batch_and_exits_zero(dovecot: Dovecot, daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    box = dovecot.add_user()
    count = 300
    dovecot.append_many(box, [mail(subject=f"Lopetus {i}", body="Rivi tekstiä.\n" * 100) for i in range(count)])
    running = daemon(extra=dovecot.imap_toml(box))
    wait_for(lambda: stored(sqlite_url) >= 50, interval=0.005)
    assert running.stop(signal.SIGTERM) == 0
    at_stop = stored(sqlite_url)
    assert at_stop < count, "stopped too late to test anything"
    assert len(dovecot.messages(box, "Processed")) == at_stop  # what was stored was moved, nothing else

    running.start()
    wait_for(lambda: len(dovecot.messages(box, "Processed")) == count)
    assert stored(sqlite_url) == count  # a clean stop saved its place: nothing fetched twice


class CuttingProxy(Proxy):
    """A TCP proxy in front of Dovecot that cuts its first connection after ``cut_after``
    bytes from the server: a network failure in the middle of a FETCH."""

    def __init__(self, target_port: int, cut_after: int) -> None:
        self.cut_after = cut_after
        self.cut = threading.Event()
        super().__init__(target_port)

    def relay(self, client: socket.socket, server: socket.socket, number: int) -> None:
        limit = self.cut_after if number == 1 else None
        threading.Thread(target=self._pump, args=(client, server, None), daemon=True).start()
        threading.Thread(target=self._pump, args=(server, client, limit), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, limit: int | None) -> None:
        sent = 0
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if limit is not None and sent + len(data) > limit:
                    target.sendall(data[: limit - sent])
                    self.cut.set()
                    break
                target.sendall(data)
                sent += len(data)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_a_connection_cut_in_the_middle_of_a_fetch_is_resumed(dovecot: Dovecot, daemon) -> None:  # type: ignore[no-untyped-def]
    box = dovecot.add_user()
    long_body = "Pitkä rivi tekstiä, jotta viesti on iso.\n" * 1500  # about 60 kB each
    dovecot.append_many(box, [mail(subject=f"Pitkä {i}", body=long_body) for i in range(20)])
    proxy = CuttingProxy(dovecot.port, cut_after=300_000)
    try:
        running = daemon(extra=dovecot.imap_toml(box, port=proxy.port))
        listed = tickets_when(running.config, 20)
    finally:
        proxy.close()
    assert sorted(t["subject"] for t in listed) == sorted(f"Pitkä {i}" for i in range(20))
    assert proxy.cut.is_set() and proxy.connections >= 2
    assert re.search(r"mailbox jasenpalvelu: connection lost; reconnecting in [\d.]+ s", running.log.read_text())
    assert dovecot.messages(box) == []
    assert len(dovecot.messages(box, "Processed")) == 20


def test_idle_brings_new_mail_at_once_despite_a_long_poll_interval(dovecot: Dovecot, daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    box = dovecot.add_user()
    running = daemon(extra=dovecot.imap_toml(box, poll_seconds=600))
    wait_for(lambda: sql(sqlite_url, "select count(*) from imap_state")[0][0] == 1)
    time.sleep(0.5)  # the first (empty) sync is done; the poller idles
    for number in range(1, 4):
        started = time.monotonic()
        dovecot.append(box, mail(subject=f"Heti {number}"))
        wait_for(lambda: stored(sqlite_url) == number, timeout=5, interval=0.02)
        assert time.monotonic() - started < 2.0
    assert len(tickets_when(running.config, 3)) == 3


def test_without_move_and_uidplus_copy_and_expunge_are_used_and_delete_deletes(daemon) -> None:  # type: ignore[no-untyped-def]
    server = Dovecot.start(capability="IMAP4rev1 SASL-IR LITERAL+ IDLE")
    try:
        moving, deleting = server.add_user(), server.add_user()
        client = server.client(moving)
        assert "MOVE" not in client.capability()[1][0].decode().split()
        client.logout()
        server.append(moving, mail(subject="Kopioidaan"))
        server.append(deleting, mail(subject="Poistetaan"))
        running = daemon(extra=server.imap_toml(moving, name="siirto") + server.imap_toml(deleting, name="poisto", after="delete"))
        assert sorted(t["subject"] for t in tickets_when(running.config, 2)) == ["Kopioidaan", "Poistetaan"]
        wait_for(lambda: server.messages(moving) == [] and server.messages(deleting) == [])
        assert subjects(server.messages(moving, "Processed")) == ["Kopioidaan"]
        assert server.folders(deleting) == ["INBOX"]
    finally:
        server.stop()


def test_a_25_mb_message_is_fetched_in_bounded_memory(dovecot: Dovecot, tmp_path: Path) -> None:
    box = dovecot.add_user()
    line = b"Liitteen sis\xc3\xa4lt\xc3\xb6\xc3\xa4 base64-muodossa, 76 merkki\xc3\xa4 rivill\xc3\xa4 .......\r\n"
    head, _, body = mail(subject="Iso liite").replace(b"\n", b"\r\n").partition(b"\r\n\r\n")
    big = head + b"\r\n\r\n" + line * (25_000_000 // len(line)) + body  # CRLF, as IMAP stores it
    assert len(big) > 25_000_000
    dovecot.append(box, big)
    url = f"sqlite:///{tmp_path}/maild.db"
    db.upgrade(url)
    engine = db.make_engine(url)
    settings = Imap(name="iso", host=dovecot.host, port=dovecot.port, security="none",
                    username=box.username, password=box.password, after="move:Processed", poll_seconds=1)

    async def poll_once() -> int:
        stopping = asyncio.Event()
        committer = GroupCommitter(engine, RawStore(tmp_path / "var"))
        committer.start()

        async def accept(messages: list[tuple[bytes, Any]]) -> list[int | BaseException]:
            results = await committer.accept_many(messages)
            stopping.set()  # the poller finishes this batch (moves it) and returns
            return results

        tracemalloc.start()
        try:
            await asyncio.wait_for(Poller(settings, accept, engine, stopping, None).run(), 60)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            await committer.close()

    peak = asyncio.run(poll_once())
    assert peak < 3 * len(big), f"peak {peak / 1e6:.1f} MB for a {len(big) / 1e6:.1f} MB message"
    [(raw_path,)] = sql(url, "select raw_path from inbound")
    assert (tmp_path / "var" / raw_path).read_bytes() == big
    assert dovecot.messages(box) == []
    engine.dispose()
