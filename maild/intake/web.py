"""The web form channel: a small HTTP listener (Starlette on uvicorn) whose form posts go
into the same durable spool as SMTP. Off unless ``[web] listen`` is set.

What it promises (docs/mail.md, web form):
- stored before yes: the thank-you page is sent only after the spool row is committed; a
  storage failure says "try again" (503) and stores nothing half;
- the page comes in Finnish, Swedish or English (``?lang=``, else the browser's languages,
  else the queue's), from ``templates/LANG/web/form.html``, so the association words it;
- bounded: a request body over ``max_body_bytes`` is refused (413) without being read whole;
  a hidden honeypot field catches simple bots; posts are limited per client IP and per
  member address (429 with Retry-After);
- nothing twice: each page carries a one-use token; a form posted again (a reload, a double
  click) is thanked again without a second message. After a restart, or on another instance,
  the page's post is stored again, but as the same message (the token gives its Message-ID and
  Date, only the trace header differs), so the duplicate check files it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from maild.core import webform
from maild.mail import Envelope
from maild.outbound.templates import LANGUAGES
from maild.supervise import Tracker

log = logging.getLogger("maild.web")

Accept = Callable[[bytes, Envelope], Awaitable[int]]
TEMPLATE = "web/form.html"
WINDOW_SECONDS = 3600.0
_TRACKED_KEYS = 10_000  # clients and addresses remembered by the limiter; the oldest go first
_USED_TOKENS = 100_000


class Limiter:
    """At most ``limit`` events per key in a sliding hour, in memory (one daemon's count)."""

    def __init__(self, limit: int, window: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may go again; 0 when it may now (and the event is counted)."""
        times = self._seen.pop(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        self._seen[key] = times
        while len(self._seen) > _TRACKED_KEYS:
            self._seen.popitem(last=False)
        if len(times) >= self.limit:
            return times[0] + self.window - now
        times.append(now)
        return 0.0


class FormPage:
    """``templates/LANG/web/form.html``, with the form's state and values."""

    def __init__(self, templates_dir: Path, instance: str) -> None:
        self.instance = instance
        self.env = Environment(loader=FileSystemLoader(str(templates_dir)), undefined=StrictUndefined,
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)

    def render(self, language: str, state: str, token: str = "", values: dict[str, str] | None = None,
               errors: dict[str, str] | None = None) -> str:
        return self.env.get_template(f"{language}/{TEMPLATE}").render(
            instance=self.instance, language=language, state=state, token=token,
            values={key: (values or {}).get(key, "") for key in webform.FIELDS},
            errors=errors or {}, limits=webform.LIMITS, honeypot=webform.HONEYPOT)

    def check(self) -> list[str]:
        """Every language's page renders in every state (for ``maild check``)."""
        problems = []
        for language in LANGUAGES:
            for state in ("form", "thanks", "limited", "unavailable", "too_large"):
                try:
                    self.render(language, state, "t", {"email": "x"}, {"email": "invalid", "message": "missing"})
                except Exception as exc:  # noqa: BLE001 - any failure of a template is a finding
                    problems.append(f"{language}/{TEMPLATE}: {state}: {type(exc).__name__}: {exc}")
                    break
        return problems


def client_key(host: str) -> str:
    """Who a client is to the per-client limit: its IPv4 address, or its IPv6 /64 (one
    subscriber's network, 2^64 addresses: counted one by one, they would bound nothing)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(getattr(address, "ipv4_mapped", None) or address)


def language_of(request: Request, default: str) -> str:
    asked = request.query_params.get("lang", "")
    if asked in LANGUAGES:
        return asked
    for item in request.headers.get("accept-language", "").split(","):
        code = item.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return default


def build(*, accept: Accept, page: FormPage, to: str, language: str, hostname: str, secret: bytes,
          max_body_bytes: int, per_ip_per_hour: int, per_address_per_hour: int, health: Tracker) -> Starlette:
    """The form's ASGI app: ``GET /`` shows the form, ``POST /`` files it."""
    by_ip, by_address = Limiter(per_ip_per_hour), Limiter(per_address_per_hour)
    used: OrderedDict[str, int] = OrderedDict()  # token nonce -> spool id

    def html(lang: str, state: str, status: int = 200, **values: Any) -> HTMLResponse:
        headers = {"Cache-Control": "no-store", "Content-Language": lang,
                   "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
                   "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
        return HTMLResponse(page.render(lang, state, **values), status_code=status, headers=headers)

    async def show(request: Request) -> Response:
        return html(language_of(request, language), "form", token=webform.new_token(secret))

    async def submit(request: Request) -> Response:
        lang = language_of(request, language)
        client = request.client.host if request.client else ""
        body = await _read_capped(request, max_body_bytes)
        if body is None:
            return html(lang, "too_large", 413)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return html(lang, "form", 415, token=webform.new_token(secret), errors={"form": "invalid"})
        try:
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), max_num_fields=20).items()}
        except (UnicodeDecodeError, ValueError):
            return html(lang, "form", 400, token=webform.new_token(secret), errors={"form": "invalid"})
        now = time.monotonic()
        wait = by_ip.retry_after(f"ip:{client_key(client)}", now)
        if wait:
            return _limited(html(lang, "limited", 429), wait)
        nonce = webform.token_nonce(secret, form.get(webform.TOKEN, ""))
        if nonce is None:  # expired or not ours: a fresh form, the values kept
            return html(lang, "form", 400, token=webform.new_token(secret), values=form, errors={"form": "expired"})
        if form.get(webform.HONEYPOT):
            log.info("web form: honeypot filled by %s; nothing stored", client)
            return html(lang, "thanks")
        if nonce in used:
            return html(lang, "thanks")  # posted again: stored once already
        submission, errors = webform.read(form)
        if submission is None:
            return html(lang, "form", 400, token=form.get(webform.TOKEN, ""), values=form, errors=errors)
        wait = by_address.retry_after(f"address:{submission.email}", now)
        if wait:
            return _limited(html(lang, "limited", 429), wait)
        raw = webform.to_mail(submission, nonce, to, hostname, client, webform.token_written(form[webform.TOKEN]))
        try:
            inbound_id = await accept(raw, Envelope(source="web", mail_from=submission.email, recipients=(to,)))
        except Exception as exc:
            log.error("web form: could not store a message from %s: %s", submission.email, exc)
            health.failed(exc)
            return html(lang, "unavailable", 503)
        health.ok()
        used[nonce] = inbound_id
        while len(used) > _USED_TOKENS:
            used.popitem(last=False)
        log.info("web form: stored as spool %s", inbound_id)
        return html(lang, "thanks")

    return Starlette(routes=[Route("/", show, methods=["GET"]), Route("/", submit, methods=["POST"])])


def _limited(response: Response, wait: float) -> Response:
    response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
    return response


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is over ``limit`` (a declared length is believed first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def start(app: Starlette, listen: str, forwarded_allow_ips: list[str]) -> tuple[_Server, asyncio.Task[None]]:
    """Bind now (a port in use fails the start, as SMTP's does), then serve in a task."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                            proxy_headers=bool(forwarded_allow_ips),
                            forwarded_allow_ips=forwarded_allow_ips or None, timeout_keep_alive=5,
                            limit_concurrency=100, h11_max_incomplete_event_size=16 * 1024)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="web")
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if task.done():
        task.result()  # raises what stopped it
    return server, task


async def stop(server: _Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task
