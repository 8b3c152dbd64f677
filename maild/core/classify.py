"""Who wrote this message: a person, or a machine (docs/mail.md#machines and 4.4)? Pure: no I/O.

Each check answers one question and returns the reason it fired, or None. ``CHECKS`` runs top
to bottom and the first check that fires decides the ``Verdict``; no check fires: ``normal``.
Why the order:

1. **loop** first: our own mail coming back must never be answered or threaded as a member's.
2. **bounce** before auto_reply: DSNs come from the null sender and often carry
   ``Auto-Submitted``, but a bounce never opens a ticket while an auto-reply does (4.4).
3. **auto_reply declared by the message** (RFC 3834 and vendor headers, read receipts, the null
   sender, a corroborated out-of-office subject) before list: vacation responders often add
   ``Precedence: bulk`` or ``junk``, and lists never send from the null sender.
4. **list** before the sender-name checks: a ``noreply@`` newsletter with ``List-Id`` is a list.
5. **auto_reply by sender name** last: ``MAILER-DAEMON``, ``postmaster`` and ``noreply`` say
   only that nobody should be answered (4.3). A postmaster writing by hand is still classified
   ``auto_reply``: stored as a ticket like any auto-reply, never auto-answered.

Only the top-level headers are read: a bounce carries our own outgoing message, with our loop
header in it, as an attachment.
"""

from __future__ import annotations

import email.message
import re
from collections.abc import Callable
from dataclasses import dataclass

from maild.core.addresses import parse_address
from maild.core.bounces import (
    has_returned_copy,
    heuristic_failures,
    is_delivery_report,
    part_text,
    top_level_parts,
)
from maild.mail import Envelope, MachineKind, Parsed, Verdict

LOOP_HEADER = "X-Maild-Loop"
"""maild puts this header on every message it sends, with the sending queue's address as value.
Only its presence is checked: mail that carries it came from a maild, ours or another union's,
and answering it could start a loop."""

_SYSTEM_LOCAL_PARTS = frozenset({"mailer-daemon", "mailer_daemon", "mailerdaemon", "postmaster"})
_NOREPLY_LOCAL_PART = re.compile(r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply)(?![a-z])")
_SUPPRESS_AUTO_REPLY_TOKENS = frozenset({"all", "oof", "autoreply"})
_AUTORESPONDER_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder")
_NEGATIVE_VALUES = frozenset({"no", "false", "0"})
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
_SELF_SUPPRESSING_PRECEDENCE = frozenset({"bulk", "junk"})  # what autoresponders set, not lists
_AUTO_REPLY_PRECEDENCE = frozenset({"auto_reply", "auto-reply"})
_BULK_SENDER_HEADERS = ("list-unsubscribe-post", "feedback-id")

# How bounce subjects start, in the languages of the MTAs and of the Exchange/Outlook
# localisations we meet. Only ever used with other evidence: it admits a message to the
# flufl.bounce heuristics, or names a bounce from a machine sender.
_BOUNCE_SUBJECT_STARTS = (
    "undeliver",  # Undeliverable: ..., Undelivered Mail Returned to Sender
    "delivery status", "delivery notification", "delivery failure", "delivery report",
    "delivery has failed", "message delivery", "mail delivery", "returned mail", "failure notice",
    "failure delivery", "failed mail", "non-delivery", "nondelivery", "nondeliverable",
    "mail system error", "permanent delivery failure", "warning: message", "warning: could not send",
    "delayed mail", "message delayed", "mail could not be delivered", "mail not delivered",
    "toimittamaton", "toimitus epäonnistui", "ej levererbart", "olevererbart", "unzustellbar",
    "nicht zustellbar",
)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(" + "|".join(map(re.escape, _BOUNCE_SUBJECT_STARTS)) + ")", re.IGNORECASE
)

