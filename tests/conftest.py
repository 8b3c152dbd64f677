"""Fixtures: real databases (SQLite always, PostgreSQL when MAILD_TEST_POSTGRES_URL is set),
instances written to temporary directories, and a real `maild run` subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("MAILD_TEST_POSTGRES_URL", "")

RULES = textwrap.dedent(
    """\
    queues:
      jasenasiat:
        name: Jäsenasiat
        address: jasenpalvelu@liitto.fi
        staff: [maija@liitto.fi, pekka@liitto.fi]
        language: fi
        default: true
      laskutus:
        name: Laskutus
        address: laskutus@liitto.fi
        staff: [lasse@liitto.fi, liisa@liitto.fi]
        language: fi
    sla: {urgent: 4h, high: 1d, normal: 3d, low: 5d}
    business_hours: {days: [mon, tue, wed, thu, fri], hours: "08:00-16:00", holidays: FI}
    rules:
      - name: Eroamiset
        if: {subject: {contains: [eroan, eroilmoitus, erota]}}
        then: {priority: high, category: eroaminen}
      - name: Laskutus
        if: {subject: {contains: [lasku]}}
        then: {queue: laskutus, assign: round-robin}
      - name: Roskaposti
        if: {subject: {contains: [viagra]}}
        then: {drop: true}
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    if not PG_URL:
        yield None
        return
    name = f"maild_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_URL).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_server_url: str | None) -> str:
    """SQLite in the test's directory, or a schema of its own in the run's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/maild.db"
    if not pg_server_url:
        pytest.skip("MAILD_TEST_POSTGRES_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(pg_server_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    return str(sa.engine.make_url(pg_server_url).update_query_dict({"options": f"-csearch_path={schema}"})
               .render_as_string(hide_password=False))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/maild.db"


MakeInstance = Callable[..., Path]


@pytest.fixture
def make_instance(tmp_path: Path) -> MakeInstance:
    """Write maild.toml and rules.yaml into a directory; returns the config path."""

    def make(db_url: str, rules: str = RULES, port: int | None = None, extra: str = "", name: str = "inst") -> Path:
        directory = tmp_path / name
        directory.mkdir(exist_ok=True)
        (directory / "rules.yaml").write_text(rules, encoding="utf-8")
        config = directory / "maild.toml"
        config.write_text(
            textwrap.dedent(
                f"""\
                [instance]
                data_dir = "var"
                hostname = "liitto.fi"
                secret_key = "test-secret"

                [database]
                url = "{db_url}"

                [smtp]
                listen = "127.0.0.1:{port or free_port()}"
                accept_domains = ["liitto.fi"]
                max_message_bytes = 2000000

                [rules]
                templates = "{REPO / 'templates'}"
                """
            )
            + extra,
            encoding="utf-8",
        )
        return config

    return make


def maild_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_maild(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """The real command line, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "maild", *args], input=input, capture_output=True, timeout=timeout, env=maild_env()
    )


class Daemon:
    def __init__(self, config: Path, port: int) -> None:
        self.config = config
        self.port = port
        self.log = config.parent / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> "Daemon":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "maild", "--config", str(self.config), "run"],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=maild_env(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"maild run exited: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("maild run did not start listening")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def daemon(make_instance: MakeInstance, sqlite_url: str) -> Iterator[Callable[..., Daemon]]:
    """Start `maild run` on an instance; stopped (and checked to exit 0) at teardown."""
    started: list[Daemon] = []

    def start(db_url: str | None = None, **kwargs: object) -> Daemon:
        port = free_port()
        config = make_instance(db_url or sqlite_url, port=port, **kwargs)
        started.append(Daemon(config, port).start())
        return started[-1]

    yield start
    for item in started:
        if item.proc and item.proc.poll() is None:
            assert item.stop() == 0, item.log.read_text()
