"""Hypothesis profiles (``ci`` by default, ``HYPOTHESIS_PROFILE=long`` for the long run) and a
real instance for the pipeline properties."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from maild.app import App
from maild.config import load_settings
from tests.conftest import REPO, RULES
from tests.hostile import load_profile

load_profile()


def sqlite_instance(directory: Path) -> App:
    """A real instance on SQLite in ``directory``, its database migrated."""
    (directory / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = directory / "maild.toml"
    config.write_text(textwrap.dedent(f"""\
        [instance]
        data_dir = "var"
        hostname = "liitto.fi"
        secret_key = "test-secret"

        [database]
        url = "sqlite:///{directory}/maild.db"

        [rules]
        templates = "{REPO / 'templates'}"
        """), encoding="utf-8")
    app = App(load_settings(str(config)))
    app.prepare_database()
    return app


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """One real instance on SQLite for all examples of a module (a fresh database per example
    would spend the time budget on migrations); examples use unique Message-IDs."""
    app = sqlite_instance(tmp_path_factory.mktemp("instance"))
    yield app
    app.engine.dispose()
