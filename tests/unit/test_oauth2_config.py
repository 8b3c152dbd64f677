"""``auth = "xoauth2"`` and the ``oauth2`` tables of ``[[imap]]`` and ``[outbound]`` (docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from maild.config import ConfigError, load_settings

IMAP = '[[imap]]\nname = "a"\nhost = "h"\nusername = "box@liitto.fi"\n'
MICROSOFT = '[imap.oauth2]\nprovider = "microsoft"\ntenant = "liitto.fi"\nclient_id = "app"\nclient_secret_env = "APP_SECRET"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "maild.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path))
    return caught.value.errors


def test_password_stays_the_default(tmp_path: Path) -> None:
    settings = load_settings(str(write(tmp_path, IMAP + 'password = "pw"\n')))
    assert settings.imap[0].auth == "password" and settings.imap[0].oauth2 is None
    assert settings.outbound.auth == "password"


def test_each_provider_is_read(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    path = write(
        tmp_path,
        IMAP + 'auth = "xoauth2"\n' + MICROSOFT
        + '[[imap]]\nname = "b"\nhost = "h"\nusername = "b@liitto.fi"\nauth = "xoauth2"\n'
        + '[imap.oauth2]\nprovider = "google"\nservice_account_file = "keys/sa.json"\nsubject = "b@liitto.fi"\n'
        + 'token_url = "https://127.0.0.1:9/token"\nscope = "https://mail.google.com/"\n'
        + '[outbound]\ntransport = "smtp://smtp.office365.com:587"\nusername = "box@liitto.fi"\nauth = "xoauth2"\n'
        + '[outbound.oauth2]\nprovider = "command"\ntoken_command = "/usr/local/bin/token --mailbox box"\n',
    )
    settings = load_settings(str(path))
    first, second = settings.imap
    assert first.oauth2 is not None and first.oauth2.provider == "microsoft" and first.oauth2.tenant == "liitto.fi"
    assert second.oauth2 is not None and second.oauth2.subject == "b@liitto.fi"
    # relative key files are relative to the configuration's directory, like every other path
    assert second.oauth2.service_account_file == str(tmp_path / "keys" / "sa.json")
    assert settings.outbound.oauth2 is not None
    assert settings.outbound.oauth2.token_command == "/usr/local/bin/token --mailbox box"


def test_environment_overrides_reach_the_oauth2_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[outbound]\nusername = "box@liitto.fi"\nauth = "xoauth2"\n'
                           '[outbound.oauth2]\nprovider = "command"\ntoken_command = "a"\n')
    monkeypatch.setenv("MAILD_OUTBOUND__OAUTH2__TOKEN_COMMAND", "b")
    assert load_settings(str(path)).outbound.oauth2.token_command == "b"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # the table's own problems point at its header: line 6 is [imap.oauth2]
        (IMAP + 'auth = "xoauth2"\n[imap.oauth2]\nprovider = "microsoft"\nclient_id = "app"\nclient_secret_env = "S"\n',
         6, "provider microsoft needs tenant"),
        (IMAP + 'auth = "xoauth2"\n[imap.oauth2]\nprovider = "microsoft"\ntenant = "t"\nclient_id = "app"\n',
         6, "needs one of client_secret_env and client_secret_file"),
        (IMAP + 'auth = "xoauth2"\n[imap.oauth2]\nprovider = "microsoft"\ntenant = "t"\nclient_id = "app"\n'
         'client_secret_env = "S"\nclient_secret_file = "f"\n', 6, "needs one of client_secret_env"),
        (IMAP + 'auth = "xoauth2"\n[imap.oauth2]\nprovider = "google"\nservice_account_file = "sa.json"\n',
         6, "provider google needs subject"),
        (IMAP + 'auth = "xoauth2"\n[imap.oauth2]\nprovider = "command"\ntoken_command = "x"\nclient_id = "app"\n',
         6, "provider command does not use client_id"),
        (IMAP + 'auth = "xoauth2"\n' + MICROSOFT + 'token_url = "http://127.0.0.1/t/oauth2/v2.0/token"\n',
         6, "token_url must be an https:// URL"),
        (IMAP + 'auth = "xoauth2"\n' + MICROSOFT + 'token_url = "https://login.example/t/token"\n',
         6, "must end in /oauth2/v2.0/token"),
        # a key of the table: its own line
        (IMAP + 'auth = "xoauth2"\n[imap.oauth2]\nprovider = "facebook"\n', 7, "imap.0.oauth2.provider"),
        (IMAP + 'auth = "xoauth2"\n' + MICROSOFT + "bogus = 1\n", 11, "imap.0.oauth2.bogus: Extra inputs"),
        # the login's problems point at its [[imap]] (the second one here: line 5) or [outbound]
        (IMAP + 'password = "pw"\n' + IMAP + 'auth = "xoauth2"\n', 6, 'auth = "xoauth2" needs an oauth2 table'),
        (IMAP + 'password = "pw"\n' + MICROSOFT, 1, 'an oauth2 table needs auth = "xoauth2"'),
        (IMAP + 'auth = "xoauth2"\npassword_env = "PW"\n' + MICROSOFT, 1, 'auth = "xoauth2" takes no password'),
        ('[instance]\nname = "x"\n[outbound]\nauth = "xoauth2"\n[outbound.oauth2]\nprovider = "command"\n'
         'token_command = "x"\n', 3, 'needs the username'),
        ('[outbound]\nauth = "oauth"\n', 2, "outbound.auth"),
    ],
)
def test_a_bad_oauth2_setting_is_refused_with_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    errors = refused(path)
    assert any(error.startswith(f"{path}:{line}: ") and message in error for error in errors), errors


def test_a_missing_client_secret_is_a_clear_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_SECRET", raising=False)
    settings = load_settings(str(write(tmp_path, IMAP + 'auth = "xoauth2"\n' + MICROSOFT)))
    oauth2 = settings.imap[0].oauth2
    assert oauth2 is not None
    with pytest.raises(ConfigError, match="environment variable APP_SECRET is not set"):
        oauth2.check()
    monkeypatch.setenv("APP_SECRET", "s3cret-value")
    oauth2.check()
    assert oauth2.client_secret() == "s3cret-value"
    assert "s3cret-value" not in repr(settings)  # the configuration names secrets, never holds them


def test_a_client_secret_file_is_read_and_its_absence_named(tmp_path: Path) -> None:
    text = IMAP + 'auth = "xoauth2"\n' + MICROSOFT.replace('client_secret_env = "APP_SECRET"', 'client_secret_file = "secret.txt"')
    oauth2 = load_settings(str(write(tmp_path, text))).imap[0].oauth2
    assert oauth2 is not None
    with pytest.raises(ConfigError, match=f"cannot read client_secret_file {tmp_path / 'secret.txt'}"):
        oauth2.check()
    (tmp_path / "secret.txt").write_text("from-file\n", encoding="utf-8")
    assert oauth2.client_secret() == "from-file"


def test_an_unreadable_service_account_file_is_a_config_error(tmp_path: Path) -> None:
    text = IMAP + 'auth = "xoauth2"\n[imap.oauth2]\nprovider = "google"\nservice_account_file = "sa.json"\nsubject = "s@liitto.fi"\n'
    oauth2 = load_settings(str(write(tmp_path, text))).imap[0].oauth2
    assert oauth2 is not None
    with pytest.raises(ConfigError, match="cannot read service_account_file"):
        oauth2.check()


def test_a_dumped_configuration_validates_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spool processor gets the settings as a dump: every key is given there."""
    from maild.config import Settings

    settings = load_settings(str(write(tmp_path, IMAP + 'auth = "xoauth2"\n' + MICROSOFT)))
    again = Settings.model_validate(settings.model_dump())
    assert again.imap[0].oauth2 == settings.imap[0].oauth2
