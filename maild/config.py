"""Configuration: ``maild.toml`` plus ``MAILD_<SECTION>__<KEY>`` environment overrides.

Lookup order (contract section 2): ``--config PATH``, ``$MAILD_CONFIG``, ``./maild.toml``,
else the built-in defaults. A bad file is refused as a whole with ``file:line: message``.
Relative paths in a file are taken relative to the file's directory, so an instance made
by ``maild init DIR`` works from any working directory.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_FILE = "maild.toml"


class ConfigError(Exception):
    """A configuration that cannot be used; ``errors`` are ``file:line: message`` strings."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Secret(_Section):
    """A password given literally (tests, demos), by variable name, or by file."""

    password: str = ""
    password_env: str = ""
    password_file: str = ""

    def secret(self) -> str:
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError([f"environment variable {self.password_env} is not set"])
            return value
        if self.password_file:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        return self.password


class Instance(_Section):
    name: str = "Jäsenpalvelu"
    tag_prefix: str = "JP"
    timezone: str = "Europe/Helsinki"
    data_dir: str = "var"
    hostname: str = "localhost"
    secret_key: str = ""  # HMAC key for reply tokens; `maild init` writes one

    @field_validator("tag_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,15}", value):
            raise ValueError("tag_prefix must be letters and digits, starting with a letter")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except Exception as exc:  # ZoneInfoNotFoundError, ValueError
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value


class Database(_Section):
    url: str = "sqlite:///var/maild.db"


class Smtp(_Section):
    listen: str = "127.0.0.1:2525"
    max_message_bytes: int = 26214400
    accept_domains: list[str] = []

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("listen must be HOST:PORT")
        return value

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class Imap(Secret):
    name: str
    host: str
    port: int = 993
    security: Literal["tls", "starttls", "none"] = "tls"
    username: str
    folder: str = "INBOX"
    after: str = "flag"
    poll_seconds: int = 60
    idle: bool = True
    ca_file: str = ""

    @field_validator("after")
    @classmethod
    def _after(cls, value: str) -> str:
        if value in ("flag", "delete") or (value.startswith("move:") and len(value) > 5):
            return value
        raise ValueError("after must be move:FOLDER, flag or delete")


class Outbound(Secret):
    transport: str = "maildir:var/outbox"
    starttls: bool = True
    username: str = ""
    auto_reply_limit_per_hour: int = 3
    ca_file: str = ""  # optional: trust this CA/self-signed certificate for TLS
    inflight_timeout_seconds: int = 120  # a mail left "sending" by a crash is sent again after this
    connections: int = 4  # SMTP connections to the smarthost, each reused

    @field_validator("transport")
    @classmethod
    def _transport(cls, value: str) -> str:
        if re.match(r"^(smtps?://[^/:]+(:\d+)?/?$|maildir:.+)", value):
            return value
        raise ValueError("transport must be smtp://host:port, smtps://host:port or maildir:PATH")


class Staff(_Section):
    authentication: Literal["token", "authres", "none"] = "token"
    trusted_authserv_ids: list[str] = []
    reply_tokens: bool = True  # queue+TOKEN@ reply addresses; off where plus-addressing is impossible

    @model_validator(mode="after")
    def _token_proof_needs_tokens(self) -> "Staff":
        if self.authentication == "token" and not self.reply_tokens:
            raise ValueError("authentication = \"token\" needs reply_tokens = true (use authres instead)")
        return self


class Rules(_Section):
    file: str = "rules.yaml"
    templates: str = "templates"


class Processing(_Section):
    """Contract 6: no one message holds up the others."""

    message_timeout_seconds: float = 60  # a message whose processing takes longer is quarantined

    @field_validator("message_timeout_seconds")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("message_timeout_seconds must be more than 0")
        return value


class Settings(BaseSettings):
    """The whole configuration. Environment variables win over the file."""

    model_config = SettingsConfigDict(
        env_prefix="MAILD_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    instance: Instance = Instance()
    database: Database = Database()
    smtp: Smtp = Smtp()
    imap: list[Imap] = []
    outbound: Outbound = Outbound()
    staff: Staff = Staff()
    rules: Rules = Rules()
    processing: Processing = Processing()
    # Where the configuration came from, and what relative paths are relative to.
    source: str = "built-in defaults"
    base_dir: str = "."

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings

    def path(self, value: str) -> Path:
        """A configured path, resolved against the configuration's directory."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else Path(self.base_dir) / path

    @property
    def data_dir(self) -> Path:
        return self.path(self.instance.data_dir)

    @property
    def rules_file(self) -> Path:
        return self.path(self.rules.file)

    @property
    def templates_dir(self) -> Path:
        return self.path(self.rules.templates)

    @property
    def database_url(self) -> str:
        """The database URL, with a relative SQLite path made absolute."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.path(url[len(prefix):]).resolve())
        return url


def find_config(explicit: str | None) -> Path | None:
    """The file to read: ``--config``, then ``$MAILD_CONFIG``, then ``./maild.toml``."""
    if explicit:
        return Path(explicit)
    if os.environ.get("MAILD_CONFIG"):
        return Path(os.environ["MAILD_CONFIG"])
    local = Path(DEFAULT_FILE)
    return local if local.is_file() else None


def load_settings(explicit: str | None = None) -> Settings:
    """Read and validate the configuration; raise ConfigError naming file and line."""
    path = find_config(explicit)
    if path is None:
        return _validate({}, None, "")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"at line (\d+)", str(exc))
        where = f"{path}:{line.group(1)}" if line else str(path)
        message = re.sub(r" \(at line.*", "", str(exc))
        raise ConfigError([f"{where}: {message}"]) from exc
    data["source"] = str(path)
    data["base_dir"] = str(path.resolve().parent)
    return _validate(data, path, text)


def _validate(data: dict[str, Any], path: Path | None, text: str) -> Settings:
    try:
        return Settings(**data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            where = f"{path}:{_line_of(text, loc)}" if path else "environment"
            errors.append(f"{where}: {'.'.join(loc)}: {err['msg']}")
        raise ConfigError(errors) from exc


def _line_of(text: str, loc: list[str]) -> int:
    """The line of a key in a TOML text, found by section and key name (best effort)."""
    section = ""
    keys = [part for part in loc if not part.isdigit()]
    wanted_section, wanted_key = (keys[0], keys[-1]) if len(keys) > 1 else ("", keys[0] if keys else "")
    table_index = int(loc[1]) if len(loc) > 1 and loc[1].isdigit() else None
    seen_tables = -1
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([\w.-]+)\s*\]\]?", stripped)
        if header:
            section = header.group(1)
            if section == wanted_section and stripped.startswith("[["):
                seen_tables += 1
            if not wanted_key or (section == wanted_section and wanted_key == wanted_section):
                return number
            continue
        key = re.match(r"^([\w-]+)\s*=", stripped)
        in_table = table_index is None or seen_tables == table_index
        if key and key.group(1) == wanted_key and section == wanted_section and in_table:
            return number
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"^\[\[?\s*{re.escape(wanted_section)}\s*\]\]?", line.strip()):
            return number
    return 1
