"""A private Dovecot on loopback, for tests and benchmarks.

Everything lives in a temporary directory: configuration (no system file is read), users
(passwd-file, ``{PLAIN}`` passwords), maildirs, sockets, state, log and a self-signed
certificate. One server listens on two free ports: plain IMAP with STARTTLS, and implicit
TLS. Mail is put in by APPEND over IMAP with Python's imaplib, as any other client would.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

HOST = "127.0.0.1"
FETCH_ITEM = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\)")


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next((p for p in ("/usr/sbin/dovecot",) if os.access(p, os.X_OK)), None)


def require_dovecot() -> str:
    """The dovecot binary; skips without it, but fails on CI (``CI=true``), where it must exist."""
    binary = dovecot_binary()
    if binary is None:
        reason = "dovecot is not installed (Debian package dovecot-imapd)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return binary


def children(parent: int) -> list[int]:
    """The pids of a process's children, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Account:
    username: str
    password: str


@dataclass(frozen=True)
class Stored:
    """A message as the server holds it."""

    uid: int
    flags: frozenset[str]
    raw: bytes


class Dovecot:
    """Start with ``Dovecot.start()``; ``stop()`` removes every trace."""

    def __init__(
        self, directory: Path, binary: str, capability: str | None = None, oauth2_introspection: str | None = None
    ) -> None:
        self.directory = directory
        self.binary = binary
        self.capability = capability
        self.oauth2_introspection = oauth2_introspection
        self.host = HOST
        self.port = free_port()  # plain and STARTTLS
        self.tls_port = free_port()
        self.cert = directory / "cert.pem"
        self.conf = directory / "dovecot.conf"
        self.log = directory / "dovecot.log"
        self.users = directory / "users"
        self.proc: subprocess.Popen[bytes] | None = None
        # As root, Dovecot's own unprivileged users run it; otherwise everything runs as us.
        self.root = os.geteuid() == 0
        mail_user = "dovecot" if self.root else pwd.getpwuid(os.getuid()).pw_name
        self.mail_uid, self.mail_gid = pwd.getpwnam(mail_user)[2:4]
        self.internal_user = mail_user
        self.login_user = "dovenull" if self.root else mail_user

    @classmethod
    def start(cls, capability: str | None = None, oauth2_introspection: str | None = None) -> "Dovecot":
        """A running server in a fresh directory (readable by Dovecot's users, unlike pytest's).

        ``oauth2_introspection``: a URL; XOAUTH2 and OAUTHBEARER logins are then checked by a GET
        to it with the token as ``Authorization: Bearer``, answered by ``{"active": true,
        "username": ...}`` for a good token. (Dovecot 2.3.19's auth process crashes with
        ``introspection_mode = post``, and on a ``%u`` in the URL, which it does not expand.)
        Passwords keep working for PLAIN and LOGIN.
        """
        binary = require_dovecot()
        directory = Path(tempfile.mkdtemp(prefix="maild-dovecot-"))
        directory.chmod(0o755)
        server = cls(directory, binary, capability, oauth2_introspection)
        server._make_cert()
        server._write_config()
        server._run()
        return server

    def _make_cert(self) -> None:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(self.directory / "key.pem"), "-out", str(self.cert), "-days", "2",
             "-subj", "/CN=localhost", "-addext", f"subjectAltName=IP:{HOST},DNS:localhost"],
            check=True, capture_output=True,
        )

    def _write_config(self) -> None:
        home = self.directory / "home"
        home.mkdir()
        if self.root:
            os.chown(home, self.mail_uid, self.mail_gid)
        self.users.mkdir()
        capability = f"imap_capability = {self.capability}\n" if self.capability else ""
        mechanisms, oauth2 = "plain login", ""
        if self.oauth2_introspection:
            mechanisms += " xoauth2 oauthbearer"
            oauth2 = self._oauth2_passdb()
            # Refusals are answered at once: no failure delay, no per-IP penalty (anvil's socket closed)
            oauth2 += "auth_failure_delay = 0\nservice anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
        self.conf.write_text(textwrap.dedent(f"""\
            base_dir = {self.directory}/run
            state_dir = {self.directory}/state
            log_path = {self.log}
            protocols = imap
            listen = {HOST}
            default_internal_user = {self.internal_user}
            default_login_user = {self.login_user}
            first_valid_uid = 1
            ssl = yes
            ssl_cert = <{self.cert}
            ssl_key = <{self.directory}/key.pem
            disable_plaintext_auth = no
            auth_mechanisms = {mechanisms}
            mail_fsync = never
            mail_location = maildir:~/Maildir
            passdb {{
              driver = passwd-file
              args = scheme=PLAIN {self.users}/%u
              mechanisms = plain login
            }}
            userdb {{
              driver = passwd-file
              args = {self.users}/%u
            }}
            service imap-login {{
              chroot =
              inet_listener imap {{
                port = {self.port}
              }}
              inet_listener imaps {{
                port = {self.tls_port}
                ssl = yes
              }}
            }}
            service anvil {{
              chroot =
            }}
            """) + capability + oauth2)

    def _oauth2_passdb(self) -> str:
        """The oauth2 passdb block; its settings file says how tokens are introspected."""
        settings = self.directory / "dovecot-oauth2.conf.ext"
        settings.write_text(textwrap.dedent(f"""\
            introspection_mode = auth
            introspection_url = {self.oauth2_introspection}
            force_introspection = yes
            username_attribute = username
            active_attribute = active
            active_value = true
            """))
        return f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {settings}\n}}\n"

    def _run(self, timeout: float = 15) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=(self.directory / "stderr").open("wb")
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited: {(self.directory / 'stderr').read_text()}")
            try:
                socket.create_connection((HOST, self.tls_port), timeout=0.5).close()
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not start listening")

    def halt(self) -> None:
        """Stop the server, its client connections too, but keep its configuration and mail:
        ``resume`` starts it again. (The master leaves running imap processes behind.)"""
        assert self.proc is not None
        serving = children(self.proc.pid)
        self.proc.terminate()
        self.proc.wait(10)
        for pid in serving:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def resume(self) -> None:
        """The same server again, on the same ports, with the same mail."""
        self._run()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def add_user(self, username: str | None = None, password: str = "salasana") -> Account:
        """A new account with an empty mailbox.

        Each user has a passwd-file of their own: Dovecot looks at a changed one at most once a
        second, so a user added to a shared file could not log in at once.
        """
        username = username or f"box-{uuid.uuid4().hex[:8]}@liitto.fi"
        home = self.maildir_home(username)
        entry = f"{username}:{{PLAIN}}{password}:{self.mail_uid}:{self.mail_gid}::{home}\n"
        (self.users / username).write_text(entry)
        return Account(username, password)

    def maildir_home(self, username: str) -> Path:
        return self.directory / "home" / re.sub(r"[^A-Za-z0-9.@-]", "_", username)

    def client(self, account: Account) -> imaplib.IMAP4:
        client = imaplib.IMAP4(HOST, self.port, timeout=30)
        client.login(account.username, account.password)
        return client

    def append(self, account: Account, raw: bytes, folder: str = "INBOX", flags: str | None = None) -> None:
        """Deliver like another mail client would: APPEND, creating the folder when missing."""
        self.append_many(account, [raw], folder, flags)

    def append_many(self, account: Account, raws: list[bytes], folder: str = "INBOX", flags: str | None = None) -> None:
        """Several APPENDs over one connection."""
        client = self.client(account)
        try:
            for raw in raws:
                status, data = client.append(f'"{folder}"', flags, None, raw)
                if status != "OK" and b"TRYCREATE" in data[0]:
                    client.create(f'"{folder}"')
                    status, data = client.append(f'"{folder}"', flags, None, raw)
                assert status == "OK", data
        finally:
            client.logout()

    def messages(self, account: Account, folder: str = "INBOX") -> list[Stored]:
        """Every message of a folder (in modified UTF-7) with its flags, read without \\Seen."""
        client = self.client(account)
        try:
            status, _ = client.select(f'"{folder}"', readonly=True)
            if status != "OK":
                return []
            _, data = client.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
        finally:
            client.logout()
        found = []
        for item in data:
            if isinstance(item, tuple):
                match = FETCH_ITEM.search(item[0])
                assert match, item[0]
                flags = frozenset(match[2].decode().split())
                found.append(Stored(int(match[1]), flags, item[1]))
        return found

    def folders(self, account: Account) -> list[str]:
        client = self.client(account)
        try:
            _, data = client.list()
        finally:
            client.logout()
        return [line.decode().rsplit(" ", 1)[-1].strip('"') for line in data if isinstance(line, bytes)]

    def doveadm(self, *args: str) -> str:
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        done = subprocess.run([doveadm, "-c", str(self.conf), *args], capture_output=True, text=True, check=True)
        return done.stdout

    def imap_toml(
        self,
        account: Account,
        name: str = "jasenpalvelu",
        security: str = "none",
        after: str = "move:Processed",
        poll_seconds: int = 1,
        idle: bool = True,
        folder: str = "INBOX",
        port: int | None = None,
        password: str | None = None,
    ) -> str:
        """A ``[[imap]]`` section of maild.toml for this server and account."""
        port = port or (self.tls_port if security == "tls" else self.port)
        return textwrap.dedent(f"""
            [[imap]]
            name = "{name}"
            host = "{HOST}"
            port = {port}
            security = "{security}"
            username = "{account.username}"
            password = "{account.password if password is None else password}"
            folder = "{folder}"
            after = "{after}"
            poll_seconds = {poll_seconds}
            idle = {"true" if idle else "false"}
            ca_file = "{self.cert}"
            """)


class Proxy:
    """A TCP proxy on loopback in front of a server (a real Dovecot): what it does to the
    conversation is ``relay``'s, for each connection (numbered from 1)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connections = 0
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self.relay(client, socket.create_connection((HOST, self.target_port)), self.connections)

    def relay(self, client: socket.socket, server: socket.socket, number: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()
