"""Prometheus metrics from a running daemon (docs/operations.md), scraped over real HTTP."""

from __future__ import annotations

import json
import re
import smtplib
import time
import urllib.request

from tests.conftest import free_port, run_maild
from tests.mailgen import mail


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {match[1]: float(match[2]) for match in re.finditer(r"^(maild_\S+) (\S+)$", text, re.MULTILINE)}


def test_metrics_count_received_filed_and_waiting_mail(daemon) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    running = daemon(extra=f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
    before = scrape(port)
    assert before["maild_spool_pending"] == 0 and before["maild_quarantine_messages"] == 0
    assert "maild_outbox_failed_total" in before
    with smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
        for n in range(3):
            client.sendmail("matti@example.fi", ["jasenpalvelu@liitto.fi"], mail(subject=f"Hei {n}", message_id=f"<h{n}@x>"))
        client.sendmail("matti@example.fi", ["jasenpalvelu@liitto.fi"], b"\r\n\r\n")  # nothing to read: quarantined
        client.sendmail("matti@example.fi", ["jasenpalvelu@liitto.fi"], mail(subject="Hei 0", message_id="<h0@x>"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        figures = scrape(port)
        if figures.get('maild_messages_filed_total{outcome="filed"}') == 3 and figures.get(
                'maild_messages_filed_total{outcome="quarantined"}') == 1 and figures.get(
                'maild_messages_filed_total{outcome="duplicate"}') == 1:
            break
        time.sleep(1)
    assert figures['maild_messages_received_total{source="smtp"}'] == 5
    assert figures['maild_messages_filed_total{outcome="duplicate"}'] == 1  # the same mail again
    assert figures["maild_quarantine_messages"] == 1 and figures["maild_spool_pending"] == 0
    assert "maild_outbox_queued" in figures


def test_metrics_tell_when_each_imap_mailbox_last_succeeded(daemon) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.dovecot import Dovecot

    server = Dovecot.start()
    try:
        account = server.add_user()
        port = free_port()
        before = time.time()
        running = daemon(extra=server.imap_toml(account) + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
        server.append(account, mail(subject="IMAP mittari", message_id="<imap-metric@x>"))
        deadline = time.monotonic() + 30
        key = 'maild_imap_last_success_timestamp_seconds{mailbox="jasenpalvelu"}'
        while time.monotonic() < deadline:
            figures = scrape(port)
            if figures.get('maild_messages_received_total{source="imap"}') == 1 and key in figures:
                break
            time.sleep(1)
        assert figures['maild_messages_received_total{source="imap"}'] == 1
        assert before - 5 < figures[key] <= time.time() + 5
        status = json.loads(run_maild("status", "--json", "--config", str(running.config)).stdout)  # the same health
        assert [box["name"] for box in status["imap"]] == ["jasenpalvelu"]
        assert status["imap"][0]["last_success_at"] and status["imap"][0]["last_error"] is None
    finally:
        server.stop()