# The prefix an out-of-office responder puts on a subject ("Automatic reply: <original>") or the
# whole subject a person set for their vacation ("Olen lomalla"). A member may well write
# "Olen lomalla 1.-15.7., soitan myöhemmin" to the union, so the phrase must be followed by ":",
# "]" or nothing, and it is never enough alone: see ``_answers_automatically``.
_AUTO_REPLY_SUBJECT_PHRASES = (
    # English, and Lotus Notes' "AUTO: <name> is out of the office"
    "automatic reply", "auto reply", "auto-reply", "autoreply", "automatic response",
    "auto response", "auto-response", "autoresponse", "out of office autoreply", "out of office",
    "out of the office", "oof", "ooo", "auto",
    # Finnish
    "automaattinen vastaus", "automaattivastaus", "poissaoloilmoitus", "poissa toimistolta",
    "poissa", "olen lomalla", "lomalla",
    # Swedish
    "automatiskt svar", "autosvar", "frånvaromeddelande", "frånvarande", "frånvaro",
    # German
    "automatische antwort", "abwesenheitsnotiz", "abwesenheit", "abwesend",
    # Estonian, Polish, Russian, Norwegian/Danish, Dutch, French, Spanish
    "automaatne vastus", "automatyczna odpowiedź", "автоматический ответ", "автоответ",
    "automatisk svar", "automatisch antwoord", "réponse automatique", "respuesta automática",
)
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*\[?\s*(" + "|".join(map(re.escape, _AUTO_REPLY_SUBJECT_PHRASES)) + r")\s*(:|\]|$)",
    re.IGNORECASE,
)
# Words an out-of-office message uses about itself near its top (the Notes responder says
# "This is an automated response to your message").
_AUTO_REPLY_BODY_PHRASES = (
    "automated response", "automatic reply", "automatic response", "autoreply", "auto-reply",
    "automaattinen vastaus", "automaattinen viesti", "automatiskt svar", "automatiskt meddelande",
    "automatische antwort", "automatisch generiert",
)
_AUTO_REPLY_BODY = re.compile("|".join(map(re.escape, _AUTO_REPLY_BODY_PHRASES)), re.IGNORECASE)
_BODY_SCAN_LIMIT = 2000


@dataclass(frozen=True)
class Evidence:
    """What every check may look at."""

    parsed: Parsed
    envelope: Envelope
    message: email.message.Message
    own_addresses: frozenset[str]

    def values(self, name: str) -> tuple[str, ...]:
        return self.parsed.headers.get(name, ())

    def first(self, name: str) -> str:
        values = self.values(name)
        return values[0].strip() if values else ""


@dataclass(frozen=True)
class Check:
    """One stage of ``CHECKS``: the question it asks, and the kind a yes decides."""

    kind: MachineKind
    test: Callable[[Evidence], str | None]


def classify(
    parsed: Parsed,
    envelope: Envelope,
    message: email.message.Message,
    own_addresses: frozenset[str],
) -> Verdict:
    """The kind of sender that wrote the message, and the first reason found (module docstring)."""
    evidence = Evidence(parsed, envelope, message, frozenset(map(normalize_address, own_addresses)))
    for check in CHECKS:
        reason = check.test(evidence)
        if reason:
            return Verdict(check.kind, reason)
    return Verdict("normal")


def normalize_address(address: str) -> str:
    """Lower-case, without angle brackets and without a ``+tag`` in the local part."""
    local, at, domain = address.strip().strip("<>").lower().rpartition("@")
    if not at:
        return domain
    return f"{local.split('+', 1)[0]}@{domain}"


# --- loop ------------------------------------------------------------------------------------


def has_loop_header(ev: Evidence) -> str | None:
    return f"{LOOP_HEADER} header" if ev.values(LOOP_HEADER.lower()) else None


def is_from_own_address(ev: Evidence) -> str | None:
    sender = normalize_address(ev.parsed.from_addr)
    return f"From is our own address {sender}" if sender and sender in ev.own_addresses else None


# --- bounce ----------------------------------------------------------------------------------


def is_delivery_status_notification(ev: Evidence) -> str | None:
    return "delivery status notification (RFC 3464)" if is_delivery_report(ev.message) else None


def is_recognised_bounce(ev: Evidence) -> str | None:
    """flufl.bounce finds failed recipients in a message that says it was machine-made.

    The heuristics alone would also fire on a member forwarding a bounce to ask what it means
    ("VL: Undelivered Mail Returned to Sender"): that member must get a ticket.
    """
    if not _looks_machine_made(ev):
        return None
    temporary, permanent = heuristic_failures(ev.message)
    return "bounce recognised by flufl.bounce" if temporary or permanent else None


def is_bounce_notice_from_machine(ev: Evidence) -> str | None:
    """A machine sender and a bounce subject, even when no recipient can be read out of it."""
    sender = _machine_sender(ev)
    if sender is not None and _BOUNCE_SUBJECT.match(ev.parsed.subject):
        return f"bounce subject from {sender or 'the null sender'}"
    return None


