"""The processor's reader (``maild.read_ahead``): a real process reading real files.

It is only a way to go faster: whatever it does not hand back (it died, hung, was given a
message whose files stay on disk, answered for an older batch) the processor reads itself.
And reading ahead must not count a crash against an innocent message (``Pipeline._claim``).
"""

from __future__ import annotations

import email
import email.policy
import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from email.message import EmailMessage

from maild.app import App
from maild.core.reading import Reading, ToFile
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.read import read
from maild.read_ahead import ReadAhead, ToRead
from tests.conftest import RULES
from tests.mailgen import mail
from tests.property.conftest import sqlite_instance

ENVELOPE = Envelope("smtp", "matti@example.fi", ("jasenpalvelu@liitto.fi",))
SLOW_RULES = RULES + """\
  - name: Hidas
    if: {subject: {regex: "(a|aa)+b"}}
    then: {priority: low}
"""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    made = sqlite_instance(tmp_path)
    yield made
    made.engine.dispose()


def reader_for(app: App, rules: str | None = None) -> ReadAhead:
    pipeline = app.pipeline
    return ReadAhead(multiprocessing.get_context("spawn"), rules or app.rules_text, str(app.settings.rules_file),
                     pipeline.mailer.tag_prefix, pipeline.mailer.secret, app.settings.data_dir, "WARNING", "text")


def stored(app: App, raws: list[bytes]) -> list[ToRead]:
    """The messages written to the raw store, as the processor hands them to the reader."""
    return [ToRead(n, app.raw_store.write(raw), ENVELOPE) for n, raw in enumerate(raws, 1)]


def with_file(raw: bytes, size: int) -> bytes:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    message.add_attachment(os.urandom(size), maintype="application", subtype="pdf", filename="liite.pdf")
    return message.as_bytes()


def read_once(app: App, items: list[ToRead]) -> tuple[dict[int, Reading], int]:
    """What a new reader hands back for one batch, and how many it counted as given."""
    reader = reader_for(app)
    try:
        reader.submit(items)
        return reader.take(60), reader.given
    finally:
        reader.stop()


def test_the_reader_reads_as_the_processor_does(app: App) -> None:
    items = stored(app, [mail(subject=f"Asia {n}", message_id=f"<r{n}@example.fi>") for n in range(5)]
                   + [with_file(mail(subject="Liite"), 2000)])
    pipeline = app.pipeline
    readings, given = read_once(app, items)
    assert list(readings) == [item.id for item in items]
    for item in items:
        here = read(app.raw_store.path(item.raw_path), ENVELOPE, pipeline.rules, pipeline.mailer.tag_prefix,
                    pipeline.mailer.secret)
        assert readings[item.id] == here
        assert isinstance(here, ToFile) and readings[item.id].numbers == here.numbers  # type: ignore[union-attr]
    assert given == len(items)


def test_a_message_whose_files_stay_on_disk_is_left_to_the_processor(app: App) -> None:
    """A big attachment is decoded again from the raw file whenever it is read, which cannot
    cross to another process: that message is not handed back, the others are."""
    items = stored(app, [mail(subject="Yksi"), with_file(mail(subject="Iso liite"), 400_000), mail(subject="Kolme")])
    readings, _ = read_once(app, items)
    assert sorted(readings) == [1, 3]


def test_an_answer_to_an_older_batch_is_never_taken_for_the_new_one(app: App) -> None:
    first, second = stored(app, [mail(subject="Vanha")]), stored(app, [mail(subject="Uusi")])
    second = [ToRead(7, second[0].raw_path, ENVELOPE)]
    reader = reader_for(app)
    try:
        reader.submit(first)  # never taken: the processor moved on (new rules, a busy spell)
        reader.submit(second)
        readings = reader.take(60)
    finally:
        reader.stop()
    assert list(readings) == [7]
    assert readings[7].parsed.subject == "Uusi"  # type: ignore[union-attr]


def test_a_reader_that_dies_costs_nothing_but_the_reading(app: App) -> None:
    """Killed mid-batch (the OOM killer, a crash in a C extension): the processor hears at once
    that no answer comes, and the next batch starts a new reader."""
    items = stored(app, [mail(subject="a" * 40), mail(subject="Osoitteenmuutos")])
    reader = reader_for(app, SLOW_RULES)
    try:
        reader.submit(items[:1])  # the reader is busy on it for hours
        time.sleep(0.5)
        reader._process.kill()
        started = time.monotonic()
        assert reader.take(60) == {}
        assert time.monotonic() - started < 10
        reader.submit(items[1:])
        assert list(reader.take(60)) == [2]
    finally:
        reader.stop()


def test_a_reader_stuck_on_a_message_is_stopped_and_the_processor_reads_the_batch(app: App) -> None:
    """A rules regex that backtracks for hours on one subject: the reader's answer does not come
    within the time allowed, so the processor gets nothing, the reader is killed, and the next
    batch goes to a new one."""
    items = stored(app, [mail(subject="a" * 40), mail(subject="Jäsenmaksu")])
    reader = reader_for(app, SLOW_RULES)
    try:
        reader.submit(items[:1])
        started = time.monotonic()
        assert reader.take(2) == {}
        assert 2 <= time.monotonic() - started < 20
        assert reader._process is None  # killed, not left running the regex
        reader.submit(items[1:])
        assert list(reader.take(60)) == [2]
    finally:
        reader.stop()


