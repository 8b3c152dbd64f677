"""The whole loop through real SMTP: a running `maild run`, mail in over its listener, mail
out through a smarthost (an aiosmtpd sink), staff answering from their mail client."""

from __future__ import annotations

import email
import email.policy
import json
import smtplib
import time

from tests.conftest import run_maild
from tests.integration.smtp_sink import smtp_sink  # noqa: F401  (fixture)
from tests.mailgen import mail


def parsed(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def wait_mail(sink, predicate, timeout: float = 30.0) -> email.message.EmailMessage:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for received in list(sink.received):
            message = parsed(received.data)
            if predicate(message):
                return message
        time.sleep(0.2)
    raise AssertionError(f"no such mail; got {[parsed(r.data)['Subject'] for r in sink.received]}")


def body(message: email.message.EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def send(port: int, raw: bytes, to: str, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, [to], raw)


def test_member_staff_member_loop(daemon, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    sink = smtp_sink()
    running = daemon(extra=f'\n[outbound]\ntransport = "{sink.url()}"\nstarttls = false\n')

    send(running.port, mail(subject="Osoitteenmuutos", body="Uusi osoitteeni on Kotikatu 1."), "jasenpalvelu@liitto.fi",
         "matti@example.fi")
    ack = wait_mail(sink, lambda m: m["To"] == "matti@example.fi" and m["Auto-Submitted"] == "auto-replied")
    assert ack["Subject"].startswith("[JP#1]") and "jasenpalvelu@liitto.fi" in str(ack["From"])
    notice = wait_mail(sink, lambda m: m["To"] == "maija@liitto.fi")
    assert "Kotikatu 1" in body(notice)

    # Maija answers from Outlook: top-posted, the notification quoted under a header block
    token_address = notice["Reply-To"].addresses[0].addr_spec
    quoted = "\n".join("> " + line for line in body(notice).splitlines())
    answer_text = "Hei Matti,\n\nosoitteesi on nyt päivitetty.\n\nYstävällisin terveisin\nMaija"
    reply = mail(subject=f"VS: {notice['Subject']}", sender="Maija <maija@liitto.fi>", to=token_address,
                 body=f"{answer_text}\n\nLähettäjä: Jäsenasiat <jasenpalvelu@liitto.fi>\nLähetetty: 24.11.2026\n{quoted}")
    send(running.port, reply, token_address, "maija@liitto.fi")
    answer = wait_mail(sink, lambda m: m["To"] == "matti@example.fi" and m["Auto-Submitted"] is None)
    assert "[JP#1]" in answer["Subject"] and "jasenpalvelu@liitto.fi" in str(answer["From"])
    assert body(answer).strip().replace("\r\n", "\n") == answer_text
    assert answer["In-Reply-To"]  # threaded after the member's message

    # the member replies: the assignee (Maija, who answered) hears of it
    member_reply = mail(subject=f"Re: {answer['Subject']}", body="Kiitos paljon!", in_reply_to=answer["Message-ID"])
    send(running.port, member_reply, answer["Reply-To"].addresses[0].addr_spec, "matti@example.fi")
    wait_mail(sink, lambda m: m["To"] == "maija@liitto.fi" and "Kiitos paljon!" in body(m))

    # a spoofed staff reply changes nothing
    spoof = mail(subject="VS: [JP#1] Osoitteenmuutos", body="#assign pekka@liitto.fi\nOlet voittanut!",
                 sender="maija@liitto.fi")
    send(running.port, spoof, "jasenpalvelu@liitto.fi", "maija@liitto.fi")

    # Maija closes it; the member gets the resolved notice
    send(running.port, mail(subject="VS: [JP#1]", body="#close\n", sender="maija@liitto.fi", to=token_address),
         token_address, "maija@liitto.fi")
    resolved = wait_mail(sink, lambda m: m["To"] == "matti@example.fi" and m["Auto-Submitted"] == "auto-generated")
    assert resolved["Subject"].startswith("[JP#1]")
    shown = json.loads(run_maild("tickets", "show", "1", "--json", "--config", str(running.config)).stdout)
    assert (shown["status"], shown["assignee"]) == ("resolved", "maija@liitto.fi")
    to_member = [parsed(r.data) for r in sink.received if r.rcpt_tos == ["matti@example.fi"]]
    assert len(to_member) == 3 and not any("Olet voittanut" in body(m) for m in to_member)  # ack, answer, resolved
    assert "staff_unproven" in [e["kind"] for e in shown["events"]]