def is_returned_message(ev: Evidence) -> str | None:
    """A bounce subject with the returned message (or its headers) attached, sender unknown."""
    if _BOUNCE_SUBJECT.match(ev.parsed.subject) and has_returned_copy(ev.message):
        return "bounce subject with the returned message attached"
    return None


# --- auto_reply, declared by the message ------------------------------------------------------


def is_auto_submitted(ev: Evidence) -> str | None:
    """RFC 3834: any ``Auto-Submitted`` keyword but ``no`` (comments and parameters ignored)."""
    for value in ev.values("auto-submitted"):
        keyword = re.split(r"[;(\s]", value.strip(), maxsplit=1)[0].lower()
        if keyword and keyword != "no":
            return f"Auto-Submitted: {value.strip()}"
    return None


def has_autoresponder_header(ev: Evidence) -> str | None:
    for name in _AUTORESPONDER_HEADERS:
        for value in ev.values(name):
            if value.strip().lower() not in _NEGATIVE_VALUES:
                return f"{name} header"
    return None


def suppresses_auto_replies(ev: Evidence) -> str | None:
    """``X-Auto-Response-Suppress`` (Exchange) asking for no auto-replies: All, OOF or AutoReply."""
    for value in ev.values("x-auto-response-suppress"):
        tokens = {token.lower() for token in re.split(r"[\s,;]+", value) if token}
        if tokens & _SUPPRESS_AUTO_REPLY_TOKENS:
            return f"X-Auto-Response-Suppress: {value.strip()}"
    return None


def has_auto_reply_precedence(ev: Evidence) -> str | None:
    precedence = _precedence(ev)
    return f"Precedence: {precedence}" if precedence in _AUTO_REPLY_PRECEDENCE else None


def is_read_receipt(ev: Evidence) -> str | None:
    """A message disposition notification (RFC 8098): a client answering by itself."""
    if ev.message.get_content_type() == "multipart/report":
        report_type = str(ev.message.get_param("report-type", "", header="content-type")).lower()
        if report_type == "disposition-notification":
            return "read receipt (RFC 8098)"
    return None


def is_null_sender(ev: Evidence) -> str | None:
    return "null sender" if _envelope_sender(ev) == "" else None


def has_auto_reply_subject(ev: Evidence) -> str | None:
    """An out-of-office subject, believed only when the message also answers automatically."""
    match = _AUTO_REPLY_SUBJECT.match(ev.parsed.subject)
    if match and _answers_automatically(ev):
        return f"out-of-office subject {match.group(1)!r}"
    return None


# --- list ------------------------------------------------------------------------------------


def has_bulk_precedence(ev: Evidence) -> str | None:
    precedence = _precedence(ev)
    return f"Precedence: {precedence}" if precedence in _BULK_PRECEDENCE else None


def has_list_id(ev: Evidence) -> str | None:
    return f"List-Id: {ev.first('list-id')}" if ev.first("list-id") else None


def is_bulk_mailing(ev: Evidence) -> str | None:
    """``List-Unsubscribe`` from a bulk sender (RFC 8058 one-click, or a feedback-loop id).

    ``List-Unsubscribe`` alone is not enough: some personal mail services add it too.
    """
    if not ev.first("list-unsubscribe"):
        return None
    for name in _BULK_SENDER_HEADERS:
        if ev.first(name):
            return f"List-Unsubscribe with {name}"
    return None


# --- auto_reply, by who sent it -------------------------------------------------------------


def is_system_sender(ev: Evidence) -> str | None:
    sender = _system_sender(ev)
    return f"system sender {sender}" if sender else None


def is_noreply_sender(ev: Evidence) -> str | None:
    for address in _sender_addresses(ev):
        if _is_noreply(address):
            return f"no-reply sender {address}"
    return None


def machine_address(address: str, own_addresses: frozenset[str]) -> str | None:
    """Why automatic mail must not go to this address (docs/mail.md#machines: the null sender,
    MAILER-DAEMON, postmaster, no-reply, one of our own addresses), or None."""
    normal = normalize_address(address)
    if not normal:
        return "null sender"
    if normal in {normalize_address(a) for a in own_addresses}:
        return f"our own address {normal}"
    if _local_part(normal) in _SYSTEM_LOCAL_PARTS:
        return f"system sender {normal}"
    return f"no-reply sender {normal}" if _is_noreply(normal) else None


