"""The names the store, the planner and the templates share: statuses, kinds and states.

``StrEnum``: each member *is* its string (``Status.NEW == "new"``), so the values in the
database, in JSON output and in templates are the strings they always were, and a row read
back compares equal to the member without conversion.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A ticket's place in its life (``core.lifecycle``)."""

    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING)


class Channel(StrEnum):
    """How a request came: ``#channel`` names the ones no mail shows."""

    EMAIL = "email"
    PHONE = "phone"
    VISIT = "visit"
    LETTER = "letter"
    WEB = "web"


def channel_of(source: str) -> Channel:
    """A ticket's channel from how its first message came: the web form, else mail."""
    return Channel.WEB if source == "web" else Channel.EMAIL


class Happened(StrEnum):
    """What moves a ticket through ``core.lifecycle.TRANSITIONS``."""

    MEMBER_REPLY = "member_reply"
    STAFF_REPLY = "staff_reply"
    STAFF_ACTION = "staff_action"
    SET_OPEN = "set_open"
    SET_PENDING = "set_pending"
    RESOLVE = "resolve"
    CLOSE = "close"


class InboundState(StrEnum):
    """A spool row: waiting, filed, or kept in the quarantine."""

    PENDING = "pending"
    DONE = "done"
    QUARANTINED = "quarantined"


class OutboxState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    HELD = "held"


class QuarantineKind(StrEnum):
    UNPARSEABLE = "unparseable"
    ERROR = "error"
    BOUNCE = "bounce"
    DROPPED = "dropped"
    OVERSIZE = "oversize"


class MessageKind(StrEnum):
    """Who wrote a message on a ticket (``in``), or what maild sent (``out``, the outbox kind)."""

    MEMBER = "member"
    THIRD_PARTY = "third_party"
    AUTO_REPLY = "auto_reply"
    STAFF = "staff"  # in: a proven staff answer; out: its relayed copy to the member
    NOTE = "note"
    BOUNCE = "bounce"
    ACK = "ack"
    NOTIFICATION = "notification"
    RESOLVED = "resolved"
    REMINDER = "reminder"
    DIGEST = "digest"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class EventKind(StrEnum):
    """The audit trail's entries (``events.kind``)."""

    CREATED = "created"
    MESSAGE = "message"
    ASSIGNED = "assigned"
    UNASSIGNED = "unassigned"
    STATUS = "status"
    PRIORITY = "priority"
    CATEGORY = "category"
    CHANNEL = "channel"  # #channel on a ticket that exists
    QUEUE = "queue"
    CONFIDENTIAL = "confidential"
    CC_ADDED = "cc_added"
    CC_REMOVED = "cc_removed"
    NOTE = "note"
    ACK_SKIPPED = "ack_skipped"
    ANSWER_SENT = "answer_sent"  # a rule's canned answer went in place of the acknowledgement
    ANSWER_MISSING = "answer_missing"  # a rule named an answer the queue's language lacks
    RELAYED = "relayed"
    ATTACHMENTS_NOT_RELAYED = "attachments_not_relayed"  # a staff answer's files over [outbound] attach_max_bytes
    NOTHING_RELAYED = "nothing_relayed"
    COMMANDS_REJECTED = "commands_rejected"
    STAFF_UNPROVEN = "staff_unproven"
    MESSAGE_ID_COLLISION = "message_id_collision"
    DUPLICATE_RECEIVED = "duplicate_received"
    MAIL_VALUES_CLEANED = "mail_values_cleaned"
    OUTGOING_VALUES_LEFT_OUT = "outgoing_values_left_out"
    BOUNCE = "bounce"
    REQUESTER_UNDELIVERABLE = "requester_undeliverable"
    RESOLVED_NOTICE_SKIPPED = "resolved_notice_skipped"
    REMINDED_STAFF = "reminded_staff"
    REMINDED_MEMBER = "reminded_member"
    REMINDER_SKIPPED = "reminder_skipped"
    ESCALATED = "escalated"
    DELIVERY_FAILED = "delivery_failed"
    MEMBER_LINKED = "member_linked"  # the ticket's member in the register (docs/coming.md#member-register)
    MEMBER_CONFLICT = "member_conflict"  # the mail named another member's number
    MEMBER_LOOKUP_FAILED = "member_lookup_failed"  # the lookup command failed: filed unlinked


class Outcome(StrEnum):
    """What became of a spooled message (the first part of ``Pipeline.process``'s answer)."""

    NEW = "new"
    FOLLOW_UP = "follow_up"
    BOUNCE = "bounce"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    SKIPPED = "skipped"
