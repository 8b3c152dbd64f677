"""Filing a batch together is filing its messages one at a time (real SQLite).

A batch looks its plain new requests up in a few queries for all of them, writes their mail and
events at its end, and uses no savepoints (``maild.ingest``, ``store.lookup.Prefetched``). For
any sequence of mail from a small cast (the same members again, copies, replies by tag and by
In-Reply-To, auto-replies, staff, member numbers, a round-robin queue), filing it as batches
must leave the database exactly as filing each message alone does; and for each message, what
the batch would have looked up for it must be what ``for_reading`` looks up.
"""

from __future__ import annotations

import email
import email.policy
import json
import multiprocessing
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from maild.app import App
from maild.core.register import Row
from maild.core.tokens import opener_token
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.read import read
from maild.read_ahead import ReadAhead
from maild.store import lookup
from maild.store import members as store_members
from maild.store.tables import Inbound, utcnow
from tests.hostile import examples
from tests.mailgen import mail
from tests.property.conftest import sqlite_instance

SECRET = b"test-secret"
ENVELOPE = Envelope("smtp", None, ("jasenpalvelu@liitto.fi",))
SENDERS = ("Matti Meikäläinen <matti@example.fi>", "liisa@example.fi", "Pekka Virtanen <pekka.v@example.fi>",
           "maija@liitto.fi")  # the last is staff
NUMBERS = ("", "Jäsennumero 1001.", "Jäsennumeroni on 1002.", "jäsennro 9999")  # 1001: Matti's, 1002: another's


@dataclass(frozen=True)
class Spec:
    sender: int
    shape: str  # new | again | tag | reply | auto | invoice | close | for | attach | cc
    target: int  # which earlier message or ticket a copy, reply or tag is about
    number: int


specs = st.lists(st.builds(Spec, st.integers(0, len(SENDERS) - 1),
                           st.sampled_from(["new", "new", "again", "tag", "reply", "auto", "invoice", "close",
                                                            "for", "attach", "cc"]),
                           st.integers(0, 20), st.integers(0, len(NUMBERS) - 1)), min_size=1, max_size=24)


def corpus(items: list[Spec]) -> list[bytes]:
    raws: list[bytes] = []
    ids: list[str] = []
    for n, spec in enumerate(items):
        sender, body = SENDERS[spec.sender], f"Hei,\n\nasia {n}. {NUMBERS[spec.number]}\n\nTerveisin"
        message_id = f"<m{n}@example.fi>"
        if spec.shape == "again" and raws:
            raws.append(raws[spec.target % len(raws)])
            ids.append(ids[spec.target % len(ids)])
            continue
        subject, extra = f"Asia {n}", {}
        if spec.shape == "tag":
            subject = f"VS: [JP#{spec.target % 6 + 1}] Asia"
        elif spec.shape == "close":
            subject, body = f"VS: [JP#{spec.target % 6 + 1}] Asia", "#close\n\nHoidettu."
        elif spec.shape == "invoice":
            subject = f"Lasku {n}"
        elif spec.shape == "auto":
            extra = {"Auto-Submitted": "auto-replied"}
        reply_to = ids[spec.target % len(ids)] if spec.shape == "reply" and ids else None
        to, cc = "jasenpalvelu@liitto.fi", None
        if spec.shape == "for":  # staff open a ticket for a member of the cast, from their opening address
            sender, to = SENDERS[-1], f"jasenpalvelu+{opener_token(SECRET, 'jasenasiat', 'maija@liitto.fi')}@liitto.fi"
            body = f"#for {SENDERS[spec.target % (len(SENDERS) - 1)]}\n#channel phone\n\nSoitti {n}. {NUMBERS[spec.number]}"
        elif spec.shape == "cc":
            cc = SENDERS[spec.target % len(SENDERS)]
        raw = mail(subject=subject, body=body, sender=sender, to=to, cc=cc, message_id=message_id,
                   in_reply_to=reply_to, headers=extra)
        raws.append(with_file(raw, n % 3) if spec.shape == "attach" else raw)
        ids.append(message_id)
    return raws


def with_file(raw: bytes, which: int) -> bytes:
    """The mail with a file attached (the same bytes again for the same ``which``)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    message.add_attachment(f"liite {which}\n".encode() * 100, maintype="application", subtype="pdf",
                           filename=f"liite{which}.pdf")
    return message.as_bytes()


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, App, Path]]:
    """Two instances (one files a message at a time, the other in batches) and a migrated
    database with a member register, copied over both before each example."""
    made = [sqlite_instance(tmp_path_factory.mktemp(name)) for name in ("alone", "together")]
    template = tmp_path_factory.mktemp("template") / "maild.db"
    with Session(made[0].engine) as session:
        store_members.replace_register(session, [Row(1, "1001", "matti@example.fi", {}),
                                                 Row(2, "1002", "someone@example.fi", {})], "email")
        session.commit()
    made[0].engine.dispose()
    shutil.copy(db_file(made[0]), template)
    yield made[0], made[1], template
    for app in made:
        app.engine.dispose()


@pytest.fixture(scope="module")
def ahead(apps: tuple[App, App, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, ReadAhead]]:
    """A third instance, which files with a reader process a batch ahead (``maild.read_ahead``)."""
    app = sqlite_instance(tmp_path_factory.mktemp("ahead"))
    pipeline = app.pipeline
    reader = ReadAhead(multiprocessing.get_context("spawn"), app.rules_text, str(app.settings.rules_file),
                       pipeline.mailer.tag_prefix, pipeline.mailer.secret, app.settings.data_dir, "WARNING", "text")
    reader.start()
    yield app, reader
    reader.stop()
    app.engine.dispose()


def db_file(app: App) -> Path:
    return Path(str(sa.engine.make_url(app.settings.database_url).database))


def fresh(app: App, template: Path) -> None:
    app.engine.dispose()
    path = db_file(app)
    for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copy(template, path)


def looked_up_alike(app: App, inbound_id: int) -> None:
    """What the batch's prefetch answers for this message, if anything, is what ``for_reading`` finds."""
    pipeline = app.pipeline
    with Session(app.engine) as session:
        inbound = session.get(Inbound, inbound_id)
        assert inbound is not None
        envelope = Envelope(source=inbound.source, mail_from=inbound.mail_from,  # type: ignore[arg-type]
                            recipients=tuple(inbound.recipients), mailbox=inbound.mailbox)
        reading = read(app.raw_store.path(inbound.raw_path), envelope, pipeline.rules, pipeline.mailer.tag_prefix,
                       pipeline.mailer.secret)
        now = utcnow()
        # as the first of a batch (a message alone is never prefetched: ``for_reading`` asks less)
        answer = lookup.Prefetched.load(session, [reading, reading], now).answer(reading, pipeline.policy, now)
        if answer is not None:
            assert answer == lookup.for_reading(session, reading, pipeline.policy, pipeline.mailer.secret, now)


