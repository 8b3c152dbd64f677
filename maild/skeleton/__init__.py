"""``maild init``: a working instance (maild.toml, rules.yaml, templates/) in a directory."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write_instance(directory: Path) -> list[Path]:
    """Write the instance files; existing files are left as they are. Returns what was written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    config = directory / "maild.toml"
    if not config.exists():
        text = (HERE / "maild.toml").read_text(encoding="utf-8").replace("@SECRET@", secrets.token_hex(32))
        config.write_text(text, encoding="utf-8")
        config.chmod(0o600)
        written.append(config)
    rules = directory / "rules.yaml"
    if not rules.exists():
        shutil.copyfile(HERE / "rules.yaml", rules)
        written.append(rules)
    templates = HERE / "templates"
    if templates.is_dir() and not (directory / "templates").exists():
        shutil.copytree(templates, directory / "templates")
        written.append(directory / "templates")
    return written
