"""Text from mail never reaches the operator's terminal raw (docs/guarantees.md): the real `maild`
command line, in subprocesses, on mail with terminal escapes and rich markup in it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.conftest import run_maild

# ESC and OSC (set the window title, ring the bell), CSI colours, an 8-bit CSI (U+009B), DEL, and rich markup
HOSTILE = "\x1b]0;pwned\x07\x1b[31mpunainen\x1b[0m \u009b2J [bold]lihava[/bold] [link=http://evil.example]x[/link]\x7f"
# anything a terminal acts on: C0 but newline and tab, DEL, C1 (as UTF-8)
RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")


def hostile_mail(subject: str, message_id: str = "<hostile@example.fi>") -> bytes:
    return (
        f"From: Matti <matti@example.fi>\r\nTo: jasenpalvelu@liitto.fi\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Teksti {HOSTILE} loppuu.\r\n"
    ).encode("utf-8")


SPAM = b"X-Spam-Flag: yes\r\n" + hostile_mail(f"Roskaa {HOSTILE}", "<spam@example.fi>")  # dropped: quarantined


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One instance (`maild init`) with the hostile mail in it, for every command of this module."""
    directory = tmp_path_factory.mktemp("escapes")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "400")  # wide enough that rich's tables show every cell whole
        assert run_maild("init", str(directory)).returncode == 0
        path = str(directory / "maild.toml")
        for raw in (hostile_mail(f"Tärkeä {HOSTILE}"), SPAM):
            result = run_maild("--config", path, "ingest", input=raw)
            assert result.returncode == 0, result.stderr
        yield path


def shown(config: str, *args: str) -> bytes:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "400")
        result = run_maild("--config", config, *args)
    assert result.returncode == 0, result.stderr
    assert not RAW_CONTROL.search(result.stdout), result.stdout
    assert not RAW_CONTROL.search(result.stderr), result.stderr
    return result.stdout


@pytest.mark.parametrize(
    "args",
    [("tickets", "list"), ("tickets", "show", "1"), ("tickets", "search", "punainen"), ("members", "show", "matti@example.fi"),
     ("quarantine", "list"), ("quarantine", "show", "1"), ("outbox", "list", "--all"), ("report",), ("report", "--queue", "jasenasiat")],
)
def test_text_output_escapes_controls_and_interprets_no_markup(config: str, args: tuple[str, ...]) -> None:
    out = shown(config, *args).decode("utf-8")
    assert "[bold]lihava[/bold]" in out and "[link=http://evil.example]x[/link]" in out  # as written, not styled
    if args[0] != "outbox":  # outgoing subjects lost their controls when the mail was written
        assert "\\x1b]0;pwned\\x07\\x1b[31mpunainen\\x1b[0m \\x9b2J" in out  # escaped and visible


@pytest.mark.parametrize("args", [("tickets", "list"), ("tickets", "show", "1"), ("quarantine", "list")])
def test_json_output_escapes_every_control_and_keeps_the_value(config: str, args: tuple[str, ...]) -> None:
    document = json.loads(shown(config, *args, "--json"))
    first = document[0] if isinstance(document, list) else document
    assert HOSTILE in first["subject"]  # the data is intact; only its printing is escaped


def test_raw_show_to_a_pipe_gives_the_bytes_as_they_came(config: str) -> None:
    result = run_maild("--config", config, "quarantine", "show", "1", "--raw")
    assert result.returncode == 0 and result.stdout == SPAM