def dump(app: App) -> dict[str, list[Any]]:
    """The database without ids, times and random tokens; rows in the order they were written
    (mail on a ticket is written at the end of a batch, so messages are ordered by direction)."""
    queries = {
        "tickets": "select number, queue, status, priority, category, subject, requester, assignee, confidential,"
                   " tags, cc, linked_to, channel, first_response_at is null, resolved_at is null from tickets"
                   " order by number",
        "messages": "select t.number, m.direction, m.kind, case when m.direction = 'in' then m.message_id end,"
                    " m.from_addr, m.\"to\", m.cc, m.subject, m.classification,"
                    " case when m.direction = 'in' then m.text end from messages m join tickets t on t.id = m.ticket_id"
                    " order by m.direction, m.id",
        "events": "select t.number, e.kind, e.actor, e.data from events e join tickets t on t.id = e.ticket_id"
                  " order by e.id",
        "outbox": "select t.number, o.kind, o.recipient, o.state from outbox o left join tickets t on t.id = o.ticket_id"
                  " order by o.id",
        "contacts": "select address, name, undeliverable_since is null from contacts order by address",
        "inbound": "select state, error from inbound order by id",
        "quarantine": "select kind, reason from quarantine order by id",
        "links": "select t.number, m.member_number, tm.linked_by from ticket_members tm"
                 " join tickets t on t.id = tm.ticket_id join members m on m.id = tm.member_id order by t.number",
        "counters": "select name, value from counters order by name",
        "attachments": "select t.number, a.filename, a.sha256, a.size from attachments a"
                       " join messages m on m.id = a.message_id join tickets t on t.id = m.ticket_id order by a.id",
        "members": "select member_number, email, source from members order by member_number",
    }
    with app.engine.connect() as connection:
        found = {name: [tuple(row) for row in connection.execute(sa.text(sql))] for name, sql in queries.items()}
        message_ids = dict(connection.execute(sa.text("select id, message_id from messages")).all())
    found["inbound"] = [(state, _MESSAGE_ROW.sub(lambda m: f"message {message_ids[int(m[1])]}", error or ""))
                        for state, error in found["inbound"]]  # the row a duplicate names, by its Message-ID
    found["events"] = [(*row[:3], _without_times_and_ids(row[3])) for row in found["events"]]
    return found


_MESSAGE_ROW = re.compile(r"message (\d+)")


def _without_times_and_ids(data: str) -> dict[str, Any]:
    """An event's data without times and the row ids of messages (written in another order)."""
    values = json.loads(data)
    return {k: v for k, v in values.items() if not k.endswith("_at") and k not in ("message", "first_message")}


@settings(max_examples=examples(25), deadline=None)
@given(specs)
def test_a_batch_files_as_its_messages_do_one_at_a_time(apps: tuple[App, App, Path], items: list[Spec]) -> None:
    alone, together, template = apps
    raws = corpus(items)
    fresh(alone, template)
    fresh(together, template)
    one_by_one = []
    for raw in raws:
        inbound_id = spool_sync(alone.engine, alone.raw_store, raw, ENVELOPE)
        looked_up_alike(alone, inbound_id)
        one_by_one.append(alone.pipeline.process(inbound_id))
    ids = [spool_sync(together.engine, together.raw_store, raw, ENVELOPE) for raw in raws]
    outcomes = together.pipeline.process_many(ids)
    assert [outcomes[i] for i in ids] == one_by_one
    assert dump(together) == dump(alone)


@settings(max_examples=examples(10), deadline=None)
@given(specs, st.integers(1, 5))
def test_filing_with_the_next_batch_read_ahead_files_as_one_at_a_time(
    apps: tuple[App, App, Path], ahead: tuple[App, ReadAhead], items: list[Spec], limit: int,
) -> None:
    """The daemon's processor reads the next batch in another process while it files this one:
    the same tickets, mail and events as filing each message alone; every message read ahead
    counted one attempt, never more."""
    alone, _, template = apps
    app, reader = ahead
    raws = corpus(items)
    fresh(alone, template)
    fresh(app, template)
    for raw in raws:
        alone.pipeline.process(spool_sync(alone.engine, alone.raw_store, raw, ENVELOPE))
    for raw in raws:
        spool_sync(app.engine, app.raw_store, raw, ENVELOPE)
    given = reader.given
    while app.pipeline.process_some(limit, reader=reader):
        pass
    assert reader.given > given or len(raws) <= limit  # read ahead, not all by the processor itself
    assert dump(app) == dump(alone)
    with app.engine.connect() as connection:
        assert set(connection.execute(sa.text("select attempts from inbound")).scalars()) == {1}
