"""Status changes and the member's resolved notice (docs/mail.md#machines, 4.4, 4.6). No database."""

from __future__ import annotations

import pytest

from maild.core.kinds import Happened
from maild.core.plan import Policy, status_change

from tests.unit._plan import NOW, POLICY, RULESET, changes, events, facts, mails

# (status, what happened) -> new status (unchanged: no effects)
STEPS = [
    ("new", Happened.STAFF_REPLY, "pending"),
    ("open", Happened.STAFF_REPLY, "pending"),
    ("pending", Happened.MEMBER_REPLY, "open"),
    ("resolved", Happened.MEMBER_REPLY, "open"),
    ("new", Happened.MEMBER_REPLY, "new"),
    ("open", Happened.RESOLVE, "resolved"),
    ("resolved", Happened.CLOSE, "closed"),
    ("closed", Happened.SET_OPEN, "closed"),
]


@pytest.mark.parametrize(("status", "happened", "after"), STEPS)
def test_status_change(status, happened, after) -> None:  # type: ignore[no-untyped-def]
    moved, effects = status_change(facts(status=status), happened, "maija@liitto.fi", POLICY, NOW)
    assert moved.state.status == after
    if after == status:
        assert effects == ()
    else:
        assert changes(effects)["status"] == after and changes(effects)["status_changed_at"] == NOW
        assert events(effects)[0] == "status"


# (facts of the ticket) -> the resolved notice, or why not
RESOLVED = [
    ({}, ["status"], [("resolved", "resolved")]),
    ({"requester_undeliverable": True}, ["status", "resolved_notice_skipped"], []),
    ({"opened_by_machine": "auto_reply"}, ["status", "resolved_notice_skipped"], []),
    ({"requester": "noreply@example.fi"}, ["status", "resolved_notice_skipped"], []),
    ({"queue": "gone"}, ["status", "resolved_notice_skipped"], []),
]


@pytest.mark.parametrize(("fields", "kinds", "queued"), RESOLVED)
def test_resolving_tells_the_member_unless(fields, kinds, queued) -> None:  # type: ignore[no-untyped-def]
    _, effects = status_change(facts(**fields), Happened.RESOLVE, "maija@liitto.fi", POLICY, NOW)
    assert events(effects) == kinds
    assert mails(effects) == queued
    assert changes(effects)["resolved_at"] == NOW


def test_closing_records_when() -> None:
    _, effects = status_change(facts(status="resolved"), Happened.CLOSE, "maild", Policy(RULESET, "JP", 3), NOW)
    assert changes(effects)["closed_at"] == NOW and mails(effects) == []
