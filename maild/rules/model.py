"""The typed, frozen form of ``rules.yaml`` and of what the rules decide.

The loader builds these; the engine reads them. Conditions evaluate themselves
against a :class:`~maild.rules.text.FactsView` whose fields are already
normalised, and every pattern in them was normalised the same way at load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from maild.core.members import Member
    from maild.rules.text import FactsView

PRIORITIES = ("low", "normal", "high", "urgent")
LANGUAGES = ("fi", "sv", "en")
ASSIGN_STRATEGIES = ("round-robin", "least-loaded")
DurationUnit = Literal["m", "h", "d"]


# --- queues and time ---------------------------------------------------------------


@dataclass(frozen=True)
class Queue:
    id: str
    name: str
    address: str  # lower-case, never plus-addressed
    staff: tuple[str, ...]
    leads: tuple[str, ...]
    language: str  # fi | sv | en
    default: bool
    confidential: bool
    retention: Retention | None = None  # this queue's own; else the rules' (``RuleSet.retention_for``)


class BusinessDuration(timedelta):
    """An SLA target such as ``4h`` or ``1d``, in business time.

    It is a ``timedelta`` of business time (``1d`` is one business day, as long as
    ``business_hours`` makes it) and keeps ``amount`` and ``unit``, because a
    scheduler must count ``1d`` as "the next business day", not as 8 hours that
    may straddle a weekend differently.
    """

    __slots__ = ("amount", "unit")
    amount: int
    unit: DurationUnit

    def __new__(cls, amount: int, unit: DurationUnit, business_day: timedelta) -> BusinessDuration:
        length = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": business_day}[unit]
        self = super().__new__(cls, seconds=(length * amount).total_seconds())
        self.amount = amount
        self.unit = unit
        return self

    @property
    def raw(self) -> str:
        """As written in rules.yaml, e.g. ``"1d"``."""
        return f"{self.amount}{self.unit}"

    def __repr__(self) -> str:
        return f"BusinessDuration({self.raw!r})"


@dataclass(frozen=True)
class BusinessHours:
    days: tuple[int, ...] = (0, 1, 2, 3, 4)  # datetime.weekday(): 0 = Monday
    start: time = time(8, 0)
    end: time = time(16, 0)
    holidays: str | None = "FI"  # country code for the ``holidays`` package; None = no holidays

    @property
    def day_length(self) -> timedelta:
        return datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)


@dataclass(frozen=True)
class Lifecycle:
    """Calendar days; the defaults are the contract's."""

    remind_member_after_days: int = 5
    resolve_pending_after_days: int = 14
    close_after_days: int = 7


@dataclass(frozen=True)
class Retention:
    """How long erasable data is kept (docs/coming.md#reports-and-privacy): a ticket closed more than
    ``closed_after_days`` calendar days ago is erased, its skeleton kept."""

    closed_after_days: int


# --- conditions --------------------------------------------------------------------


class Condition(Protocol):
    def matches(self, view: FactsView) -> bool: ...


# Field conditions look at a FactsView key: from, to, subject, body, header:<name> or
# member:<field> (a register field; nothing when the sender is not a member).
# A field may have several values (``to``, a repeated header): any one may match.
# One class per operator keeps each check to a single call: decide() runs hundreds.


@dataclass(frozen=True)
class FieldEquals:
    key: str
    values: frozenset[str]

    def matches(self, view: FactsView) -> bool:
        for text in view[self.key]:
            if text in self.values:
                return True
        return False


@dataclass(frozen=True)
class FieldContains:
    key: str
    needles: tuple[str, ...]

    def matches(self, view: FactsView) -> bool:
        for text in view[self.key]:
            for needle in self.needles:
                if needle in text:
                    return True
        return False


