"""What a listing command loads, end to end: `maild tickets list --json` answers from a real
database and still never loads the ORM, the migrations, the templates, the rules loader or
rich. Structural, not timed: these are what made a listing take 1.5 s to start (issue 13;
bench/startup.py measures the time)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO, maild_env, run_maild
from tests.mailgen import mail

# Loaded by a listing before: sqlmodel and the ORM (tables, sessions), alembic (the schema
# check), jinja2 (App's imports), yaml (the rules loader), rich (the consoles, made at import).
HEAVY = ("sqlmodel", "sqlalchemy.orm", "alembic", "mako", "jinja2", "yaml", "rich", "aiosmtpd", "aioimaplib",
         "aiosmtplib", "msal", "google.auth", "flufl", "mailparser", "holidays")
MAILD_HEAVY = ("maild.store.tables", "maild.store.tickets", "maild.ingest", "maild.outbound", "maild.intake",
               "maild.rules.loader", "maild.daemon", "maild.schedule")

PROBE = """\
import json, sys
sys.argv = ["maild", *sys.argv[1:]]
from maild.cli import main
try:
    main()
finally:
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def loaded_by(*args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the CLI in a fresh interpreter; its output and the modules it had loaded at exit."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=maild_env(),
                          cwd=REPO, timeout=60)
    return done, json.loads(done.stderr.strip().splitlines()[-1])


def heavy(loaded: list[str]) -> list[str]:
    return [name for name in loaded
            if any(name == prefix or name.startswith(prefix + ".") for prefix in HEAVY + MAILD_HEAVY)]


def test_a_listing_loads_nothing_heavy(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    config = make_instance(sqlite_url)
    stored = run_maild("--config", str(config), "ingest", "--recipient", "jasenpalvelu@liitto.fi",
                       input=mail(subject="Jäsenmaksu", body="Paljonko jäsenmaksu on?"))
    assert stored.returncode == 0, stored.stderr

    done, loaded = loaded_by("--config", str(config), "tickets", "list", "--json")
    assert done.returncode == 0
    listed = json.loads(done.stdout)
    assert [row["tag"] for row in listed] == ["[JP#1]"] and listed[0]["message_count"] >= 1
    assert "sqlalchemy" in loaded and "maild.store.listing" in loaded  # it did read the database
    assert heavy(loaded) == []

    done, loaded = loaded_by("--config", str(config), "tickets", "search", "jäsenmaksu", "--json")
    assert [row["tag"] for row in json.loads(done.stdout)] == ["[JP#1]"]
    assert heavy(loaded) == []


def test_help_loads_nothing_of_maild_but_the_cli() -> None:
    done, loaded = loaded_by("--help")
    assert done.returncode == 0 and "tickets" in done.stdout
    assert [name for name in loaded if name.startswith("maild.") and name not in ("maild.cli", "maild.terminal")] == []


def test_the_probe_sees_what_a_command_loads(make_instance, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """Not vacuous: a command that needs the ORM shows it."""
    config = make_instance(sqlite_url)
    assert run_maild("--config", str(config), "db", "upgrade").returncode == 0
    done, loaded = loaded_by("--config", str(config), "quarantine", "list", "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == []
    assert "sqlmodel" in heavy(loaded)
