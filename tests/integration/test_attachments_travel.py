"""Attachments travel both ways (docs/mail.md#attachments, #inline-images): a member's files
with the staff notification, a staff answer's files and pictures to the member. Through a
running `maild run` (its SMTP listener, an aiosmtpd smarthost) and through the pipeline on
SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import os
import re
import smtplib
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from sqlmodel import Session, select

from maild import views
from maild.app import App
from maild.config import load_settings
from maild.intake.spool import spool_sync
from maild.mail import Envelope
from maild.outbound.notices import LISTED, PART_BYTES
from maild.store import db
from maild.store.tables import Outbox
from tests.conftest import run_maild
from tests.integration.smtp_sink import smtp_sink  # noqa: F401  (fixture)
from tests.integration.test_end_to_end import wait_mail

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 160 + b"\n%%EOF\n"  # 40 KB
SIGNED = b"%PDF-1.4 allekirjoitettu\n" + os.urandom(20000) + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
QUOTED_PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)
ANSWER = "Hei Matti,\n\nallekirjoitettu lomake on liitteenä. Näin täytät kohdan 3:\n\nMaija"


def parsed(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def files_of(message: EmailMessage) -> dict[str, tuple[str, str | None, bytes]]:
    """Each file by name: (type, Content-ID, bytes)."""
    return {part.get_filename(): (part.get_content_type(), part["Content-ID"], part.get_payload(decode=True))
            for part in message.walk() if part.get_content_disposition() in ("attachment", "inline")}


def member_mail(*files: tuple[bytes, str, str, str], subject: str = "Jäsenhakemus") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Matti Meikäläinen <matti@example.fi>", "jasenpalvelu@liitto.fi", subject
    msg["Message-ID"] = email.utils.make_msgid(domain="example.fi")
    msg.set_content("Hei, hakemukseni liitteenä.")
    for data, maintype, subtype, name in files:
        if maintype == "message":  # an attached mail, as clients attach one: message/rfc822, not base64
            msg.add_attachment(parsed(data))
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return bytes(msg)


def thunderbird_reply(staff: str, to: str, notice: EmailMessage, extra: tuple[bytes, str] | None = None) -> bytes:
    """A reply as Thunderbird writes one: alternative(plain, related(html, picture)), in mixed
    with the signed form; the notification quoted, its picture too."""
    quoted = "\n".join("> " + line for line in notice.get_body(("plain",)).get_content().splitlines())
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = f"Maija <{staff}>", to, f"Re: {notice['Subject']}"
    msg["Message-ID"] = email.utils.make_msgid(domain="liitto.fi")
    msg["In-Reply-To"] = notice["Message-ID"]
    msg.set_content(f"{ANSWER}\n\nOn 24.11.2026 10.01, Jäsenasiat wrote:\n{quoted}\n")
    html = ("<html><body><p>Hei Matti,</p><p>allekirjoitettu lomake on liitteenä. Näin täytät kohdan 3:</p>"
            '<p><img src="cid:part1.kohta3@liitto.fi" alt="kohta 3"></p><p>Maija</p>'
            '<div class="moz-cite-prefix">On 24.11.2026 10.01, Jäsenasiat wrote:</div>'
            '<blockquote type="cite"><img src="cid:part2.vanha@liitto.fi"><pre>...</pre></blockquote></body></html>')
    msg.add_alternative(html, subtype="html")
    related = msg.get_payload()[1]
    related.add_related(PNG, "image", "png", cid="<part1.kohta3@liitto.fi>", filename="kohta3.png")
    related.add_related(QUOTED_PNG, "image", "png", cid="<part2.vanha@liitto.fi>", filename="vanha.png")
    msg.add_attachment(SIGNED, maintype="application", subtype="pdf", filename="Jäsenhakemus – allekirjoitettu.pdf")
    if extra:
        msg.add_attachment(extra[0], maintype="application", subtype="octet-stream", filename=extra[1])
    return bytes(msg)


def send(port: int, raw: bytes, to: str, sender: str) -> None:
    """With CRLF line ends, as a mail client sends: smtplib dot-stuffs bytes as they are, and a
    line of quoted-printable HTML may start with a dot."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, [to], re.sub(rb"\r?\n", b"\r\n", raw))


