"""Configuration lookup, overrides and errors (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from maild.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "maild.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_built_in_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILD_CONFIG", raising=False)
    settings = load_settings()
    assert settings.source == "built-in defaults"
    assert settings.database.url == "sqlite:///var/maild.db"
    assert settings.smtp.listen == "127.0.0.1:2525"
    assert settings.rules.file == "rules.yaml" and settings.rules.templates == "templates"
    assert settings.outbound.transport == "maildir:var/outbox"
    assert settings.outbound.attach_max_bytes == 10485760  # contract 8
    assert settings.instance.tag_prefix == "JP"
    assert settings.instance.timezone == "Europe/Helsinki"
    assert settings.imap == []


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    local = write(tmp_path, '[instance]\ntag_prefix = "LOCAL"\n')
    other = tmp_path / "other.toml"
    other.write_text('[instance]\ntag_prefix = "ENV"\n', encoding="utf-8")
    explicit = tmp_path / "explicit.toml"
    explicit.write_text('[instance]\ntag_prefix = "ARG"\n', encoding="utf-8")
    assert load_settings().instance.tag_prefix == "LOCAL"
    monkeypatch.setenv("MAILD_CONFIG", str(other))
    assert load_settings().instance.tag_prefix == "ENV"
    assert load_settings(str(explicit)).instance.tag_prefix == "ARG"
    assert local.exists()


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[database]\nurl = "sqlite:///file.db"\n[smtp]\naccept_domains = ["a.fi"]\n')
    monkeypatch.setenv("MAILD_DATABASE__URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("MAILD_SMTP__MAX_MESSAGE_BYTES", "1000")
    settings = load_settings(str(path))
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.smtp.max_message_bytes == 1000
    assert settings.smtp.accept_domains == ["a.fi"]


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "inst").mkdir()
    path = tmp_path / "inst" / "maild.toml"
    path.write_text('[instance]\ndata_dir = "data"\n', encoding="utf-8")
    settings = load_settings(str(path))
    assert settings.data_dir == tmp_path / "inst" / "data"
    assert settings.database_url == f"sqlite:///{tmp_path / 'inst' / 'var' / 'maild.db'}"
    assert settings.rules_file == tmp_path / "inst" / "rules.yaml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[instance]\nname = "x"\n\n[smtp]\nlisten = "nowhere"\n', ":5: smtp.listen"),
        ('[instance]\nname = "x"\nbogus = 1\n', ":3: instance.bogus: Extra inputs"),
        ('[instance]\nname = "x"\n[[imap]]\nname = "a"\nhost = "h"\nusername = "u"\nsecurity = "ssl"\n', ":7: imap.0.security"),
        ('[instance]\ntimezone = "Mars/Olympus"\n', ":2: instance.timezone"),
        ('[instance]\nname = "x\n', ":2: "),
        ('[smtp]\nmax_message_bytes = "lots"\n', ":2: smtp.max_message_bytes"),
        ('[nonsense]\nkey = 1\n', ":1: nonsense"),
        ('[outbound]\nattach_max_bytes = -1\n', ":2: outbound.attach_max_bytes: Input should be greater than or equal to 0"),
        ('[outbound]\nattach_max_bytes = 104857600\n', ":2: outbound.attach_max_bytes: Input should be less than"),
        ('[outbound]\nattach_max_bytes = "10 MB"\n', ":2: outbound.attach_max_bytes"),
    ],
)
def test_bad_file_is_refused_with_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path))
    assert any(error.startswith(f"{path}{expected}") for error in caught.value.errors), caught.value.errors


def test_secrets_from_env_file_or_literal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n", encoding="utf-8")
    path = write(
        tmp_path,
        '[outbound]\npassword_env = "SMTP_PW"\n'
        f'[[imap]]\nname = "a"\nhost = "h"\nusername = "u"\npassword_file = "{secret_file}"\n'
        '[[imap]]\nname = "b"\nhost = "h"\nusername = "u"\npassword = "literal"\n',
    )
    monkeypatch.setenv("SMTP_PW", "from-env")
    settings = load_settings(str(path))
    assert settings.outbound.secret() == "from-env"
    assert [box.secret() for box in settings.imap] == ["from-file", "literal"]


@pytest.mark.parametrize("web, warned", [
    ("", None),
    ('listen = "127.0.0.1:8025"\nforwarded_allow_ips = ["127.0.0.1"]', None),
    ('listen = "0.0.0.0:8025"', None),
    ('listen = "127.0.0.1:8025"', "every visitor is the proxy's address"),
    ('listen = "0.0.0.0:8025"\nforwarded_allow_ips = ["*"]', "escape per_ip_per_hour"),
])
def test_web_settings_that_defeat_the_per_client_limit_are_warned_of(tmp_path: Path, web: str, warned: str | None) -> None:
    path = tmp_path / "maild.toml"
    path.write_text(f"[web]\n{web}\n")
    warnings = load_settings(str(path)).web.warnings()
    assert (warnings == []) if warned is None else (len(warnings) == 1 and warned in warnings[0])
