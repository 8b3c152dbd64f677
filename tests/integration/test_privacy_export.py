"""`maild members export` (docs/coming.md#reports-and-privacy, Art. 15): everything stored about an address in one
private zip with an index a person can read; it streams (a thousand tickets and large
attachments do not grow its memory)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, select

from maild.privacy.export import export
from maild.store.tables import Attachment, Message, Ticket
from tests.conftest import REPO, run_maild
from tests.integration.test_privacy_erase import ADDRESS, NAME, SECRET_TEXT, app, history  # noqa: F401

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def test_export_holds_everything_and_says_what_it_is(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    numbers = history(app)
    with Session(app.engine) as session:  # their ticket is confidential: still theirs to see
        own = session.exec(select(Ticket).where(Ticket.number == numbers["own"])).one()
        own.confidential = True
        session.commit()
    target = tmp_path / "matti.zip"
    old_umask = os.umask(0o022)
    try:
        summary = export(app.engine, app.settings.data_dir, ADDRESS.upper(), target, NOW)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert summary["found"] and summary["tickets"] == 2 and summary["attachments"] == 1 and summary["quarantined"] == 1
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        index = json.loads(archive.read("index.json"))
        assert {entry["file"] for entry in index["files"]} == names  # every file explained, no other
        assert all(entry["what"] for entry in index["files"])
        assert set(index["readme"]) == {"fi", "sv", "en"} and index["about"] == ADDRESS
        own_folder = f"tickets/{numbers['own']}"
        ticket = json.loads(archive.read(f"{own_folder}/ticket.json"))
        assert ticket["ticket"]["confidential"] is True and ticket["ticket"]["subject"] == "Palkkatodistus"
        assert SECRET_TEXT in ticket["messages"][0]["text"]
        assert any(e["kind"] == "created" for e in ticket["events"])
        eml = archive.read(ticket["messages"][0]["eml"])
        assert SECRET_TEXT.encode() in eml and hashlib.sha256(eml).hexdigest()
        (attachment,) = ticket["messages"][0]["attachments"]
        assert archive.read(attachment["file"]) == b"%PDF-1.4 matin palkka 4321 e"
        liisa = json.loads(archive.read(f"tickets/{numbers['liisa']}/ticket.json"))
        assert liisa["ticket"]["your_role"] == "cc" and "subject" not in liisa["ticket"]
        assert {m["from_addr"] for m in liisa["messages"]} == {"liisa@example.fi", ADDRESS}  # not maild's notices
        assert not any(name.startswith(f"tickets/{numbers['other']}/") for name in names)  # Pekka's is not his
        assert any(name.startswith("outgoing/") for name in names)
        assert any(name.startswith("kept/") and name.endswith(".eml") for name in names)
        member = json.loads(archive.read("member.json"))
        assert member["contacts"][0]["name"] == NAME


def test_export_streams_a_thousand_tickets_and_large_attachments(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    history(app)
    data_dir = app.settings.data_dir
    big = []
    for n in range(3):  # 3 x 60 MB on disk
        path = data_dir / "attachments" / f"big{n}"
        with path.open("wb") as handle:
            for _ in range(60):
                handle.write(os.urandom(1 << 20))
        big.append(path)
    tickets, messages = Ticket.__table__, Message.__table__  # type: ignore[attr-defined]
    with Session(app.engine) as session:
        first = session.execute(sa.select(sa.func.max(tickets.c.number))).scalar_one() + 1
        session.execute(sa.insert(tickets), [dict(number=first + i, queue="jasenasiat", requester=ADDRESS, subject=f"Asia {i}",
                                                  status="closed", tags=[], other_queues=[], cc=[], created_at=NOW,
                                                  updated_at=NOW, status_changed_at=NOW) for i in range(1000)])
        ids = session.execute(sa.select(tickets.c.id).where(tickets.c.number >= first)).scalars().all()
        session.execute(sa.insert(messages), [dict(ticket_id=i, direction="in", kind="member", from_addr=ADDRESS, to=[], cc=[],
                                                   references=[], text="x" * 2000, created_at=NOW) for i in ids])
        message_ids = session.execute(sa.select(messages.c.id).where(messages.c.ticket_id.in_(ids[:3]))).scalars().all()
        for message_id, path in zip(message_ids, big):
            session.add(Attachment(message_id=message_id, filename="iso.bin", size=60 << 20, sha256="0",
                                   path=str(path.relative_to(data_dir))))
        session.commit()
    target = tmp_path / "big.zip"
    # in a process of its own, so that its peak memory is its own
    program = (
        "import resource, sys, json; from datetime import datetime, timezone; from pathlib import Path\n"
        "from maild.privacy.export import export; from maild.store import db\n"
        "engine = db.make_engine(sys.argv[1]); before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "summary = export(engine, Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), datetime.now(timezone.utc))\n"
        "print(json.dumps({'summary': summary, 'growth_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}))\n"
    )
    done = subprocess.run([sys.executable, "-c", program, app.settings.database_url, str(data_dir), ADDRESS, str(target)],
                          capture_output=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["summary"]["tickets"] == 1002 and result["summary"]["attachments"] == 4
    assert target.stat().st_size > 180 << 20
    assert result["growth_kb"] < 60 << 10, f"memory grew {result['growth_kb'] >> 10} MB for a 180 MB export"


def test_cli_export(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    history(app)
    config = app.settings.source
    target = tmp_path / "out.zip"
    done = run_maild("--config", config, "members", "export", ADDRESS, "--out", str(target))
    assert done.returncode == 0, done.stderr
    assert b"2 tickets" in done.stdout and zipfile.is_zipfile(target)
    again = run_maild("--config", config, "members", "export", ADDRESS, "--out", str(target))
    assert again.returncode == 1 and b"exists" in again.stderr
    nobody = run_maild("--config", config, "members", "export", "nobody@example.fi", "--out", str(tmp_path / "n.zip"))
    assert nobody.returncode == 0 and b"no data stored" in nobody.stdout
    assert json.loads(zipfile.ZipFile(tmp_path / "n.zip").read("index.json"))["found"] is False
    bad = run_maild("--config", config, "members", "export", "Matti Meikäläinen", "--out", str(tmp_path / "x.zip"))
    assert bad.returncode == 1 and b"not an email address" in bad.stderr


def test_export_leaves_out_tickets_of_an_address_that_merely_contains_theirs(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """``kalle.matti.meikalainen@example.fi`` holds Matti's address as a substring: his tickets,
    in whatever queue, are none of Matti's business (not even that they exist)."""
    from tests.integration.test_privacy_erase import deliver
    from tests.mailgen import mail

    other = "kalle." + ADDRESS
    number = int(deliver(app, mail(subject="Irtisanominen", sender=f"Kalle <{other}>",
                                   cc="Liisa <liisa@example.fi>")).split(":")[1])
    with Session(app.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        ticket.queue, ticket.confidential = "lakineuvonta", True
        session.commit()
    target = tmp_path / "matti.zip"
    summary = export(app.engine, app.settings.data_dir, ADDRESS, target, NOW)
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        assert not any(name.startswith(f"tickets/{number}/") for name in names), names
    assert summary["tickets"] == 0 and not summary["found"]