def test_the_application_and_the_signed_form_travel_through_smtp(daemon, db_url: str, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    """Issue 14's "done when": the staff member gets the member's PDF with the notification,
    answers from their mail client with a picture and the signed form; the member gets one
    mail with all of it. A file over the limit is listed with the command that gets it."""
    sink = smtp_sink()
    db.upgrade(db_url)  # maild migrates only SQLite by itself
    running = daemon(db_url, extra=f'\n[outbound]\ntransport = "{sink.url()}"\nstarttls = false\n'
                                   "attach_max_bytes = 100000\n")
    big = os.urandom(150_000)
    eml = b"From: esimies@example.fi\r\nSubject: Todistus\r\n\r\nTodistus tyosuhteesta.\r\n"
    send(running.port, member_mail((PDF, "application", "pdf", "hakemus.pdf"), (big, "application", "zip", "../palkat.zip"),
                                   (eml, "message", "rfc822", "")), "jasenpalvelu@liitto.fi", "matti@example.fi")

    notices = [wait_mail(sink, lambda m, s=s: m["To"] == s) for s in ("maija@liitto.fi", "pekka@liitto.fi")]
    for notice in notices:
        files = files_of(notice)
        assert files["hakemus.pdf"] == ("application/pdf", None, PDF)
        # the attached mail as stored (with LF line ends: core/parse.py writes it back so), as a file
        assert files["message.eml"] == ("application/octet-stream", None, eml.replace(b"\r\n", b"\n"))
        assert "palkat.zip" not in files  # 150 KB: over what is left of the 100 KB
    bodies = {r.data[r.data.index(b"MIME-Version"):] for r in sink.received if r.rcpt_tos[0].endswith("@liitto.fi")}
    assert len(bodies) == 1  # one body for both staff members
    text = notices[0].get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "hakemus.pdf (40,0 kB), liitteenä" in text
    listed = next(line for line in text.splitlines() if "palkat.zip" in line)
    command = listed.split(": ", 1)[1].replace("TIEDOSTO", "-").split()
    assert command[:3] == ["maild", "attachments", "get"]
    got = run_maild(*command[1:4], "--config", str(running.config))
    assert got.returncode == 0 and got.stdout == big

    token_address = notices[0]["Reply-To"].addresses[0].addr_spec
    send(running.port, thunderbird_reply("maija@liitto.fi", token_address, notices[0]), token_address, "maija@liitto.fi")
    answer = wait_mail(sink, lambda m: m["To"] == "matti@example.fi" and m["Auto-Submitted"] is None)

    assert answer.get_body(("plain",)).get_content().strip().replace("\r\n", "\n") == ANSWER
    shape = [part.get_content_type() for part in answer.walk()]
    assert shape == ["multipart/mixed", "multipart/alternative", "text/plain", "multipart/related", "text/html",
                     "image/png", "application/pdf"]
    files = files_of(answer)
    assert files == {"kohta3.png": ("image/png", "<part1.kohta3@liitto.fi>", PNG),
                     "Jäsenhakemus – allekirjoitettu.pdf": ("application/pdf", None, SIGNED)}
    html = answer.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert 'src="cid:part1.kohta3@liitto.fi"' in html and "Hei Matti," in html and "vanha" not in html
    assert "--- maild ---" not in html and "maild attachments" not in html
    to_member = [parsed(r.data) for r in sink.received if r.rcpt_tos == ["matti@example.fi"]]
    assert len(to_member) == 2  # the acknowledgement (no files) and the answer
    assert files_of(to_member[0]) == {}


@pytest.fixture
def app(make_instance, db_url: str) -> App:  # type: ignore[no-untyped-def]
    instance = App(load_settings(str(make_instance(db_url))))
    db.upgrade(instance.settings.database_url)
    return instance


def deliver(app: App, raw: bytes, recipients: tuple[str, ...] = ("jasenpalvelu@liitto.fi",)) -> str:
    return app.pipeline.process(spool_sync(app.engine, app.raw_store, raw, Envelope("smtp", None, recipients)))


def sent(app: App, kind: str) -> list[EmailMessage]:
    with Session(app.engine) as session:
        return [parsed(row.raw) for row in session.exec(select(Outbox).where(Outbox.kind == kind).order_by(Outbox.id))]


def test_a_25_mb_file_is_listed_and_500_small_ones_fill_the_budget(app: App) -> None:
    huge = os.urandom(25 * 1024 * 1024)
    assert deliver(app, member_mail((huge, "application", "pdf", "skannaus.pdf"))).startswith("new:")
    (notice, _) = sent(app, "notification")
    assert files_of(notice) == {}
    assert "skannaus.pdf (25 MB), ei liitteenä: maild attachments get 1 --out TIEDOSTO" in \
        notice.get_body(("plain",)).get_content()

    small = [(os.urandom(30_000), "image", "jpeg", f"kuitti {n:03}.jpg") for n in range(500)]
    assert deliver(app, member_mail(*small, subject="Kuitit")).startswith("new:")
    notice = sent(app, "notification")[-1]
    files = files_of(notice)
    fits = 10485760 // (30_000 + PART_BYTES)  # each file costs its part's headers too
    assert sorted(files) == [f"kuitti {n:03}.jpg" for n in range(fits)]
    assert all(files[name][2] == data for data, _, _, name in small[:fits])
    text = notice.get_body(("plain",)).get_content().replace("\r\n", "\n")
    # the first hundred are named (all of them attached), the rest counted
    assert text.count(", liitteenä") == LISTED and "ei liitteenä" not in text
    assert f"… ja {500 - LISTED} muuta tiedostoa: maild tickets show 2 luettelee ne" in text


def test_outlook_pictures_by_marker_and_a_staff_file_over_the_limit(make_instance, db_url: str) -> None:  # type: ignore[no-untyped-def]
    """Outlook: related(alternative(plain with [cid:] markers, html), pictures); its quotation's
    picture stays behind; a file of the answer over the limit is not relayed, and the ticket says so."""
    app = App(load_settings(str(make_instance(db_url, extra="\n[outbound]\nattach_max_bytes = 50000\n"))))
    db.upgrade(app.settings.database_url)
    deliver(app, member_mail(subject="Lomake"))
    notice = next(m for m in sent(app, "notification") if m["To"] == "maija@liitto.fi")
    token_address = notice["Reply-To"].addresses[0].addr_spec

    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText("Hei Matti,\n\nkatso kuvaa:\n[cid:image001.png@01DB4A2E.5C9F1A40]\n\nMaija\n\n"
                                "Lähettäjä: Jäsenasiat <jasenpalvelu@liitto.fi>\nLähetetty: 24.11.2026\n\n"
                                "[cid:image002.png@01DB4A2E.5C9F1A40]\n--- maild ---\n", "plain", "utf-8"))
    alternative.attach(MIMEText('<p>Hei Matti,</p><p>katso kuvaa:</p><img src="cid:image001.png@01DB4A2E.5C9F1A40">'
                                '<div style="border:none;border-top:solid #E1E1E1 1.0pt"><b>Lähettäjä:</b></div>'
                                '<img src="cid:image002.png@01DB4A2E.5C9F1A40">', "html", "utf-8"))
    related = MIMEMultipart("related")
    related.attach(alternative)
    for data, number in ((PNG, 1), (QUOTED_PNG, 2)):
        picture = MIMEImage(data, "png")
        picture["Content-ID"] = f"<image00{number}.png@01DB4A2E.5C9F1A40>"
        picture.add_header("Content-Disposition", "inline", filename=f"image00{number}.png")
        related.attach(picture)
    msg = MIMEMultipart("mixed")
    msg["From"], msg["To"], msg["Subject"] = "Maija <maija@liitto.fi>", token_address, "VS: [JP#1] Lomake"
    msg["Message-ID"] = email.utils.make_msgid(domain="liitto.fi")
    msg.attach(related)
    iso = MIMEApplication(os.urandom(60_000), "pdf")
    iso.add_header("Content-Disposition", "attachment", filename="iso.pdf")
    msg.attach(iso)
    assert deliver(app, bytes(msg), recipients=(token_address,)) == "follow_up:1"

    (answer,) = sent(app, "staff")
    assert files_of(answer) == {"image001.png": ("image/png", "<image001.png@01DB4A2E.5C9F1A40>", PNG)}
    html = answer.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert 'katso kuvaa:<br>\n<img src="cid:image001.png@01DB4A2E.5C9F1A40"' in html
    with Session(app.engine) as session:
        detail = views.ticket_detail(session, "JP", 1)
    assert detail is not None
    (event,) = [e for e in detail["events"] if e["kind"] == "attachments_not_relayed"]
    staff_message = next(m for m in detail["messages"] if m["kind"] == "staff")
    iso = next(a["id"] for a in staff_message["attachments"] if a["filename"] == "iso.pdf")
    assert event["data"] == {"attachments": [iso], "limit": 50000} and event["actor"] == "maija@liitto.fi"
    (told,) = [m for m in sent(app, "notification") if m["To"] == "maija@liitto.fi" and m["Auto-Submitted"] == "auto-replied"]
    text = told.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "lähti jäsenelle, mutta ilman näitä liitteitä" in text and "iso.pdf (58,6 kB)" in text
    assert "48,8 kB" in text and files_of(told) == {}


