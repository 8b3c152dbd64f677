"""``retention: {closed_after_days: N}`` in rules.yaml: at the top level or in a queue (the
queue's wins), each problem reported at its line; `maild check` warns when none is set."""

from __future__ import annotations

import pytest

from maild.privacy.retention import warnings
from maild.rules import RulesError, parse_rules
from maild.rules.model import Retention

QUEUES = """\
queues:
  jasenasiat:
    name: Jäsenasiat
    address: jasenpalvelu@liitto.fi
    default: true
  oikeusapu:
    name: Oikeusapu
    address: oikeusapu@liitto.fi
    confidential: true
    retention: {closed_after_days: 3650}
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.yaml")
    return caught.value.errors


def test_the_queue_overrides_the_top_level() -> None:
    rules = parse_rules(QUEUES + "retention: {closed_after_days: 730}\n", "rules.yaml")
    assert rules.retention == Retention(730)
    assert rules.retention_for("oikeusapu") == Retention(3650)
    assert rules.retention_for("jasenasiat") == Retention(730)
    assert rules.retention_for("poistettu-jono") == Retention(730)  # a queue no longer in the rules
    assert warnings(rules) == []


def test_without_retention_check_warns_per_queue_or_once() -> None:
    only_queue = parse_rules(QUEUES, "rules.yaml")
    assert only_queue.retention_for("jasenasiat") is None
    assert warnings(only_queue) == ["rules.yaml: queue 'jasenasiat' has no retention and there is none at the top "
                                    "level: its closed tickets are kept for ever"]
    none = parse_rules(QUEUES.replace("    retention: {closed_after_days: 3650}\n", ""), "rules.yaml")
    (warning,) = warnings(none)
    assert warning.startswith("rules.yaml: no retention is set")


@pytest.mark.parametrize(("text", "expected"), [
    ("retention: {closed_after_days: 0}\n",
     "rules.yaml:11: retention: closed_after_days: expected a whole number of days, at least 1, got 0"),
    ("retention: {closed_after_days: 2y}\n",
     "rules.yaml:11: retention: closed_after_days: expected a whole number of days, at least 1, got '2y'"),
    ("retention: 730\n", "rules.yaml:11: retention: expected a mapping, got 730"),
    ("retention: {closed_after: 730}\n", "rules.yaml:11: retention: unknown key 'closed_after'"),
    ("retention: {}\n", "rules.yaml:11: retention: missing 'closed_after_days'"),
])
def test_bad_retention_is_reported_at_its_line(text: str, expected: str) -> None:
    error = errors_of(QUEUES + text)[0]
    assert error.startswith(expected), error


def test_a_queues_bad_retention_names_the_queue() -> None:
    (error,) = errors_of(QUEUES.replace("3650", "-1"))
    assert error.startswith("rules.yaml:10: queue 'oikeusapu': retention: closed_after_days: expected a whole number")
