"""``maild init``: a working instance (maild.toml, rules.yaml, templates/) in a directory."""

from __future__ import annotations

import secrets
from pathlib import Path

from maild.store.private import make_dirs, write_file

HERE = Path(__file__).resolve().parent


def write_instance(directory: Path) -> list[Path]:
    """Write the instance files, private (docs/guarantees.md: the configuration holds the secret key);
    existing files are left as they are. Returns what was written."""
    make_dirs(directory)
    written = []
    config = directory / "maild.toml"
    text = (HERE / "maild.toml").read_text(encoding="utf-8").replace("@SECRET@", secrets.token_hex(32))
    if write_file(config, text.encode("utf-8"), replace=False):
        written.append(config)
    if write_file(directory / "rules.yaml", (HERE / "rules.yaml").read_bytes(), replace=False):
        written.append(directory / "rules.yaml")
    templates = HERE / "templates"
    if templates.is_dir() and not (directory / "templates").exists():
        for source in sorted(templates.rglob("*")):
            target = directory / "templates" / source.relative_to(templates)
            if source.is_file():
                make_dirs(target.parent)
                write_file(target, source.read_bytes(), durable=False)
        written.append(directory / "templates")
    return written