def test_a_canned_answer_a_sentence_and_the_signed_form_reach_the_member_as_one_mail(app: App) -> None:
    """Issue 14's "done when", whole: the staff member replies to the notification (which
    carried the member's PDF) with ``#answer jasenmaksu``, one sentence of their own and the
    signed form attached; the member gets one mail with the answer above the sentence, and the
    form."""
    assert deliver(app, member_mail((PDF, "application", "pdf", "hakemus.pdf"))).startswith("new:")
    notice = next(n for n in sent(app, "notification") if n["To"] == "maija@liitto.fi")
    assert files_of(notice)["hakemus.pdf"] == ("application/pdf", None, PDF)
    token_address = notice["Reply-To"].addresses[0].addr_spec
    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = "Maija <maija@liitto.fi>", token_address, f"Re: {notice['Subject']}"
    reply["Message-ID"] = email.utils.make_msgid(domain="liitto.fi")
    reply["In-Reply-To"] = notice["Message-ID"]
    reply.set_content("#answer jasenmaksu\nLiitteenä myös allekirjoitettu lomakkeesi.\n\n> lainaus ilmoituksesta\n")
    reply.add_attachment(SIGNED, maintype="application", subtype="pdf", filename="lomake-allekirjoitettu.pdf")
    assert deliver(app, bytes(reply), (token_address,)).startswith("follow_up:")

    (answer,) = [m for m in sent(app, "staff") if m["To"] == "matti@example.fi"]
    text = answer.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "kiitos kysymyksestäsi jäsenmaksusta" in text and "#answer" not in text and "lainaus" not in text
    assert text.index("jäsenmaksusta") < text.index("Liitteenä myös allekirjoitettu lomakkeesi.")
    assert files_of(answer) == {"lomake-allekirjoitettu.pdf": ("application/pdf", None, SIGNED)}


