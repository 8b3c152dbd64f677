"""Configuration: ``maild.toml`` plus ``MAILD_<SECTION>__<KEY>`` environment overrides.

Lookup order (docs/configuration.md): ``--config PATH``, ``$MAILD_CONFIG``, ``./maild.toml``,
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

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_validator
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


MICROSOFT_TOKEN_PATH = "/oauth2/v2.0/token"  # after the authority: https://login.microsoftonline.com/{tenant}
OAUTH2_KEYS = {  # what each provider uses, the keys it cannot do without first
    "microsoft": (("tenant", "client_id"), ("client_secret_env", "client_secret_file", "token_url", "scope")),
    "google": (("service_account_file", "subject"), ("token_url", "scope")),
    "command": (("token_command",), ()),
}


class OAuth2(_Section):
    """Where XOAUTH2 access tokens come from (docs/operations.md). Secrets are named here, never written."""

    provider: Literal["microsoft", "google", "command"]
    tenant: str = ""
    client_id: str = ""
    client_secret_env: str = ""
    client_secret_file: str = ""
    service_account_file: str = ""
    subject: str = ""  # google: the mailbox the service account acts for
    token_command: str = ""
    token_url: str = ""  # overrides the provider's token endpoint
    scope: str = ""  # overrides the provider's scope

    @model_validator(mode="after")
    def _fits_provider(self) -> "OAuth2":
        required, optional = OAUTH2_KEYS[self.provider]
        # by value, not by what was given: a dumped and re-validated table (the processor's) has every key
        stray = [name for name in type(self).model_fields if name != "provider" and getattr(self, name)
                 and name not in required + optional]
        if stray:
            raise ValueError(f"provider {self.provider} does not use {', '.join(stray)}")
        missing = [name for name in required if not getattr(self, name)]
        if missing:
            raise ValueError(f"provider {self.provider} needs {', '.join(missing)}")
        if self.provider == "microsoft" and bool(self.client_secret_env) == bool(self.client_secret_file):
            raise ValueError("provider microsoft needs one of client_secret_env and client_secret_file")
        if self.token_url and not re.match(r"^https://[^/\s]+/\S*$", self.token_url):
            raise ValueError("token_url must be an https:// URL")
        if self.provider == "microsoft" and self.token_url and not self.token_url.endswith(MICROSOFT_TOKEN_PATH):
            raise ValueError(f"token_url of provider microsoft must end in {MICROSOFT_TOKEN_PATH}")
        return self

    def resolved(self, base: Path) -> "OAuth2":
        """A copy with relative key files made absolute against ``base``."""
        files = {
            name: str(base / value)
            for name in ("client_secret_file", "service_account_file")
            if (value := getattr(self, name)) and not Path(value).expanduser().is_absolute()
        }
        return self.model_copy(update=files)

    def client_secret(self) -> str:
        """The Microsoft client secret, from its variable or file."""
        if self.client_secret_env:
            value = os.environ.get(self.client_secret_env)
            if not value:
                raise ConfigError([f"oauth2: environment variable {self.client_secret_env} is not set"])
            return value
        try:
            value = Path(self.client_secret_file).expanduser().read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"oauth2: cannot read client_secret_file {self.client_secret_file}: {exc.__class__.__name__}"]) from exc
        if not value:
            raise ConfigError([f"oauth2: client_secret_file {self.client_secret_file} is empty"])
        return value

    def check(self) -> None:
        """Raise ConfigError when a secret this provider needs cannot be read."""
        if self.provider == "microsoft":
            self.client_secret()
        elif self.provider == "google" and not os.access(Path(self.service_account_file).expanduser(), os.R_OK):
            raise ConfigError([f"oauth2: cannot read service_account_file {self.service_account_file}"])


class Login(Secret):
    """Credentials for a server: a password (see Secret) or, with ``auth = "xoauth2"``, OAuth2."""

    username: str = ""
    auth: Literal["password", "xoauth2"] = "password"
    oauth2: OAuth2 | None = None

    def check_secrets(self) -> None:
        """Raise ConfigError when a secret this login needs cannot be read (``maild check``)."""
        if self.oauth2 is not None:
            self.oauth2.check()
            return
        try:
            self.secret()
        except OSError as exc:
            raise ConfigError([f"password_file {self.password_file}: {exc.strerror}"]) from exc

    @model_validator(mode="after")
    def _auth_fits(self) -> "Login":
        if self.auth == "password":
            if self.oauth2 is not None:
                raise ValueError('an oauth2 table needs auth = "xoauth2"')
            return self
        if self.oauth2 is None:
            raise ValueError('auth = "xoauth2" needs an oauth2 table')
        if self.password or self.password_env or self.password_file:
            raise ValueError('auth = "xoauth2" takes no password')
        if not self.username:
            raise ValueError('auth = "xoauth2" needs the username (the mailbox)')
        return self


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
    max_recipients: PositiveInt = 100  # RCPTs per message; 452 beyond
    max_connections: PositiveInt = 100  # sessions at once; 421 beyond
    timeout_seconds: PositiveInt = 300  # an idle session is closed after this

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


class Imap(Login):
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


class Outbound(Login):
    transport: str = "maildir:var/outbox"
    starttls: bool = True
    username: str = ""
    auto_reply_limit_per_hour: int = 3
    ca_file: str = ""  # optional: trust this CA/self-signed certificate for TLS
    inflight_timeout_seconds: int = 120  # a mail left "sending" by a crash is sent again after this
    connections: int = 4  # SMTP connections to the smarthost, each reused
    # files carried by one mail, in all (docs/mail.md#attachments); base64 makes them a third bigger
    attach_max_bytes: int = Field(default=10485760, ge=0, le=52428800)

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


class Metrics(_Section):
    listen: str = ""  # HOST:PORT for Prometheus' /metrics; empty: off

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if value and (not sep or not host or not port.isdigit() or not 0 < int(port) < 65536):
            raise ValueError("listen must be HOST:PORT, or empty for no metrics")
        return value


class Web(_Section):
    """The web form channel (off unless ``listen`` is set)."""

    listen: str = ""  # HOST:PORT for the form page; empty: off
    queue: str = ""  # the queue whose address the form's mail goes to; empty: the default queue
    max_body_bytes: int = 65536
    per_ip_per_hour: int = 20
    per_address_per_hour: int = 5
    forwarded_allow_ips: list[str] = []  # reverse proxies whose X-Forwarded-For is believed

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if value and (not sep or not host or not port.isdigit() or not 0 < int(port) < 65536):
            raise ValueError("listen must be HOST:PORT, or empty for no web form")
        return value

    @field_validator("max_body_bytes", "per_ip_per_hour", "per_address_per_hour")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value

    def warnings(self) -> list[str]:
        """Settings that work but defeat the per-client limit (``maild check`` prints them)."""
        if not self.listen:
            return []
        if "*" in self.forwarded_allow_ips:
            return ["web: forwarded_allow_ips has \"*\": any client can name its own address in "
                    "X-Forwarded-For and escape per_ip_per_hour; name your reverse proxy's address"]
        host = self.listen.rpartition(":")[0].strip("[]")
        if host in ("127.0.0.1", "::1", "localhost") and not self.forwarded_allow_ips:
            return ["web: listens on loopback without forwarded_allow_ips: behind a reverse proxy every "
                    "visitor is the proxy's address, and per_ip_per_hour counts them all as one client"]
        return []

class Members(_Section):
    """The member register (docs/coming.md#member-register)."""

    lookup_command: str = ""  # PROGRAM [ARGS]: run with the sender's address, prints a JSON object or nothing
    lookup_timeout_seconds: float = 5
    lookup_cache_seconds: float = 3600
    show_fields: list[str] = []  # register fields shown in staff notifications, in this order

    @field_validator("lookup_command")
    @classmethod
    def _command(cls, value: str) -> str:
        import shlex

        try:
            shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"lookup_command: {exc}") from exc
        return value.strip()

    @field_validator("lookup_timeout_seconds")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("lookup_timeout_seconds must be more than 0")
        return value

    @field_validator("lookup_cache_seconds")
    @classmethod
    def _cache(cls, value: float) -> float:
        if value < 0:
            raise ValueError("lookup_cache_seconds must be 0 or more")
        return value

    def check_command(self, base: Path) -> str | None:
        """Why the lookup command cannot run (``maild check``), or None."""
        import shlex
        import shutil

        if not self.lookup_command:
            return None
        program = shlex.split(self.lookup_command)[0]
        path = Path(program).expanduser()
        if "/" in program:
            path = path if path.is_absolute() else base / path
            if not (path.is_file() and os.access(path, os.X_OK)):
                return f"lookup_command: {program} is not an executable file"
        elif shutil.which(program) is None:
            return f"lookup_command: {program} is not found on PATH"
        return None


class Log(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


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
    log: Log = Log()
    metrics: Metrics = Metrics()
    web: Web = Web()
    members: Members = Members()
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

    @model_validator(mode="after")
    def _oauth2_files(self) -> "Settings":
        """Relative key files of ``oauth2`` tables are relative to the configuration's directory."""
        for login in (*self.imap, self.outbound):
            if login.oauth2 is not None:
                login.oauth2 = login.oauth2.resolved(Path(self.base_dir))
        return self

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
    wanted_section, wanted_key = (".".join(keys[:-1]), keys[-1]) if len(keys) > 1 else ("", keys[0] if keys else "")
    table_index = int(loc[1]) if len(loc) > 1 and loc[1].isdigit() else None
    seen_tables = -1
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([\w.-]+)\s*\]\]?", stripped)
        if header:
            section = header.group(1)
            if keys and section == keys[0] and stripped.startswith("[["):
                seen_tables += 1
            this_table = table_index is None or seen_tables == table_index
            # the table itself: a whole-table error, or an error in a sub-table such as [imap.oauth2]
            table = section == (f"{wanted_section}.{wanted_key}" if wanted_section else wanted_key) and this_table
            if not wanted_key or table:
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
