"""`[staff] authentication = "authres"` through the whole pipeline: a forged result in a comment,
a quoted string or an encoded word never gets a staff command obeyed (docs/mail.md#staff)."""

from __future__ import annotations

import email
import email.policy

import pytest
from sqlmodel import Session, select

from maild import views
from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.store import db
from maild.store.tables import Outbox
from tests.mailgen import mail

AUTHRES = '\n[staff]\nauthentication = "authres"\ntrusted_authserv_ids = ["mx.liitto.fi"]\n'


def deliver(app: App, raw: bytes) -> str:
    return app.pipeline.process(spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", None, ("jasenpalvelu@liitto.fi",))))


def sent_to(app: App, kind: str) -> list[str]:
    with Session(app.engine) as session:
        rows = session.exec(select(Outbox).where(Outbox.kind == kind).order_by(Outbox.id)).all()
        return [str(email.message_from_bytes(r.raw, policy=email.policy.default)["To"]) for r in rows]  # type: ignore[misc]


@pytest.mark.parametrize(
    ("result", "obeyed"),
    [
        ("mx.liitto.fi; dkim=pass header.d=liitto.fi", True),  # the control: a real pass is obeyed
        ("mx.liitto.fi; dkim=fail (bad signature; dkim=pass header.d=liitto.fi )", False),
        ("mx.liitto.fi; spf=fail (dkim=pass header.d=liitto.fi ) smtp.mailfrom=evil.example", False),
        ('mx.liitto.fi; spf=fail smtp.helo="dkim=pass header.d=liitto.fi"', False),
        ("mx.liitto.fi; dkim=fail header.d==?utf-8?q?x=3B_dkim=3Dpass_header.d=3Dliitto.fi?=", False),
    ],
)
def test_a_forged_pass_gets_no_command_obeyed(make_instance, sqlite_url: str, result: str, obeyed: bool) -> None:  # type: ignore[no-untyped-def]
    app = App(load_settings(str(make_instance(sqlite_url, extra=AUTHRES))))
    db.upgrade(app.settings.database_url)
    assert deliver(app, mail(subject="Jäsenmaksu")) == "new:1"
    forged = mail(subject="VS: [JP#1] Jäsenmaksu", body="#close\nAsia on hoidettu.", sender="Maija <maija@liitto.fi>")
    assert deliver(app, f"Authentication-Results: {result}\r\n".encode() + forged) == "follow_up:1"

    with Session(app.engine) as session:
        detail = views.ticket_detail(session, "JP", 1)
    assert detail is not None
    kinds = [event["kind"] for event in detail["events"]]
    if obeyed:
        assert detail["status"] == "resolved" and sent_to(app, "resolved") == ["matti@example.fi"]
        assert "staff_unproven" not in kinds
    else:
        assert detail["status"] == "new" and "staff_unproven" in kinds
        assert sent_to(app, "resolved") == [] and sent_to(app, "staff") == []