def test_the_notification_attached_to_a_reply_is_not_relayed(app: App) -> None:
    """Outlook's "When replying: attach original message" (or a forward as attachment) puts
    maild's own notification into the staff reply as ``message/rfc822``: its internal block,
    the staff member's secret reply address and the member's files. Like the quotation, it
    never reaches the member or the CCs; the staff member's own file does."""
    first = member_mail((PDF, "application", "pdf", "hakemus.pdf"))
    first = first.replace(b"To: jasenpalvelu@liitto.fi", b"To: jasenpalvelu@liitto.fi\nCc: esimies@example.fi", 1)
    assert deliver(app, first).startswith("new:")
    notice = next(n for n in sent(app, "notification") if n["To"] == "maija@liitto.fi")
    token_address = notice["Reply-To"].addresses[0].addr_spec
    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = "Maija <maija@liitto.fi>", token_address, f"RE: {notice['Subject']}"
    reply["Message-ID"] = email.utils.make_msgid(domain="liitto.fi")
    reply.set_content("Hei Matti,\n\nlomake on liitteenä.\n\nMaija\n")
    reply.add_attachment(notice)  # the notification as it came, as message/rfc822
    converted = parsed(bytes(notice))
    del converted["X-Maild-Loop"]  # as Exchange converts an attached item: X- headers gone, the Message-ID kept
    converted.replace_header("Subject", "FW: " + notice["Subject"])
    reply.add_attachment(converted)
    reply.add_attachment(SIGNED, maintype="application", subtype="pdf", filename="lomake.pdf")
    assert deliver(app, bytes(reply), (token_address,)).startswith("follow_up:")

    answer, to_cc = sent(app, "staff")  # one row for the member, one for the CC: the same mail
    assert answer["To"] == "matti@example.fi" and answer["Cc"] == "esimies@example.fi"
    assert bytes(to_cc) == bytes(answer)
    assert files_of(answer) == {"lomake.pdf": ("application/pdf", None, SIGNED)}
    wire = bytes(answer)
    assert token_address.split("@")[0].encode() not in wire and b"--- maild ---" not in wire


