"""Logging for the daemon: ``[log] level`` and ``format`` ("text" or "json"), one line per event.

Under systemd (``JOURNAL_STREAM`` set) the journal stamps each line itself, so text lines carry
no timestamp of their own. Third-party libraries (alembic, aiosmtpd, aioimaplib, msal)
only speak up for warnings unless the level is DEBUG. Fields given as ``extra=`` (spool id,
source, outcome, ticket) become keys of a JSON line and ``key=value`` pairs of a text line.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from typing import Any

from maild.terminal import terminal_safe

QUIET = ("alembic", "mail.log", "aiosmtpd", "aioimaplib", "aiosmtplib", "asyncio", "msal", "urllib3")
# Their DEBUG lines are the protocol itself, credentials included (an AUTHENTICATE XOAUTH2 line
# carries the access token): never below INFO, whatever the level.
WIRE = ("aioimaplib", "aiosmtplib", "mail.log")
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")}


class TextFormatter(logging.Formatter):
    def __init__(self, timestamps: bool) -> None:
        super().__init__(("%(asctime)s " if timestamps else "") + "%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = fields(record)
        if extra:
            line += "".join(f" {key}={value}" for key, value in extra.items())
        return terminal_safe(line)  # log lines carry values from mail (subjects, a server's reply)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **fields(record),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return terminal_safe(json.dumps(document, ensure_ascii=False, default=str))


def configure(level: str = "info", fmt: str = "text") -> None:
    """Set up the root logger for this process (the daemon and its processor child alike)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(timestamps="JOURNAL_STREAM" not in os.environ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in QUIET:
        if numeric > logging.DEBUG:
            logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
        else:
            logging.getLogger(name).setLevel(logging.INFO if name in WIRE else numeric)
