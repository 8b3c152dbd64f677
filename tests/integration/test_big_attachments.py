"""Issue 13: a big attachment is stored from the spooled file a chunk at a time, and a big
message can be spooled from a file or a pipe without holding it (``stage_stream``)."""

from __future__ import annotations

import base64
import email.message
import email.utils
import hashlib
import io
import os
import stat

import pytest
from sqlmodel import Session, select

from maild.app import App
from maild.config import load_settings
from maild.core.elide import ELIDE_AT
from maild.intake.spool import commit_staged, stage_stream, spool_sync
from maild.mail import Envelope
from maild.store import db
from maild.store.tables import Attachment, Inbound

ENVELOPE = Envelope("pipe", None, ("jasenpalvelu@liitto.fi",))


@pytest.fixture
def app(make_instance, db_url: str) -> App:
    instance = App(load_settings(str(make_instance(db_url))))
    db.upgrade(instance.settings.database_url)
    instance.prepare_database()
    return instance


def with_attachment(content: bytes, broken: bool = False) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "matti@example.fi", "jasenpalvelu@liitto.fi", "Liitteenä palkkatodistus"
    msg["Message-ID"] = email.utils.make_msgid(domain="example.fi")
    msg.set_content("Liitteenä palkkatodistukseni.")
    msg.add_attachment(content, maintype="application", subtype="pdf", filename="palkkatodistus.pdf")
    raw = bytes(msg)
    if broken:  # the padding gone: a2b_base64 refuses it, and the stdlib's tolerant decoding reads it
        encoded = base64.encodebytes(content)
        assert encoded in raw and encoded.endswith(b"==\n")
        raw = raw.replace(encoded, encoded[:-3] + b"\n")
    return raw


def spool_stream(app: App, raw: bytes) -> int:
    """Spool as ``maild ingest FILE`` does: a chunk at a time, then committed."""
    (inbound_id,) = commit_staged(app.engine, app.raw_store, [stage_stream(app.raw_store, io.BytesIO(raw), ENVELOPE)])
    return inbound_id


def stored_attachments(app: App) -> list[Attachment]:
    with Session(app.engine) as session:
        return list(session.exec(select(Attachment).order_by(Attachment.id)))


@pytest.mark.parametrize("broken", [False, True])
def test_a_big_attachment_is_stored_whole_from_the_spooled_file(app: App, broken: bool) -> None:
    content = os.urandom(3 * ELIDE_AT + 1)  # padded base64: one "=" at the end
    raw = with_attachment(content, broken)
    outcome = app.pipeline.process(spool_stream(app, raw))
    assert outcome.startswith("new:"), outcome
    (row,) = stored_attachments(app)
    assert (row.filename, row.size, row.sha256) == ("palkkatodistus.pdf", len(content), hashlib.sha256(content).hexdigest())
    path = app.settings.data_dir / row.path
    assert path.read_bytes() == content
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_spool_stream_stores_what_spool_sync_stores(app: App) -> None:
    raw = with_attachment(os.urandom(2 * ELIDE_AT))
    ids = [spool_sync(app.engine, app.raw_store, raw, ENVELOPE),
           spool_stream(app, raw)]
    with Session(app.engine) as session:
        rows = [session.get(Inbound, inbound_id) for inbound_id in ids]
    assert [(r.size, r.sha256, r.state, r.source) for r in rows] == [(len(raw), hashlib.sha256(raw).hexdigest(), "pending", "pipe")] * 2
    assert {app.raw_store.read(r.raw_path) for r in rows} == {raw}
    assert rows[0].raw_path != rows[1].raw_path