def no_member_mail(address: str, undeliverable: bool, opened_by: str | None, own_addresses: frozenset[str]) -> str | None:
    """Why no automatic mail (reminder, resolution) may go to a ticket's requester, or None:
    the address bounces (docs/mail.md#bounces), machine mail opened the ticket or the address is
    one no person reads (docs/mail.md#machines)."""
    if undeliverable:
        return "the requester's address bounces"
    if opened_by:
        return f"the ticket was opened by machine mail ({opened_by})"
    return machine_address(address, own_addresses)


CHECKS: tuple[Check, ...] = (
    Check("loop", has_loop_header),
    Check("loop", is_from_own_address),
    Check("bounce", is_delivery_status_notification),
    Check("bounce", is_recognised_bounce),
    Check("bounce", is_bounce_notice_from_machine),
    Check("bounce", is_returned_message),
    Check("auto_reply", is_auto_submitted),
    Check("auto_reply", has_autoresponder_header),
    Check("auto_reply", suppresses_auto_replies),
    Check("auto_reply", has_auto_reply_precedence),
    Check("auto_reply", is_read_receipt),
    Check("auto_reply", is_null_sender),
    Check("auto_reply", has_auto_reply_subject),
    Check("list", has_bulk_precedence),
    Check("list", has_list_id),
    Check("list", is_bulk_mailing),
    Check("auto_reply", is_system_sender),
    Check("auto_reply", is_noreply_sender),
)


# --- shared evidence -------------------------------------------------------------------------


def _envelope_sender(ev: Evidence) -> str | None:
    """The SMTP ``MAIL FROM``; when the transport does not know it (IMAP, pipe), the topmost
    ``Return-Path``, which the delivering MTA wrote from it. None when neither is known."""
    if ev.envelope.mail_from is not None:
        return normalize_address(ev.envelope.mail_from)
    return_path = ev.values("return-path")
    if not return_path:
        return None
    if return_path[0].strip() in ("", "<>"):
        return ""
    address = parse_address(return_path[0])
    return normalize_address(address) if address else None


def _sender_addresses(ev: Evidence) -> tuple[str, ...]:
    candidates = (normalize_address(ev.parsed.from_addr), _envelope_sender(ev))
    return tuple(dict.fromkeys(a for a in candidates if a))


def _precedence(ev: Evidence) -> str:
    """The ``Precedence`` keyword, lower-case, without any comment after it."""
    words = ev.first("precedence").lower().split()
    return words[0] if words else ""


def _local_part(address: str) -> str:
    return address.rpartition("@")[0] or address


def _is_noreply(address: str) -> bool:
    return bool(_NOREPLY_LOCAL_PART.match(_local_part(address)))


def _system_sender(ev: Evidence) -> str | None:
    """The From or envelope address of MAILER-DAEMON or postmaster, if either is one."""
    return next((a for a in _sender_addresses(ev) if _local_part(a) in _SYSTEM_LOCAL_PARTS), None)


def _machine_sender(ev: Evidence) -> str | None:
    """"" for the null sender, the address of a system sender, else None."""
    return "" if _envelope_sender(ev) == "" else _system_sender(ev)


def _looks_machine_made(ev: Evidence) -> bool:
    """Anything a person's mail client would not produce: a machine sender, a bounce subject,
    ``Auto-Submitted`` or a bulk precedence."""
    return bool(
        _machine_sender(ev) is not None
        or _BOUNCE_SUBJECT.match(ev.parsed.subject)
        or is_auto_submitted(ev)
        or _precedence(ev) in _SELF_SUPPRESSING_PRECEDENCE
    )


def _answers_automatically(ev: Evidence) -> bool:
    """Evidence besides the subject: it answers a message (In-Reply-To, References), it asks not
    to be answered (``Precedence: bulk|junk``), or its opening text calls itself automatic."""
    if ev.parsed.headers.get("in-reply-to") or ev.parsed.headers.get("references"):
        return True
    if _precedence(ev) in _SELF_SUPPRESSING_PRECEDENCE:
        return True
    return bool(_AUTO_REPLY_BODY.search(_opening_text(ev.message)))


def _opening_text(message: email.message.Message) -> str:
    """The start of the first inline text part (HTML as it is: only words are searched)."""
    for part in top_level_parts(message):
        if part.get_content_maintype() == "text" and part.get_content_disposition() != "attachment":
            return part_text(part)[:_BODY_SCAN_LIMIT]
    return ""
