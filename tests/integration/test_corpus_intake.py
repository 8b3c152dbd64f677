"""Real mail from real clients and real broken mail: each becomes a ticket or a quarantined
message with a reason. Nothing is lost and nothing crashes the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.store.tables import Inbound, Message, Quarantine

REPO = Path(__file__).resolve().parent.parent.parent
CORPUS = REPO / "tests" / "corpus"
# A "RE: ..." reply from an ordinary address with no report structure: only its wording says
# it is a bounce, so it is stored as mail (see tests/unit/test_classify.py).
HUMAN_LOOKING_BOUNCES = {"socgen_reply_style_bounce.eml"}
FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in {".eml", ".txt", ".msg"})


def test_corpus_is_there() -> None:
    assert len(FILES) >= 40, "the corpus of real mail is missing"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> App:
    from tests.conftest import RULES

    directory = tmp_path_factory.mktemp("corpus")
    (directory / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = directory / "maild.toml"
    config.write_text(
        f'[instance]\nsecret_key = "k"\n[database]\nurl = "sqlite:///{directory}/m.db"\n'
        f'[rules]\ntemplates = "{REPO / "templates"}"\n'
    )
    instance = App(load_settings(str(config)))
    instance.prepare_database()
    return instance


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_corpus_message_is_accounted_for(app: App, path: Path) -> None:
    raw = path.read_bytes()
    inbound_id = spool_sync(app.engine, app.raw_store, raw, Envelope("pipe", None, ("jasenpalvelu@liitto.fi",)))
    outcome = app.pipeline.process(inbound_id)
    with Session(app.engine) as session:
        inbound = session.get(Inbound, inbound_id)
        assert inbound is not None and inbound.state in ("done", "quarantined")
        stored = session.exec(select(Message).where(Message.inbound_id == inbound_id)).all()
        kept = session.exec(select(Quarantine).where(Quarantine.inbound_id == inbound_id)).all()
        if outcome == "duplicate":
            assert inbound.error and inbound.error.startswith("duplicate of message")
        else:
            assert len(stored) + len(kept) == 1, outcome
        if kept:
            assert kept[0].reason and kept[0].kind in ("unparseable", "bounce", "dropped", "error")
            assert kept[0].kind != "error", kept[0].reason  # real mail must not crash a stage
        assert app.raw_store.read(inbound.raw_path) == raw
    if path.parent.name == "bounces" and path.name not in HUMAN_LOOKING_BOUNCES:
        assert outcome == "quarantined:bounce"
