"""What importing a module loads, checked in a fresh interpreter each time (sys.modules).

Two boundaries are structural, so a test can hold them without timing anything:

- ``maild.core`` decides and does no I/O: importing any of its modules loads no template
  engine, database layer, event loop or YAML, and nothing of maild's adapters. A module
  that needs one of those belongs outside ``core`` (or imports it for type checking only).
- ``maild.cli`` starts fast: importing it (what ``maild --help`` and every command pay
  before doing anything) loads none of the heavy libraries; each command imports what it
  needs inside its function.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import maild.core

REPO = Path(__file__).resolve().parents[2]

# What a module of maild.core must not load: top-level packages, and maild's adapters.
CORE_FORBIDDEN_PACKAGES = ("jinja2", "sqlalchemy", "sqlmodel", "asyncio", "yaml", "alembic", "aiosmtpd",
                           "aioimaplib", "aiosmtplib")
CORE_FORBIDDEN_MODULES = ("maild.store", "maild.intake", "maild.outbound", "maild.rules.loader", "maild.ingest",
                          "maild.app", "maild.config")

# What `import maild.cli` must not load: what only some commands need.
CLI_FORBIDDEN_PACKAGES = ("sqlmodel", "sqlalchemy", "alembic", "jinja2", "aiosmtpd", "aioimaplib", "aiosmtplib",
                          "asyncio", "msal", "google", "yaml", "rich", "pydantic", "pydantic_settings", "holidays",
                          "flufl", "mailparser", "authres", "prometheus_client", "requests", "psycopg")
CLI_FORBIDDEN_MODULES = ("maild.store", "maild.intake", "maild.outbound", "maild.rules", "maild.ingest",
                         "maild.app", "maild.config", "maild.views", "maild.daemon")


def loaded_after_import(module: str) -> list[str]:
    """The names in sys.modules after ``import module`` in a fresh interpreter."""
    code = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def offenders(loaded: list[str], packages: tuple[str, ...], modules: tuple[str, ...]) -> list[str]:
    """The loaded modules that are, or are inside, one of ``packages`` or ``modules``."""
    return [name for name in loaded
            if name.split(".")[0] in packages or any(name == m or name.startswith(m + ".") for m in modules)]


CORE_MODULES = sorted(f"maild.core.{info.name}" for info in pkgutil.iter_modules(maild.core.__path__))


def test_the_core_modules_are_found() -> None:
    assert "maild.core.threader" in CORE_MODULES and "maild.core.parse" in CORE_MODULES


@pytest.mark.parametrize("module", CORE_MODULES)
def test_a_core_module_loads_no_adapter_or_heavy_library(module: str) -> None:
    loaded = loaded_after_import(module)
    assert module in loaded
    assert offenders(loaded, CORE_FORBIDDEN_PACKAGES, CORE_FORBIDDEN_MODULES) == []


def test_importing_the_cli_loads_no_heavy_library() -> None:
    loaded = loaded_after_import("maild.cli")
    assert "maild.cli" in loaded and "typer" in loaded
    assert offenders(loaded, CLI_FORBIDDEN_PACKAGES, CLI_FORBIDDEN_MODULES) == []


def test_the_checks_see_a_violation() -> None:
    """The check is not vacuous: a module that does load a forbidden package is caught."""
    loaded = loaded_after_import("maild.store.tables")
    assert "sqlmodel" in offenders(loaded, CLI_FORBIDDEN_PACKAGES, CLI_FORBIDDEN_MODULES)
    assert "maild.store.tables" in offenders(loaded, CORE_FORBIDDEN_PACKAGES, CORE_FORBIDDEN_MODULES)