def test_thousands_of_empty_files_do_not_make_the_notification_huge(make_instance, db_url: str) -> None:  # type: ignore[no-untyped-def]
    """Anyone can mail the queue: 3,000 empty files cost 0 bytes each, so all went with the
    notification (about 200 bytes of MIME headers and a line of listing each), to every staff
    member: a notification many times the limit, and a mail a staff mailbox may refuse. Each
    file counts its part's headers too, and the notification lists a bounded number of files."""
    app = App(load_settings(str(make_instance(db_url, extra="\n[outbound]\nattach_max_bytes = 100000\n"))))
    db.upgrade(app.settings.database_url)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "matti@example.fi", "jasenpalvelu@liitto.fi", "Tiedostoja"
    msg.set_content("Hei.")
    for n in range(3000):
        msg.add_attachment(b"", maintype="application", subtype="octet-stream", filename=f"tyhja-{n}.txt")
    assert deliver(app, bytes(msg)).startswith("new:")
    with Session(app.engine) as session:
        sizes = [len(row.raw) for row in session.exec(select(Outbox).where(Outbox.kind == "notification"))]
    assert sizes and max(sizes) < 100000 * 4 // 3 + 64 * 1024
    notice = sent(app, "notification")[0]
    assert 0 < len(files_of(notice)) < 100
    text = notice.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "maild tickets show 1" in text and "tyhja-2999.txt" not in text


def test_a_big_answer_and_the_resolved_notice_after_it_keep_their_order(app: App) -> None:
    """An answer with a 2 MB file is written by a statement of its own (``outbox._insert_rows``);
    the resolved notice that the same reply's ``#close`` queues after it still comes after it."""
    assert deliver(app, member_mail()).startswith("new:")
    notice = next(n for n in sent(app, "notification") if n["To"] == "maija@liitto.fi")
    token_address = notice["Reply-To"].addresses[0].addr_spec
    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = "Maija <maija@liitto.fi>", token_address, f"Re: {notice['Subject']}"
    reply["In-Reply-To"] = notice["Message-ID"]
    reply.set_content("#close\nLomake liitteenä.\n")
    form = os.urandom(2 * 1024 * 1024)
    reply.add_attachment(form, maintype="application", subtype="pdf", filename="lomake.pdf")
    assert deliver(app, bytes(reply), (token_address,)).startswith("follow_up:")
    with Session(app.engine) as session:
        rows = session.exec(select(Outbox).where(Outbox.recipient == "matti@example.fi").order_by(Outbox.id)).all()
    assert [row.kind for row in rows] == ["ack", "staff", "resolved"]
    assert files_of(parsed(rows[1].raw)) == {"lomake.pdf": ("application/pdf", None, form)}