def _attempts(app: App) -> dict[int, tuple[str, int]]:
    with app.engine.connect() as connection:
        return {i: (state, n) for i, state, n in connection.execute(sa.text("select id, state, attempts from inbound"))}


def test_the_next_batch_is_claimed_ahead_only_behind_first_attempts(app: App) -> None:
    """Reading ahead counts an attempt on the next batch before the current one is filed. A
    crash (here: the processor dropped, its claims left as they are) then counts once against
    a message that was not at fault, never more: behind a batch with a message tried before,
    and up to the first such message, nothing is claimed ahead."""
    ids = [spool_sync(app.engine, app.raw_store, mail(subject=f"Asia {n}", message_id=f"<c{n}@example.fi>"),
                      ENVELOPE) for n in range(6)]
    with app.engine.begin() as connection:  # message 4 has crashed the processor once before
        connection.execute(sa.text("update inbound set attempts = 1 where id = :id"), {"id": ids[3]})
    reader = reader_for(app)
    try:
        assert app.pipeline.process_some(2, reader=reader) == 2
        # filed 1-2; 3 claimed and read ahead, stopping before 4 (tried before)
        assert _attempts(app) == {ids[0]: ("done", 1), ids[1]: ("done", 1), ids[2]: ("pending", 1),
                                  ids[3]: ("pending", 1), ids[4]: ("pending", 0), ids[5]: ("pending", 0)}
        crashed = App(app.settings)  # the processor that claimed 3 ahead is gone; a new one starts
        crashed.use_rules(app.rules_text)
        while crashed.pipeline.process_some(2, reader=reader):
            pass
    finally:
        reader.stop()
    assert _attempts(app) == {ids[0]: ("done", 1), ids[1]: ("done", 1), ids[2]: ("done", 2),
                              ids[3]: ("done", 2), ids[4]: ("done", 1), ids[5]: ("done", 1)}


def test_what_was_claimed_ahead_goes_in_the_small_steps_of_a_busy_spell(app: App) -> None:
    """Intake became busy after 4 were claimed ahead: they are filed 2 to a transaction (the
    size a busy spell asks for), with the readings the reader made, and nothing more is
    claimed ahead until they are."""
    ids = [spool_sync(app.engine, app.raw_store, mail(subject=f"Asia {n}", message_id=f"<b{n}@example.fi>"),
                      ENVELOPE) for n in range(10)]
    reader = reader_for(app)
    try:
        assert app.pipeline.process_some(4, reader=reader) == 4  # 5-8 claimed ahead
        assert app.pipeline.process_some(2, reader=reader) == 2
        assert [state for state, _ in _attempts(app).values()] == ["done"] * 6 + ["pending"] * 4
        assert {i: n for i, (_, n) in _attempts(app).items()} == {**{i: 1 for i in ids[:8]}, ids[8]: 0, ids[9]: 0}
        assert reader.given == 4
        while app.pipeline.process_some(2, reader=reader):
            pass
    finally:
        reader.stop()
    assert set(_attempts(app).values()) == {("done", 1)}


def test_a_processor_that_fails_exits_with_its_reader(app: App) -> None:
    """An error the processor's loop does not expect (here: the database file is not a
    database) must end it, reader and all, so that the daemon starts a new one: a reader left
    running kept it from exiting, and nothing was filed until a restart."""
    from maild.processor import Watch, serve

    app.engine.dispose()
    path = Path(str(sa.engine.make_url(app.settings.database_url).database))
    path.write_bytes(b"not a database " * 1000)
    for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    context = multiprocessing.get_context("spawn")
    parent, child_end = context.Pipe()
    rules_text = Path(app.settings.rules_file).read_text(encoding="utf-8")
    child = context.Process(target=serve, args=(app.settings.model_dump(), rules_text, child_end,
                                                context.Value("d", 0.0, lock=False), Watch(context)))
    child.start()
    child_end.close()
    child.join(60)
    assert child.exitcode == 1


def test_a_busy_spell_reads_more_ahead_than_it_files_at_a_time(app: App) -> None:
    """While intake is busy the processor files 2 to a transaction but claims and reads 8
    ahead: one claim and one hand-over for four short transactions."""
    ids = [spool_sync(app.engine, app.raw_store, mail(subject=f"Asia {n}", message_id=f"<d{n}@example.fi>"),
                      ENVELOPE) for n in range(11)]
    reader = reader_for(app)
    try:
        assert app.pipeline.process_some(2, reader=reader, ahead=8) == 2  # 1-2 filed, 3-10 claimed ahead
        assert [n for _, n in _attempts(app).values()] == [1] * 10 + [0]
        for _ in range(4):
            assert app.pipeline.process_some(2, reader=reader, ahead=8) == 2
        assert reader.given == 8 and [n for _, n in _attempts(app).values()] == [1] * 11  # 11 claimed with 9-10
    finally:
        reader.stop()
    assert [state for state, _ in _attempts(app).values()] == ["done"] * 10 + ["pending"]
