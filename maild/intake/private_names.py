"""The names of aiosmtpd and aioimaplib that maild's adapters use although the libraries do not
promise to keep them: underscore methods and attributes, and classes of a module that is not
the package's public face. Any release may rename them, so pyproject.toml caps both packages
below their next minor version, and tests/unit/test_private_names.py checks that every name
here exists in the installed packages (an upgrade that breaks one fails there, not in
production) and that the adapters use no such name that is missing from this list.

Raising a cap: run that test against the new version, then move the bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class PrivateName:
    owner: str  # "module" or "module:Class"
    name: str
    on: Literal["module", "class", "instance"]  # instance: set by __init__ or when a connection is made
    used_by: str


PRIVATE_NAMES: tuple[PrivateName, ...] = (
    # MaildSMTP (intake/smtp.py) extends aiosmtpd's protocol: an idle timer counted from the last
    # byte read, a session limit, DATA read in blocks (intake/smtp_data.py).
    PrivateName("aiosmtpd.smtp:SMTP", "_handle_client", "class", "MaildSMTP._handle_client: 421 beyond the session limit"),
    PrivateName("aiosmtpd.smtp:SMTP", "_timeout_cb", "class", "MaildSMTP._timeout_cb: idle counted from the last read"),
    PrivateName("aiosmtpd.smtp:SMTP", "_reset_timeout", "class", "MaildSMTP._timeout_cb"),
    PrivateName("aiosmtpd.smtp:SMTP", "_set_post_data_state", "class", "MaildSMTP.smtp_DATA"),
    PrivateName("aiosmtpd.smtp:SMTP", "_call_handler_hook", "class", "MaildSMTP.smtp_DATA"),
    PrivateName("aiosmtpd.smtp:SMTP", "_timeout_duration", "instance", "MaildSMTP._timeout_cb"),
    PrivateName("aiosmtpd.smtp:SMTP", "_original_transport", "instance", "MaildSMTP.connection_made: not a STARTTLS upgrade"),
    PrivateName("aiosmtpd.smtp:SMTP", "_reader", "instance", "MaildSMTP.smtp_DATA: read_data in blocks"),
    PrivateName("aiosmtpd.smtp:SMTP", "_writer", "instance", "MaildSMTP._timeout_cb: the 421 before closing"),
    # intake/imap.py: commands aioimaplib has no method for (STARTTLS on an open connection,
    # AUTHENTICATE with an initial response), and dropping a connection still being made.
    PrivateName("aioimaplib.aioimaplib", "Command", "module", "Session.starttls, SaslCommand"),
    PrivateName("aioimaplib.aioimaplib", "Response", "module", "Session.call: type of what commands return"),
    PrivateName("aioimaplib.aioimaplib", "quoted", "module", "Session.login"),
    PrivateName("aioimaplib.aioimaplib:IMAP4", "_client_task", "instance", "Session.abort"),
)
