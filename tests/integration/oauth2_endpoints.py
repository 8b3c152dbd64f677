"""A small identity provider on loopback, for OAuth2 tests: what Microsoft Entra ID, Google and
a mail server's token introspection do, checked the way they check it.

- ``/{tenant}/v2.0/.well-known/openid-configuration`` and ``/{tenant}/oauth2/v2.0/token``:
  Entra's OIDC discovery and its client-credentials grant (client id, client secret, scope).
- ``/token``: Google's JWT-bearer grant. The assertion's RS256 signature is verified with the
  service account's public key; iss, sub, scope, aud, iat and exp are checked.
- ``/introspect/{user}``: token introspection for Dovecot's oauth2 passdb (GET with the token as
  ``Authorization: Bearer``, as with Microsoft Graph's ``/me``). A token is
  active for a mailbox the app may access (Microsoft: the application access policy; Google:
  the subject it was issued for), unless revoked.

Token endpoints are served over TLS (msal talks https only), introspection over plain HTTP.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.integration.smtp_sink import self_signed

TENANT = "liitto.fi"
CLIENT_ID = "9f1c2d3e-0000-4000-8000-00000000c11e"
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_SCOPE = "https://mail.google.com/"
GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"  # what Google wants as aud, whatever URL it is sent to
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SERVICE_ACCOUNT = "maild@liitto-mail.iam.gserviceaccount.com"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Issued:
    token: str
    mailboxes: frozenset[str] | None  # None: any mailbox the app's policy allows


@dataclass
class State:
    """What the provider knows and what it was asked. Tests change the knobs while it runs."""

    client_secret: str = field(default_factory=lambda: "cs~" + secrets.token_urlsafe(24))
    app_exists: bool = True  # False: the app registration was deleted (a revoked app)
    policy: set[str] = field(default_factory=set)  # Microsoft: mailboxes the app may access
    delegated: set[str] = field(default_factory=set)  # Google: subjects delegated to the service account
    public_key: rsa.RSAPublicKey | None = None  # Google: the service account's key
    key_id: str = "k1"
    delay: float = 0.0  # seconds before a token endpoint answers
    revoke_next: int = 0  # this many tokens issued from now on are revoked at once
    revoked: set[str] = field(default_factory=set)
    issued: list[Issued] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    introspected: list[tuple[str, str, bool]] = field(default_factory=list)  # (mailbox, token, active)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, mailboxes: frozenset[str] | None) -> dict[str, Any]:
        token = "at." + secrets.token_urlsafe(32)
        with self.lock:
            self.issued.append(Issued(token, mailboxes))
            if self.revoke_next > 0:
                self.revoke_next -= 1
                self.revoked.add(token)
        return {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}

    def active(self, token: str, mailbox: str) -> bool:
        with self.lock:
            found = next((item for item in self.issued if item.token == token), None)
            if found is None or token in self.revoked:
                return False
            allowed = self.policy if found.mailboxes is None else found.mailboxes
            return mailbox in allowed

    @property
    def tokens(self) -> list[str]:
        return [item.token for item in self.issued]


class Handler(BaseHTTPRequestHandler):
    state: State
    base_url: str

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length", "0"))
        return {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()}

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        if path.startswith("/introspect/"):
            self.introspect(path.removeprefix("/introspect/"), self.headers.get("Authorization", "").removeprefix("Bearer "))
            return
        parts = path.strip("/").split("/")
        if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            if parts[0] != TENANT:
                self.answer(400, {"error": "invalid_tenant", "error_description": f"AADSTS90002: Tenant '{parts[0]}' not found."})
                return
            base = f"{self.base_url}/{TENANT}"
            self.answer(200, {
                "issuer": f"{base}/v2.0", "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token", "jwks_uri": f"{base}/discovery/v2.0/keys",
            })
            return
        self.answer(404, {"error": "not_found"})

    def do_POST(self) -> None:
        path = urlparse(self.path).path
        form = self.form()
        with self.state.lock:
            self.state.token_requests.append(dict(form))
        time.sleep(self.state.delay)
        if path == f"/{TENANT}/oauth2/v2.0/token":
            self.microsoft(form)
        elif path == "/token":
            self.google(form)
        else:
            self.answer(404, {"error": "not_found"})

    def microsoft(self, form: dict[str, str]) -> None:
        """Entra ID's client-credentials grant, with its errors."""
        state = self.state
        if form.get("grant_type") != "client_credentials":
            self.answer(400, {"error": "unsupported_grant_type", "error_description": "AADSTS70003: unsupported grant"})
        elif form.get("client_id") != CLIENT_ID or not state.app_exists:
            self.answer(400, {
                "error": "unauthorized_client",
                "error_description": f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not "
                                     f"found in the directory '{TENANT}'.\r\nTrace ID: 0000\r\nCorrelation ID: 0000",
            })
        elif form.get("client_secret") != state.client_secret:
            # Entra does not echo the secret; this one does, to show that maild scrubs what it is told
            self.answer(401, {
                "error": "invalid_client",
                "error_description": f"AADSTS7000215: Invalid client secret provided ({form.get('client_secret')})."
                                     "\r\nTrace ID: 0000\r\nCorrelation ID: 0000",
            })
        elif form.get("scope") != MICROSOFT_SCOPE:
            self.answer(400, {"error": "invalid_scope", "error_description": f"AADSTS1002012: bad scope {form.get('scope')}"})
        else:
            self.answer(200, state.issue(None))

    def google(self, form: dict[str, str]) -> None:
        """Google's JWT-bearer grant for a service account with domain-wide delegation."""
        if form.get("grant_type") != JWT_BEARER:
            self.answer(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
            return
        claims = self.verified_claims(form.get("assertion", ""))
        if claims is None:
            self.answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
            return
        now = time.time()
        good = (
            claims.get("iss") == SERVICE_ACCOUNT and claims.get("aud") == GOOGLE_AUDIENCE
            and claims.get("iat", now + 999) <= now + 60 and now < claims.get("exp", 0) <= claims["iat"] + 3600
        )
        if not good:
            self.answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT: claims"})
        elif claims.get("sub") not in self.state.delegated or claims.get("scope") != GOOGLE_SCOPE:
            self.answer(401, {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens using this method, "
                                     "or client not authorized for any of the scopes requested.",
            })
        else:
            self.answer(200, self.state.issue(frozenset({claims["sub"]})))

    def verified_claims(self, assertion: str) -> dict[str, Any] | None:
        """The JWT's claims when its RS256 signature is the service account key's, else None."""
        try:
            header, payload, signature = assertion.split(".")
            head = json.loads(unb64url(header))
            if head.get("alg") != "RS256" or head.get("kid") != self.state.key_id or self.state.public_key is None:
                return None
            self.state.public_key.verify(
                unb64url(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
            return json.loads(unb64url(payload))
        except Exception:
            return None

    def introspect(self, mailbox: str, token: str) -> None:
        active = self.state.active(token, mailbox)
        with self.state.lock:
            self.state.introspected.append((mailbox, token, active))
        self.answer(200, {"active": True, "username": mailbox} if active else {"active": False})


class IdentityProvider:
    """Start with ``IdentityProvider.start(directory)``; ``stop()`` at the end."""

    def __init__(self, directory: Path) -> None:
        self.state = State()
        (directory / "idp").mkdir()
        self.cert, key = self_signed(directory / "idp")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        self.tls = self._server(context)
        self.plain = self._server(None)
        self.url = f"https://127.0.0.1:{self.tls.server_address[1]}"

    def _server(self, context: ssl.SSLContext | None) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if context is not None:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        port = server.server_address[1]
        server.RequestHandlerClass = type("BoundHandler", (Handler,), {
            "state": self.state, "base_url": f"{'https' if context else 'http'}://127.0.0.1:{port}",
        })
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return server

    @classmethod
    def start(cls, directory: Path) -> "IdentityProvider":
        return cls(directory)

    def stop(self) -> None:
        for server in (self.tls, self.plain):
            server.shutdown()
            server.server_close()

    @property
    def microsoft_token_url(self) -> str:
        return f"{self.url}/{TENANT}/oauth2/v2.0/token"

    @property
    def google_token_url(self) -> str:
        return f"{self.url}/token"

    def introspection_url(self, mailbox: str) -> str:
        """For Dovecot, whose URL is fixed (2.3 expands no %u in it): one mailbox's token check."""
        return f"http://127.0.0.1:{self.plain.server_address[1]}/introspect/{mailbox}"

    def service_account_file(self, path: Path) -> Path:
        """A service account key file as the Google Cloud console gives it, with a new RSA key."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.state.public_key = key.public_key()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        path.write_text(json.dumps({
            "type": "service_account", "project_id": "liitto-mail", "private_key_id": self.state.key_id,
            "private_key": pem.decode(), "client_email": SERVICE_ACCOUNT, "client_id": "1234567890",
            "token_uri": GOOGLE_AUDIENCE,
        }), encoding="utf-8")
        return path
