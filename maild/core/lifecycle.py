"""Ticket life (docs/mail.md#ticket-life): every status change lives in this one table.

``new -> open -> pending -> resolved -> closed``; a member's reply reopens a pending or
resolved ticket; mail about a closed ticket opens a new one (threading handles that).
"""

from __future__ import annotations

STATUSES = ("new", "open", "pending", "resolved", "closed")

# (current status, what happened) -> new status. Anything not listed changes nothing.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("pending", "member_reply"): "open",
    ("resolved", "member_reply"): "open",
    ("new", "staff_reply"): "pending",
    ("open", "staff_reply"): "pending",
    ("resolved", "staff_reply"): "pending",
    ("new", "staff_action"): "open",
    ("new", "set_open"): "open",
    ("pending", "set_open"): "open",
    ("resolved", "set_open"): "open",
    ("new", "set_pending"): "pending",
    ("open", "set_pending"): "pending",
    ("resolved", "set_pending"): "pending",
    ("new", "resolve"): "resolved",
    ("open", "resolve"): "resolved",
    ("pending", "resolve"): "resolved",
    ("resolved", "close"): "closed",
}


def next_status(current: str, happened: str) -> str:
    """The status after ``happened``; unchanged when the table has no such step."""
    return TRANSITIONS.get((current, happened), current)