@dataclass(frozen=True)
class PrefilteredRegex:
    """A regex and the literals of which each of its matches contains one.

    Finding a literal (``str.find``, ``in``) is much faster than running the regex,
    and most rules do not match most mail, so the regex only runs where it can
    succeed. When every match *starts* with one of the literals (``anchored``, as
    in ``\\blasku\\w*``), the regex is only tried at their occurrences; otherwise
    it searches the text if one of them occurs. The literals are casefolded, like
    the text; see ``maild.rules.text.normalise`` for why that is exact.
    """

    regex: re.Pattern[str]
    required: tuple[str, ...]  # empty: nothing known, always search
    anchored: bool  # every match starts with one of `required`

    def search(self, text: str) -> bool:
        if self.anchored:
            match = self.regex.match
            for literal in self.required:
                at = text.find(literal)
                while at != -1:
                    if match(text, at):  # \b and look-behinds still see the text before `at`
                        return True
                    at = text.find(literal, at + 1)
            return False
        for literal in self.required:
            if literal in text:
                break
        else:
            if self.required:
                return False
        return self.regex.search(text) is not None


@dataclass(frozen=True)
class FieldRegex:
    key: str
    patterns: tuple[PrefilteredRegex, ...]

    def matches(self, view: FactsView) -> bool:
        for text in view[self.key]:
            for pattern in self.patterns:
                if pattern.search(text):
                    return True
        return False


@dataclass(frozen=True)
class HasAttachment:
    expected: bool

    def matches(self, view: FactsView) -> bool:
        return view.facts.has_attachment == self.expected


@dataclass(frozen=True)
class IsMember:
    """``member: true`` (the sender is a known member) or ``member: false`` (is not)."""

    expected: bool

    def matches(self, view: FactsView) -> bool:
        return (view.facts.member is not None) == self.expected


@dataclass(frozen=True)
class AllOf:
    """Every part matches; ``AllOf(())`` always matches (a rule without ``if``)."""

    parts: tuple[Condition, ...]

    def matches(self, view: FactsView) -> bool:
        for part in self.parts:
            if not part.matches(view):
                return False
        return True


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]

    def matches(self, view: FactsView) -> bool:
        for part in self.parts:
            if part.matches(view):
                return True
        return False


@dataclass(frozen=True)
class Not:
    part: Condition

    def matches(self, view: FactsView) -> bool:
        return not self.part.matches(view)


ALWAYS = AllOf(())


