"""The web form channel (issue 14): a real `maild run` with `[web] listen`, driven over HTTP and
by a real headless Chromium filling in the form."""

from __future__ import annotations

import contextlib
import os
import socket
import re
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.integration.test_smtp import wait_for

CHROMIUM = Path("/usr/bin/chromium")


def web(port: int, per_ip: int = 50, per_address: int = 3) -> str:
    return (f'\n[web]\nlisten = "127.0.0.1:{port}"\nper_ip_per_hour = {per_ip}\n'
            f'per_address_per_hour = {per_address}\nmax_body_bytes = 65536\n')


def rows(sqlite_url: str, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        return conn.execute(sql).fetchall()


def request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    req = urllib.request.Request(url, data=data, headers={
        "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def token(base: str) -> str:
    status, page, _ = request(base)
    assert status == 200
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def post(base: str, **fields: str) -> tuple[int, str, Any]:
    return request(base, urllib.parse.urlencode(fields).encode())


def oversized(port: int, framing: str) -> tuple[str, str]:
    """POST a 10 MB body the way a client that does not wait would, and read what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     f"{framing}\r\n\r\n".encode())
        chunk = b"x" * 65536
        try:
            for _ in range(160):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if "chunked" in framing else chunk)
        except OSError:  # refused before the end: the answer is waiting
            pass
        data = b""
        with contextlib.suppress(OSError):
            while part := sock.recv(65536):
                data += part
    head, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
    return head, body


FORM = {"name": "Maija Meikäläinen", "email": "maija@example.fi", "subject": "Jäsenmaksu", "message": "Paljonko se on?"}


def test_posts_are_stored_once_with_clear_answers_for_bad_ones(daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    running = daemon(extra=web(port))
    base = f"http://127.0.0.1:{port}/"
    first = token(base)

    status, page, _ = post(base, **{**FORM, "email": ""}, token=first)
    assert status == 400 and 'aria-invalid="true" aria-describedby="email-error"' in page and "tämä tieto puuttuu" in page
    status, page, _ = post(base, **{**FORM, "website": "http://spam.example"}, token=first)  # the honeypot
    assert status == 200 and "Kiitos" in page
    for framing in ("Content-Length: 10000000", "Transfer-Encoding: chunked"):  # 10 MB, declared or not
        status_line, page = oversized(port, framing)
        assert status_line.startswith("HTTP/1.1 413") and "liian pitkä" in page
    status, page, _ = post(base, **FORM, token="1.2.3")
    assert status == 400 and "Lomake vanheni" in page and "Paljonko se on?" in page  # the text is kept
    assert rows(sqlite_url, "select count(*) from inbound") == [(0,)]

    assert post(base, **FORM, token=first)[0] == 200
    assert post(base, **FORM, token=first)[0] == 200  # a reload or a double click
    wait_for(lambda: rows(sqlite_url, "select count(*) from tickets") == [(1,)])
    assert rows(sqlite_url, "select source, mail_from from inbound") == [("web", "maija@example.fi")]
    ticket = rows(sqlite_url, "select number, requester, queue, subject, channel from tickets")
    assert ticket == [(1, "maija@example.fi", "jasenasiat", "Jäsenmaksu", "web")]
    wait_for(lambda: rows(sqlite_url, "select recipient from outbox where kind = 'ack'") == [("maija@example.fi",)])

    for _ in range(2):  # the address's limit is 3 an hour; one is used
        assert post(base, **FORM, token=token(base))[0] == 200
    status, page, headers = post(base, **FORM, token=token(base))
    assert status == 429 and int(headers["Retry-After"]) > 0 and "liian monta" in page
    assert running.log.read_text().count("web form: stored") == 3


def test_a_client_over_its_limit_is_told_to_wait(daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    daemon(extra=web(port, per_ip=5, per_address=100))
    base = f"http://127.0.0.1:{port}/"
    answers = [post(base, **{**FORM, "email": f"m{i}@example.fi"}, token=token(base))[0] for i in range(100)]
    assert answers[:5] == [200] * 5 and set(answers[5:]) == {429}
    wait_for(lambda: rows(sqlite_url, "select count(*) from tickets") == [(5,)])
    assert rows(sqlite_url, "select count(*) from inbound") == [(5,)]


def test_a_member_fills_in_the_form_in_a_real_browser(daemon, sqlite_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI installs chromium (.ci/run); it is missing")
        pytest.skip("no /usr/bin/chromium on this machine")
    from playwright.sync_api import sync_playwright

    port = free_port()
    daemon(extra=web(port))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(locale="sv-FI", viewport={"width": 390, "height": 844})
        page.goto(f"http://127.0.0.1:{port}/")
        assert page.locator("h1").inner_text() == "Kontakta medlemsservicen"  # from Accept-Language
        page.get_by_label("Namn").fill("Sanna Svensson")
        page.get_by_label("E-postadress").fill("sanna@example")  # no dot in the domain
        page.get_by_label("Ämne").fill("Medlemskortet")
        page.get_by_label("Meddelande").fill("Var hittar jag mitt medlemskort?")
        page.get_by_role("button", name="Skicka").click()
        assert page.get_by_role("alert").inner_text().startswith("Kontrollera följande")
        assert page.get_by_label("E-postadress").get_attribute("aria-invalid") == "true"
        assert page.get_by_label("Meddelande").input_value() == "Var hittar jag mitt medlemskort?"
        page.get_by_label("E-postadress").fill("sanna@example.fi")
        page.get_by_role("button", name="Skicka").click()
        assert page.get_by_role("status").inner_text().startswith("Tack! Ditt meddelande har tagits emot.")
        page.screenshot(path=str(tmp_path / "web_form.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'web_form.png'}")
        browser.close()
    wait_for(lambda: rows(sqlite_url, "select requester, subject from tickets") == [("sanna@example.fi", "Medlemskortet")])
    wait_for(lambda: rows(sqlite_url, "select recipient from outbox where kind = 'ack'") == [("sanna@example.fi",)])
    assert (tmp_path / "web_form.png").stat().st_size > 5000


def test_a_form_post_never_joins_an_existing_ticket(daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """Anyone can type any address and any subject into the form: with a member's address and
    their ticket's tag, a post would be filed as that member's own follow-up (their words,
    reopening their ticket). Mail has at least its sender's server; the form has nothing, so
    its posts always open a ticket of their own."""
    from tests.conftest import run_maild
    from tests.mailgen import mail

    port = free_port()
    running = daemon(extra=web(port))
    member = mail(subject="Palkkasaatava", sender="Matti <matti@example.fi>", body="Työnantaja ei maksa palkkaa.")
    assert run_maild("--config", str(running.config), "ingest", input=member).returncode == 0
    base = f"http://127.0.0.1:{port}/"
    forged = {**FORM, "email": "matti@example.fi", "subject": "Re: [JP#1] Palkkasaatava",
              "message": "Asia on ratkennut, perun pyyntöni."}
    assert post(base, **forged, token=token(base))[0] == 200
    wait_for(lambda: rows(sqlite_url, "select count(*) from inbound where state = 'pending'") == [(0,)]
             and rows(sqlite_url, "select count(*) from inbound where source = 'web'") == [(1,)])
    assert rows(sqlite_url, "select number, channel from tickets order by number") == [(1, "email"), (2, "web")]
    assert rows(sqlite_url, "select count(*) from messages m join tickets t on t.id = m.ticket_id "
                            "where t.number = 1 and m.text like '%perun pyyntöni%'") == [(0,)]


def test_one_ipv6_network_is_one_client(daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """Anyone with IPv6 has a /64 of addresses (2^64 of them): counted one by one, the per-client
    limit would bound nothing, and the form would send acknowledgements (with a name and a
    subject of the sender's choosing) to any address at any rate."""
    port = free_port()
    daemon(extra=web(port, per_ip=3, per_address=100) + 'forwarded_allow_ips = ["127.0.0.1"]\n')
    base = f"http://127.0.0.1:{port}/"
    answers = [request(base, urllib.parse.urlencode({**FORM, "email": f"m{i}@example.fi", "token": token(base)}).encode(),
                       {"X-Forwarded-For": f"2001:db8:1:2::{i + 1:x}"})[0] for i in range(6)]
    assert answers == [200, 200, 200, 429, 429, 429]
    other_network = request(base, urllib.parse.urlencode({**FORM, "token": token(base)}).encode(),
                            {"X-Forwarded-For": "2001:db8:1:3::1"})[0]
    assert other_network == 200


def test_the_acknowledgement_of_a_post_repeats_nothing_the_poster_typed(daemon, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """Anyone can type anyone's address into the form: the union's acknowledgement must not
    carry a stranger's subject, name or text to it. Staff still get all of it."""
    import email
    import email.policy

    port = free_port()
    daemon(extra=web(port))
    base = f"http://127.0.0.1:{port}/"
    lure = {"name": "Pankin turvatiimi", "email": "uhri@example.fi",
            "subject": "Tilisi suljetaan, vahvista tiedot osoitteessa huijaus.example",
            "message": "Kirjaudu heti osoitteessa https://huijaus.example/kirjaudu"}
    assert post(base, **lure, token=token(base))[0] == 200
    wait_for(lambda: rows(sqlite_url, "select count(*) from outbox where kind in ('ack', 'notification')") == [(3,)])
    (ack,) = [email.message_from_bytes(raw, policy=email.policy.default)
              for (raw,) in rows(sqlite_url, "select raw from outbox where kind = 'ack'")]
    assert ack["To"] == "uhri@example.fi" and "[JP#1]" in ack["Subject"]
    shown = ack["Subject"] + "".join(part.get_content() for part in ack.walk() if part.get_content_maintype() == "text")
    for typed in ("huijaus", "Pankin", "turvatiimi", "Kirjaudu"):
        assert typed not in shown
    staff = rows(sqlite_url, "select raw from outbox where kind = 'notification'")
    assert all(b"huijaus.example" in raw for (raw,) in staff)