# --- rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class Actions:
    """What one rule sets; ``None`` (or an empty tuple) means "not set by this rule"."""

    queue: str | None = None
    priority: str | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    assign: str | None = None
    ack: str | Literal[False] | None = None
    notify: tuple[str, ...] = ()
    suggest: tuple[str, ...] = ()  # canned answers named in the staff notification
    answer: str | None = None  # a canned answer sent at once, in place of the acknowledgement
    confidential: bool = False
    drop: bool = False
    stop: bool = False

    def as_mapping(self) -> Mapping[str, object]:
        """Only the actions this rule sets, in ``rules.yaml`` vocabulary."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return MappingProxyType({name: value for name, value in values.items() if _is_set(name, value)})


def _is_set(name: str, value: object) -> bool:
    if name == "ack":
        return value is not None  # False is a choice: no acknowledgement
    return value is not None and value != () and value is not False


@dataclass(frozen=True)
class Rule:
    name: str
    index: int  # position in RuleSet.rules, from 0
    line: int  # where it starts in rules.yaml
    condition: Condition
    actions: Actions
    hit: RuleHit = field(init=False, repr=False, compare=False)  # what decide() records when it matches

    def __post_init__(self) -> None:
        object.__setattr__(self, "hit", RuleHit(self.name, self.index, self.actions.as_mapping()))


@dataclass(frozen=True)
class RuleHit:
    name: str
    index: int
    values: Mapping[str, object]  # the actions this rule set

    def to_json(self) -> dict[str, object]:
        actions = {key: list(value) if isinstance(value, tuple) else value for key, value in self.values.items()}
        return {"name": self.name, "index": self.index, "actions": actions}


@dataclass(frozen=True)
class RuleSet:
    queues: Mapping[str, Queue]
    sla: Mapping[str, BusinessDuration]  # priority -> first-response target; a priority may have none
    business_hours: BusinessHours
    lifecycle: Lifecycle
    rules: tuple[Rule, ...]
    path: str
    retention: Retention | None = None  # the top level's; a queue's own overrides it
    _by_address: Mapping[str, Queue] = field(init=False, repr=False, compare=False)
    _addresses: frozenset[str] = field(init=False, repr=False, compare=False)
    _all_staff: frozenset[str] = field(init=False, repr=False, compare=False)
    uses_member: bool = field(init=False, repr=False, compare=False)  # a rule reads the member register

    def __post_init__(self) -> None:
        object.__setattr__(self, "uses_member", any(_reads_member(rule.condition) for rule in self.rules))
        by_address = {queue.address: queue for queue in self.queues.values()}
        object.__setattr__(self, "_by_address", MappingProxyType(by_address))
        # asked several times for every message: computed once per rules file
        object.__setattr__(self, "_addresses", frozenset(by_address))
        object.__setattr__(self, "_all_staff", frozenset(m for queue in self.queues.values() for m in queue.staff))

    def default_queue(self) -> Queue:
        return next(queue for queue in self.queues.values() if queue.default)

    def queue_for_address(self, addr: str) -> Queue | None:
        """The queue at ``addr``, ignoring case and a ``+TOKEN`` in the local part."""
        local, at, domain = addr.strip().lower().rpartition("@")
        if not at:
            return None
        return self._by_address.get(f"{local.split('+', 1)[0]}@{domain}")

    def all_staff(self) -> frozenset[str]:
        """Every staff address of every queue."""
        return self._all_staff

    def addresses(self) -> frozenset[str]:
        return self._addresses

    def retention_for(self, queue_id: str) -> Retention | None:
        """The queue's retention, else the top level's (also for a queue no longer in the rules)."""
        queue = self.queues.get(queue_id)
        return queue.retention if queue is not None and queue.retention is not None else self.retention


def _reads_member(condition: Condition) -> bool:
    """Whether a condition looks at the member register (``member:``), anywhere inside it."""
    if isinstance(condition, IsMember):
        return True
    if isinstance(condition, (FieldEquals, FieldContains, FieldRegex)):
        return condition.key.startswith("member:")
    if isinstance(condition, (AllOf, AnyOf)):
        return any(_reads_member(part) for part in condition.parts)
    if isinstance(condition, Not):
        return _reads_member(condition.part)
    return False


# --- input and output of decide() --------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What rules can look at; all text already decoded."""

    from_addr: str
    recipients: tuple[str, ...]  # To, Cc, envelope, Delivered-To, in that order; lower-case
    subject: str
    body: str
    headers: Mapping[str, tuple[str, ...]]  # lower-case header names
    has_attachment: bool
    channel: str = "email"  # email | phone | visit | letter | web: how the request came
    member: Member | None = None  # the register's member the mail is from (docs/coming.md#member-register)


@dataclass(frozen=True)
class Decision:
    queue: str  # queue id
    other_queues: tuple[str, ...]  # addresses of the other queues the mail was sent to
    priority: str
    category: str | None
    tags: tuple[str, ...]
    assign: str | None  # staff address, "round-robin", "least-loaded", or None
    ack: str | bool | None  # template name; False = no ack; None = the default ack
    notify: tuple[str, ...]
    confidential: bool
    drop: bool
    hits: tuple[RuleHit, ...]
    suggest: tuple[str, ...] = ()  # canned answers to list in the staff notification
    answer: str | None = None  # canned answer sent at once in place of the acknowledgement

    def to_json(self) -> dict[str, object]:
        """The rules' part of ``maild rules test --json``; the CLI adds classification and ack_reason."""
        return {
            "queue": self.queue,
            "other_queues": list(self.other_queues),
            "priority": self.priority,
            "category": self.category,
            "tags": list(self.tags),
            "assignee": self.assign,
            "ack": self.ack,
            "notify": list(self.notify),
            "suggest": list(self.suggest),
            "answer": self.answer,
            "confidential": self.confidential,
            "drop": self.drop,
            "matched_rules": [hit.to_json() for hit in self.hits],
        }
