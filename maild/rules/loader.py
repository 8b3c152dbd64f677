"""Read ``rules.yaml`` (docs/rules.md) into a :class:`RuleSet`, or say everything wrong with it.

Every problem is reported, each as ``path:LINE: message``, so that one run of
``maild check`` shows them all. Parsing happens in two steps: a YAML loader that
remembers the line of every mapping key and list item (and refuses duplicate
keys, which PyYAML would silently let win), then a builder that walks that tree,
checks it, and builds the frozen model. A value that fails a check is replaced by
a harmless default so the walk can go on and find the next problem; the model is
only handed out when there were none.

Conditions, as written in ``if:``
    ``from``, ``to``, ``subject``, ``body``: a bare string (or list of strings)
    means ``equals`` for the address fields ``from`` and ``to`` (``{to: laskutus@liitto.fi}``
    is "sent to exactly that address") and ``contains`` for the text fields ``subject``,
    ``body`` and header values (``{subject: lasku}`` is "the subject mentions lasku").
    The explicit form ``{equals | contains | regex: PATTERN or [PATTERN, ...]}`` takes
    exactly one operator; a list matches when any of its patterns does.
    ``header: {Name: pattern, ...}``: several headers must all match; a missing header
    never matches. ``has_attachment: true|false``. ``all: [...]``, ``any: [...]``,
    ``not: {...}`` nest freely; a mapping with several keys means all of them. A rule
    without ``if`` matches every message.
    ``member: true|false``: the sender is (not) a known member of the register (docs/coming.md#member-register).
    ``member: {FIELD: pattern, ...}``: register fields (names case-insensitive); a bare
    pattern means ``equals``; every field named must match; a non-member matches none.

Actions, as written in ``then:``
    As in the contract. ``stop: true`` may also stand beside ``then:``, as in the
    contract's example. ``confidential``, ``drop`` and ``stop`` only take ``true``,
    since a later rule cannot switch them off again; ``ack`` takes a template name or
    ``false``. A rule that puts mail in a confidential queue may only ``notify`` that
    queue's staff and leads.

Text comparison
    Patterns and message fields are both normalised (:func:`maild.rules.text.normalise`):
    casefolded, NFC, whitespace runs collapsed to one space. Regexes are compiled once,
    here, with IGNORECASE|UNICODE, and run on that normalised text (so ``\\n`` never
    occurs in it; ``\\s`` still works). A regex pattern is NFC-normalised but not
    casefolded, which would turn ``\\S`` into ``\\s``.

Regexes that could stall the daemon are refused (Python's ``re`` has no timeout):
    a repeated group that itself contains a variable repeat (``(a+)+``, ``(.*)*``,
    ``(\\w+\\s?)*$``, exponential), and unbounded wildcards (``.*``, ``[^x]+``, ``\\S*``)
    at the start of a pattern or more than one per pattern (polynomial: ``a.*e.*x`` takes
    0.1 s on a 3 kB body). Overlapping alternatives under a repeat (``(a|ab)*``) are
    not detected; the 100 kB input bound of :mod:`maild.rules.text` limits the damage.
    For speed, each regex also gets the literals its matches must contain
    (:class:`~maild.rules.model.PrefilteredRegex`).

Assignees: a rule that sets ``queue`` may only ``assign`` that queue's staff. A rule
that sets no queue may assign anyone who is staff of some queue, since which queue
the ticket ends up in is only known per message; :func:`maild.rules.engine.decide`
drops an assignee who is not staff of the final queue.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import time, timedelta
from pathlib import Path
from re import _constants as sre  # type: ignore[attr-defined]  # stable since 3.11
from re import _parser as sre_parse  # type: ignore[attr-defined]
from types import MappingProxyType
from typing import NoReturn, TypeVar, cast

import holidays
import yaml

from maild.rules.model import (
    ALWAYS,
    ASSIGN_STRATEGIES,
    LANGUAGES,
    PRIORITIES,
    Actions,
    AllOf,
    AnyOf,
    BusinessDuration,
    BusinessHours,
    Condition,
    FieldContains,
    FieldEquals,
    FieldRegex,
    HasAttachment,
    IsMember,
    Lifecycle,
    Not,
    PrefilteredRegex,
    Queue,
    Retention,
    Rule,
    RuleSet,
)
from maild.core.members import field_key
from maild.rules.text import normalise

T = TypeVar("T")


class RulesError(Exception):
    """``rules.yaml`` is unusable; ``errors`` lists every problem as ``path:LINE: message``."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rules file; raise :class:`RulesError` listing all its problems."""
    return parse_rules(read_rules_text(path), str(path))


def read_rules_text(path: str | Path) -> str:
    """A rules file's text; RulesError when it cannot be read or is not UTF-8."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RulesError([f"{path}:1: cannot read the rules file: {exc.strerror}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RulesError([f"{path}:{line}: not UTF-8 text"]) from None
    return text


def parse_rules(text: str, path: str) -> RuleSet:
    """Validate ``rules.yaml`` text; ``path`` is only used in error messages and ``RuleSet.path``."""
    errors = _Errors(path)
    root = _read_yaml(text, errors)
    ruleset = _Builder(errors).ruleset(root, path)
    errors.raise_if_any()
    return ruleset


class _Errors:
    def __init__(self, path: str) -> None:
        self.path = path
        self.found: list[tuple[int, str]] = []

    def add(self, line: int, message: str) -> None:
        self.found.append((line, message))

    def fail(self, line: int, message: str) -> NoReturn:
        """Report a problem that stops the reading: nothing after it can be checked."""
        self.add(line, message)
        self.raise_if_any()
        raise AssertionError("unreachable")

    def raise_if_any(self) -> None:
        if self.found:
            ordered = sorted(self.found, key=lambda found: found[0])
            raise RulesError([f"{self.path}:{line}: {message}" for line, message in ordered])


# --- YAML with line numbers ----------------------------------------------------------


class _Map(dict[object, object]):
    """A YAML mapping that knows its own line and the line of each key."""

    line: int
    lines: dict[object, int]


class _Seq(list[object]):
    """A YAML list that knows its own line and the line of each item."""

    line: int
    lines: list[int]


_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses ~10x faster


class _Loader(_SafeLoader):  # type: ignore[valid-type,misc]
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, object]] = []


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    explicit = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)  # entries merged in with `<<` come first and may be overridden
    first_explicit = len(node.value) - explicit
    result = _Map()
    result.line, result.lines = _line(node), {}
    explicit_keys: set[object] = set()
    for position, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (_Map, _Seq)):
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value", key_node.start_mark)
        if position >= first_explicit:
            if key in explicit_keys:
                loader.duplicates.append((_line(key_node), key))
            explicit_keys.add(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = _line(key_node)
    return result


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> _Seq:
    result = _Seq(loader.construct_object(item, deep=True) for item in node.value)
    result.line, result.lines = _line(node), [_line(item) for item in node.value]
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def _read_yaml(text: str, errors: _Errors) -> _Map:
    """The document, which must be a mapping; syntax errors end the reading here."""
    try:
        loader = _Loader(text)
        root = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        context = f" ({exc.context})" if exc.context else ""
        errors.fail(mark.line + 1 if mark else 1, f"invalid YAML: {exc.problem}{context}")
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        errors.fail(line, f"invalid YAML: {exc.reason} (character #x{exc.character:04x})")
    if not isinstance(root, _Map):
        errors.fail(getattr(root, "line", 1), f"rules file: expected a mapping, got {_describe(root)}")
    for line, key in loader.duplicates:
        errors.add(line, f"duplicate key {key!r}")
    return root


# --- value checks: each returns the clean value or raises _Invalid -----------------------


class _Invalid(Exception):
    """A value is wrong; the message says how."""


_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+")
_QUEUE_ID = re.compile(r"[\w-]+")
_TEMPLATE_NAME = re.compile(r"[\w-]+")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 field name: printable ASCII but ':'
_DURATION = re.compile(r"([1-9][0-9]*)\s*([mhd])")
_HOURS = re.compile(r"([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _describe(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "nothing"}[value]
    if isinstance(value, _Map):
        return "a mapping"
    if isinstance(value, _Seq):
        return "a list" if value else "an empty list"
    return repr(value)


def _hint(word: object, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"expected text, got {_describe(value)}")
    return value.strip()


def _texts(value: object) -> tuple[str, ...]:
    """A string or a non-empty list of strings, without repeats."""
    items = value if isinstance(value, _Seq) else [value]
    if not items:
        raise _Invalid("expected text or a list of texts, got an empty list")
    return tuple(dict.fromkeys(_text(item) for item in items))


def _address(value: object) -> str:
    address = _text(value).lower()
    if not _ADDRESS.fullmatch(address):
        raise _Invalid(f"{address!r} is not an email address")
    return address


def _addresses(value: object) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_address(item) for item in (value if isinstance(value, _Seq) else [value])))


def _queue_address(value: object) -> str:
    address = _address(value)
    if "+" in address.partition("@")[0]:
        raise _Invalid(f"{address!r}: '+' is reserved for reply addresses (queue+TOKEN@...)")
    return address


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_describe(value)}")
    return value


def _true(value: object) -> bool:
    if value is not True:
        raise _Invalid(f"can only be true (leave it out otherwise), got {_describe(value)}")
    return True


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid(f"expected a whole number of days, at least 1, got {_describe(value)}")
    return value


def _one_of(choices: Sequence[str]) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in choices:
            raise _Invalid(f"expected one of {', '.join(choices)}, got {_describe(value)}{_hint(value, choices)}")
        return str(value)

    return check


def _duration(business_day: timedelta) -> Callable[[object], BusinessDuration]:
    def check(value: object) -> BusinessDuration:
        found = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
        if not found:
            raise _Invalid(f"expected a duration such as 30m, 4h or 1d, got {_describe(value)}")
        return BusinessDuration(int(found[1]), found[2], business_day)  # type: ignore[arg-type]

    return check


def _hours(value: object) -> tuple[time, time]:
    found = _HOURS.fullmatch(value.strip()) if isinstance(value, str) else None
    if not found:
        raise _Invalid(f'expected "HH:MM-HH:MM", got {_describe(value)}')
    start, end = time(int(found[1]), int(found[2])), time(int(found[3]), int(found[4]))
    if start >= end:
        raise _Invalid(f"{value!r} ends before it starts")
    return start, end


def _weekdays(value: object) -> tuple[int, ...]:
    if not isinstance(value, _Seq) or not value:
        raise _Invalid(f"expected a list such as [mon, tue, wed, thu, fri], got {_describe(value)}")
    days = [_one_of(_WEEKDAYS)(item) for item in value]
    if len(set(days)) != len(days):
        raise _Invalid("a day is listed twice")
    return tuple(sorted(_WEEKDAYS.index(day) for day in days))


def _holiday_country(value: object) -> str | None:
    """A country code known to the ``holidays`` package, or false for no holidays."""
    if value is False:
        return None
    code = _text(value).upper()
    try:
        holidays.country_holidays(code)
    except NotImplementedError:
        raise _Invalid(f"{value!r} is not a country code with known public holidays (e.g. FI, SE)") from None
    return code


def _template_name(value: object) -> str | bool:
    if value is False:
        return False
    if not isinstance(value, str) or not _TEMPLATE_NAME.fullmatch(value):
        raise _Invalid(f"expected a template name or false, got {_describe(value)}")
    return value


def _answer_name(value: object) -> str:
    """A canned answer's name (``templates/LANG/answers/NAME.txt``); whether it exists is
    checked with the templates (``maild check``)."""
    if not isinstance(value, str) or not _TEMPLATE_NAME.fullmatch(value):
        raise _Invalid(f"expected the name of a canned answer, got {_describe(value)}")
    return value


def _answer_names(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(dict.fromkeys(_answer_name(item) for item in items))


def _queue_id(queues: dict[str, Queue]) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in queues:
            raise _Invalid(f"no queue {_describe(value)}{_hint(value, queues)}; queues: {', '.join(queues)}")
        return str(value)

    return check


def _assignee(target: Queue | None, queues: dict[str, Queue]) -> Callable[[object], str]:
    def check(value: object) -> str:
        if isinstance(value, str) and value.strip().lower() in ASSIGN_STRATEGIES:
            if target is not None and not target.staff:
                raise _Invalid(f"queue {target.id!r} has no staff")
            return value.strip().lower()
        address = _address(value)
        if target is not None and address not in target.staff:
            raise _Invalid(f"{address} is not staff of queue {target.id!r}")
        if target is None and not any(address in queue.staff for queue in queues.values()):
            raise _Invalid(f"{address} is not staff of any queue (or use round-robin, least-loaded)")
        return address

    return check


# --- regex safety --------------------------------------------------------------------

_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
_BACKTRACKING_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT)
_NEGATED_CATEGORIES = (sre.CATEGORY_NOT_DIGIT, sre.CATEGORY_NOT_SPACE, sre.CATEGORY_NOT_WORD)
_ZERO_WIDTH = (sre.AT, sre.ASSERT, sre.ASSERT_NOT)


def _compile(pattern: object) -> PrefilteredRegex:
    source = unicodedata.normalize("NFC", _text(pattern))
    try:
        compiled = re.compile(source, re.IGNORECASE | re.UNICODE)
    except re.error as exc:
        raise _Invalid(f"bad regex {source!r}: {exc.msg} at position {exc.pos}") from None
    parsed = sre_parse.parse(source, re.IGNORECASE | re.UNICODE)
    problem = _regex_risk(parsed)
    if problem:
        raise _Invalid(f"regex {source!r} {problem}")
    starts = _leading_literals(parsed)
    if starts:
        return PrefilteredRegex(compiled, tuple(sorted(starts)), anchored=True)
    return PrefilteredRegex(compiled, tuple(sorted(_required_literals(parsed) or ())), anchored=False)


def _regex_risk(parsed: sre_parse.SubPattern) -> str | None:
    if _nested_repeat(parsed, under_unbounded=False):
        return "can backtrack catastrophically: a repeated group holds another repeat, as in (a+)+"
    if _leading_wildcard(parsed):
        return "starts with an unbounded wildcard such as .* (slow, and useless: rules search anywhere)"
    if sum(1 for _ in _wildcards(parsed)) > 1:
        return "has more than one unbounded wildcard (.* .+ [^x]* \\S+), slow on long mail; use {0,80} or a list of regexes"
    return None


def _children(op: object, arg: object) -> list[sre_parse.SubPattern]:
    """The sub-patterns directly inside one parsed item."""
    if op in _REPEATS:
        return [arg[2]]  # type: ignore[index]
    if op is sre.SUBPATTERN:
        return [arg[3]]  # type: ignore[index]
    if op is sre.BRANCH:
        return list(arg[1])  # type: ignore[index]
    if op is sre.ATOMIC_GROUP:
        return [arg]  # type: ignore[list-item]
    if op in (sre.ASSERT, sre.ASSERT_NOT):
        return [arg[1]]  # type: ignore[index]
    if op is sre.GROUPREF_EXISTS:
        return [branch for branch in arg[1:] if branch is not None]  # type: ignore[index]
    return []


def _nested_repeat(items: sre_parse.SubPattern, under_unbounded: bool) -> bool:
    """A variable-length repeat inside an unbounded, backtracking one: exponential."""
    for op, arg in items:
        if op in (sre.POSSESSIVE_REPEAT, sre.ATOMIC_GROUP):
            continue  # never backtracked into
        if op in _BACKTRACKING_REPEATS:
            low, high, body = arg
            if under_unbounded and high > 1 and low != high:
                return True
            if _nested_repeat(body, under_unbounded or high == sre.MAXREPEAT):
                return True
        elif any(_nested_repeat(child, under_unbounded) for child in _children(op, arg)):
            return True
    return False


def _is_wildcard(op: object, arg: object) -> bool:
    """An unbounded repeat of one item that matches nearly anything: ``.*``, ``[^,]+``, ``\\S*``."""
    if op not in _REPEATS or arg[1] != sre.MAXREPEAT or len(arg[2]) != 1:  # type: ignore[index]
        return False
    inner_op, inner_arg = arg[2][0]  # type: ignore[index]
    if inner_op in (sre.ANY, sre.NOT_LITERAL):
        return True
    return inner_op is sre.IN and any(
        item_op is sre.NEGATE or (item_op is sre.CATEGORY and item_arg in _NEGATED_CATEGORIES)
        for item_op, item_arg in inner_arg
    )


def _wildcards(items: sre_parse.SubPattern) -> Iterator[object]:
    for op, arg in items:
        if _is_wildcard(op, arg):
            yield op
        for child in _children(op, arg):
            yield from _wildcards(child)


def _leading_wildcard(items: sre_parse.SubPattern) -> bool:
    if not len(items):
        return False
    op, arg = items[0]
    if _is_wildcard(op, arg):
        return True
    if op is sre.SUBPATTERN:
        return _leading_wildcard(arg[3])
    if op is sre.BRANCH:
        return any(_leading_wildcard(branch) for branch in arg[1])
    return False


# --- literals a regex needs, for the prefilter ------------------------------------------


def _foldable(code: int) -> bool:
    """A literal whose casefold is the one character its IGNORECASE matches have in casefolded text.

    Checked exhaustively against every code point for U+0000-U+024F; the long s and
    the dotless i are excluded (``re`` matches them to s and i), and so is every
    character that casefolds to several (ß, İ).
    """
    char = chr(code)
    return code < 0x250 and char not in "\u017f\u0131" and len(char.casefold()) == 1


def _required_literals(items: sre_parse.SubPattern) -> frozenset[str] | None:
    """Strings of which every match of ``items`` contains one, or None when there are none.

    Of the candidates in the sequence (literal runs, groups, alternations, repeats
    that happen at least once), the one whose shortest string is longest wins.
    """
    candidates: list[frozenset[str]] = []
    run: list[str] = []
    for op, arg in items:
        if op is sre.LITERAL and _foldable(arg):
            run.append(chr(arg).casefold())
            continue
        if run:
            candidates.append(frozenset(["".join(run)]))
            run = []
        inner = _required_in(op, arg)
        if inner:
            candidates.append(inner)
    if run:
        candidates.append(frozenset(["".join(run)]))
    best = max(candidates, key=lambda strings: min(map(len, strings)), default=None)
    return best if best and min(map(len, best)) >= 2 else None


def _leading_literals(items: sre_parse.SubPattern) -> frozenset[str] | None:
    """Strings of which every match of ``items`` starts with one (after zero-width checks), or None."""
    position = 0
    while position < len(items) and items[position][0] in _ZERO_WIDTH:
        position += 1
    run = ""
    for op, arg in items[position:]:
        if op is not sre.LITERAL or not _foldable(arg):
            break
        run += chr(arg).casefold()
    if run:
        return frozenset([run]) if len(run) >= 2 else None
    if position == len(items):
        return None
    op, arg = items[position]
    if op is sre.SUBPATTERN:
        return _leading_literals(arg[3])
    if op in _REPEATS and arg[0] >= 1:
        return _leading_literals(arg[2])
    if op is sre.BRANCH:
        branches = [_leading_literals(branch) for branch in arg[1]]
        if all(branches):
            return frozenset().union(*branches)  # type: ignore[arg-type]
    return None


def _required_in(op: object, arg: object) -> frozenset[str] | None:
    if op is sre.SUBPATTERN:
        return _required_literals(arg[3])  # type: ignore[index]
    if op is sre.ATOMIC_GROUP:
        return _required_literals(arg)  # type: ignore[arg-type]
    if op in _REPEATS and arg[0] >= 1:  # type: ignore[index]
        return _required_literals(arg[2])  # type: ignore[index]
    if op is sre.BRANCH:
        branches = [_required_literals(branch) for branch in arg[1]]  # type: ignore[index]
        if all(branches):
            return frozenset().union(*branches)  # type: ignore[arg-type]
    return None


# --- the builder ---------------------------------------------------------------------

_TOP_KEYS = ("queues", "sla", "business_hours", "lifecycle", "retention", "rules")
_QUEUE_KEYS = ("name", "address", "staff", "leads", "language", "default", "confidential", "retention")
_RETENTION_KEYS = ("closed_after_days",)
_HOURS_KEYS = ("days", "hours", "holidays")
_LIFECYCLE_KEYS = ("remind_member_after_days", "resolve_pending_after_days", "close_after_days")
_RULE_KEYS = ("name", "if", "then", "stop")
_ACTION_KEYS = (
    "queue", "priority", "category", "tags", "assign", "ack", "notify", "suggest", "answer", "confidential", "drop", "stop",
)
_BARE_MEANS = {"from": "equals", "to": "equals", "subject": "contains", "body": "contains", "channel": "equals"}
_CONDITION_KEYS = ("all", "any", "not", *_BARE_MEANS, "header", "has_attachment", "member")
_OPERATORS = ("equals", "contains", "regex")


class _Builder:
    """Walks the YAML tree, reporting problems to ``errors`` and building the model."""

    def __init__(self, errors: _Errors) -> None:
        self.error = errors.add

    # generic helpers

    def check(self, value: object, line: int, where: str, check: Callable[[object], T], default: T) -> T:
        try:
            return check(value)
        except _Invalid as exc:
            self.error(line, f"{where}: {exc}")
            return default

    def get(self, spec: _Map, key: str, where: str, check: Callable[[object], T], default: T) -> T:
        if key not in spec:
            return default
        return self.check(spec[key], spec.lines[key], f"{where}: {key}", check, default)

    def mapping(self, value: object, line: int, where: str) -> _Map | None:
        if isinstance(value, _Map):
            return value
        self.error(line, f"{where}: expected a mapping, got {_describe(value)}")
        return None

    def keys(
        self, spec: _Map, allowed: Sequence[str], where: str, required: Sequence[str] = (), line: int | None = None
    ) -> None:
        """Unknown keys, each at its line; missing ones at ``line`` (by default where ``spec`` starts)."""
        for key in spec:
            if key not in allowed:
                self.error(spec.lines[key], f"{where}: unknown key {_describe(key)}{_hint(key, allowed)}")
        for key in required:
            if key not in spec:
                self.error(line or spec.line, f"{where}: missing {key!r}")

    # sections

    def ruleset(self, spec: _Map, path: str) -> RuleSet:
        self.keys(spec, _TOP_KEYS, "top level", required=("queues",))
        queues = self.queues(spec)
        hours = self.business_hours(spec)
        return RuleSet(
            queues=MappingProxyType(queues),
            sla=MappingProxyType(self.sla(spec, hours.day_length)),
            business_hours=hours,
            lifecycle=self.lifecycle(spec),
            rules=self.rules(spec, queues),
            path=path,
            retention=self.retention(spec, "retention"),
        )

    def queues(self, root: _Map) -> dict[str, Queue]:
        if "queues" not in root:
            return {}
        line = root.lines["queues"]
        section = self.mapping(root["queues"], line, "queues")
        if not section:
            if section is not None:
                self.error(line, "queues: define at least one queue")
            return {}
        queues: dict[str, Queue] = {}
        for queue_id, node in section.items():
            queue = self.queue(queue_id, node, section.lines[queue_id])
            if queue is None:
                continue
            owner = next((other.id for other in queues.values() if other.address == queue.address), None)
            if owner is not None:
                address_line = cast(_Map, node).lines["address"]
                self.error(address_line, f"queue {queue.id!r}: address {queue.address} is already used by queue {owner!r}")
            queues[queue.id] = queue
        self.one_default(section, line)
        return queues

    def queue(self, queue_id: object, node: object, line: int) -> Queue | None:
        where = f"queue {_describe(queue_id)}"
        if not isinstance(queue_id, str) or not _QUEUE_ID.fullmatch(queue_id):
            self.error(line, f"{where}: a queue id is letters, digits, '-' and '_'")
        spec = self.mapping(node, line, where)
        if spec is None:
            return None
        self.keys(spec, _QUEUE_KEYS, where, required=("name", "address"), line=line)
        name = self.get(spec, "name", where, _text, None)
        address = self.get(spec, "address", where, _queue_address, None)
        if name is None or address is None:
            return None
        return Queue(
            id=str(queue_id),
            name=name,
            address=address,
            staff=self.get(spec, "staff", where, _addresses, ()),
            leads=self.get(spec, "leads", where, _addresses, ()),
            language=self.get(spec, "language", where, _one_of(LANGUAGES), "fi"),
            default=self.get(spec, "default", where, _boolean, False),
            confidential=self.get(spec, "confidential", where, _boolean, False),
            retention=self.retention(spec, f"{where}: retention"),
        )

    def one_default(self, section: _Map, line: int) -> None:
        """Exactly one queue is ``default: true``; counted on the raw YAML so a broken queue still counts."""
        defaults = [
            (queue_id, spec.lines["default"])
            for queue_id, spec in section.items()
            if isinstance(spec, _Map) and spec.get("default") is True
        ]
        if not defaults:
            self.error(line, "queues: no queue has default: true (exactly one must)")
        for queue_id, default_line in defaults[1:]:
            self.error(default_line, f"queue {queue_id!r}: only one queue can be default, and {defaults[0][0]!r} is")

    def business_hours(self, root: _Map) -> BusinessHours:
        default = BusinessHours()
        if "business_hours" not in root:
            return default
        spec = self.mapping(root["business_hours"], root.lines["business_hours"], "business_hours")
        if spec is None:
            return default
        self.keys(spec, _HOURS_KEYS, "business_hours")
        start, end = self.get(spec, "hours", "business_hours", _hours, (default.start, default.end))
        return BusinessHours(
            days=self.get(spec, "days", "business_hours", _weekdays, default.days),
            start=start,
            end=end,
            holidays=self.get(spec, "holidays", "business_hours", _holiday_country, default.holidays),
        )

    def sla(self, root: _Map, business_day: timedelta) -> dict[str, BusinessDuration]:
        if "sla" not in root:
            return {}
        spec = self.mapping(root["sla"], root.lines["sla"], "sla")
        if spec is None:
            return {}
        self.keys(spec, PRIORITIES, "sla")
        targets = {priority: self.get(spec, priority, "sla", _duration(business_day), None) for priority in PRIORITIES}
        return {priority: target for priority, target in targets.items() if target is not None}

    def lifecycle(self, root: _Map) -> Lifecycle:
        if "lifecycle" not in root:
            return Lifecycle()
        spec = self.mapping(root["lifecycle"], root.lines["lifecycle"], "lifecycle")
        if spec is None:
            return Lifecycle()
        self.keys(spec, _LIFECYCLE_KEYS, "lifecycle")
        days = {key: self.get(spec, key, "lifecycle", _positive_int, None) for key in _LIFECYCLE_KEYS}
        return Lifecycle(**{key: value for key, value in days.items() if value is not None})

    def retention(self, parent: _Map, where: str) -> Retention | None:
        """``retention: {closed_after_days: N}``, at the top level or in a queue."""
        if "retention" not in parent:
            return None
        spec = self.mapping(parent["retention"], parent.lines["retention"], where)
        if spec is None:
            return None
        self.keys(spec, _RETENTION_KEYS, where, required=_RETENTION_KEYS, line=parent.lines["retention"])
        days = self.get(spec, "closed_after_days", where, _positive_int, None)
        return Retention(closed_after_days=days) if days is not None else None

    # rules

    def rules(self, root: _Map, queues: dict[str, Queue]) -> tuple[Rule, ...]:
        if "rules" not in root:
            return ()
        items = root["rules"]
        if not isinstance(items, _Seq):
            self.error(root.lines["rules"], f"rules: expected a list of rules, got {_describe(items)}")
            return ()
        rules = tuple(self.rule(item, line, index, queues) for index, (item, line) in enumerate(zip(items, items.lines)))
        self.unique_names(rules)
        return rules

    def unique_names(self, rules: tuple[Rule, ...]) -> None:
        first_line: dict[str, int] = {}
        for rule in rules:
            if rule.name in first_line:
                self.error(rule.line, f"rule {rule.name!r}: another rule has this name (line {first_line[rule.name]})")
            first_line.setdefault(rule.name, rule.line)

    def rule(self, node: object, line: int, index: int, queues: dict[str, Queue]) -> Rule:
        where = f"rule #{index + 1}"
        spec = self.mapping(node, line, where)
        if spec is None:
            return Rule(f"#{index + 1}", index, line, ALWAYS, Actions())
        name = self.get(spec, "name", where, _text, f"#{index + 1}")
        if "name" in spec:
            where = f"rule {name!r}"
        self.keys(spec, _RULE_KEYS, where, required=("name",))
        condition = self.condition(spec["if"], spec.lines["if"], where) if "if" in spec else ALWAYS
        actions = self.actions(spec["then"], spec.lines["then"], where, queues) if "then" in spec else Actions()
        if self.get(spec, "stop", where, _true, False):
            actions = replace(actions, stop=True)
        if actions == Actions() and not spec.get("then"):
            self.error(line, f"{where}: does nothing; give it 'then:' actions or 'stop: true'")
        return Rule(name, index, line, condition, actions)

    def condition(self, node: object, line: int, where: str) -> Condition:
        spec = self.mapping(node, line, f"{where}: condition")
        if spec is None:
            return ALWAYS
        if not spec:
            self.error(line, f"{where}: empty condition")
            return ALWAYS
        parts = tuple(self.condition_part(key, spec[key], spec.lines[key], where) for key in spec)
        return parts[0] if len(parts) == 1 else AllOf(parts)

    def condition_part(self, key: object, value: object, line: int, where: str) -> Condition:
        if key in ("all", "any"):
            return self.combination(str(key), value, line, where)
        if key == "not":
            return Not(self.condition(value, line, f"{where}: not"))
        if key in _BARE_MEANS:
            return self.field(str(key), value, line, f"{where}: {key}", _BARE_MEANS[str(key)])
        if key == "header":
            return self.headers(value, line, where)
        if key == "has_attachment":
            return HasAttachment(self.check(value, line, f"{where}: has_attachment", _boolean, True))
        if key == "member":
            return self.member(value, line, where)
        self.error(line, f"{where}: unknown condition {_describe(key)}{_hint(key, _CONDITION_KEYS)}")
        return ALWAYS

    def combination(self, key: str, value: object, line: int, where: str) -> Condition:
        if not isinstance(value, _Seq) or not value:
            self.error(line, f"{where}: {key}: expected a list of conditions, got {_describe(value)}")
            return ALWAYS
        parts = tuple(self.condition(item, item_line, f"{where}: {key}") for item, item_line in zip(value, value.lines))
        return AllOf(parts) if key == "all" else AnyOf(parts)

    def headers(self, value: object, line: int, where: str) -> Condition:
        spec = self.mapping(value, line, f"{where}: header")
        if not spec:
            if spec is not None:
                self.error(line, f"{where}: header: name at least one header")
            return ALWAYS
        parts: list[Condition] = []
        for name, pattern in spec.items():
            name_line = spec.lines[name]
            if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
                self.error(name_line, f"{where}: header: {_describe(name)} is not a header name")
                continue
            parts.append(self.field(f"header:{name.lower()}", pattern, name_line, f"{where}: header {name}", "contains"))
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def member(self, value: object, line: int, where: str) -> Condition:
        """``member: true|false`` or ``member: {FIELD: pattern, ...}`` (all must match; a bare
        pattern means ``equals``: register values are short codes such as ``ei``)."""
        if isinstance(value, bool):
            return IsMember(value)
        if not isinstance(value, _Map):
            self.error(line, f"{where}: member: expected true, false or register fields such as "
                             f"{{maksettu: ei}}, got {_describe(value)}")
            return ALWAYS
        if not value:
            self.error(line, f"{where}: member: name at least one register field")
            return ALWAYS
        parts: list[Condition] = []
        for name, pattern in value.items():
            name_line = value.lines[name]
            if not isinstance(name, str) or not name.strip():
                self.error(name_line, f"{where}: member: {_describe(name)} is not a field name")
                continue
            parts.append(self.field(f"member:{field_key(name)}", pattern, name_line, f"{where}: member {name}", "equals"))
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def field(self, key: str, value: object, line: int, where: str, bare: str) -> Condition:
        """``PATTERN``, ``[PATTERN, ...]`` (meaning ``bare``) or ``{OPERATOR: PATTERN or [...]}`` on field ``key``."""
        operator, patterns = bare, value
        if isinstance(value, _Map):
            if len(value) != 1:
                self.error(line, f"{where}: give exactly one of {', '.join(_OPERATORS)}; combine with all/any")
                return ALWAYS
            ((operator, patterns),) = value.items()  # type: ignore[assignment]
            line = value.lines[operator]
            if operator not in _OPERATORS:
                self.error(line, f"{where}: unknown operator {_describe(operator)}{_hint(operator, _OPERATORS)}")
                return ALWAYS
        items = list(patterns) if isinstance(patterns, _Seq) else [patterns]
        item_lines = patterns.lines if isinstance(patterns, _Seq) else [line]
        if not items:
            self.error(line, f"{where}: {operator}: the list is empty")
        if operator == "regex":
            regexes = [self.check(item, item_line, where, _compile, None) for item, item_line in zip(items, item_lines)]
            return FieldRegex(key, tuple(regex for regex in regexes if regex is not None))
        texts = tuple(normalise(self.check(item, item_line, where, _text, "?")) for item, item_line in zip(items, item_lines))
        return FieldEquals(key, frozenset(texts)) if operator == "equals" else FieldContains(key, texts)

    def actions(self, node: object, line: int, where: str, queues: dict[str, Queue]) -> Actions:
        where = f"{where}: then"
        spec = self.mapping(node, line, where)
        if spec is None:
            return Actions()
        self.keys(spec, _ACTION_KEYS, where)
        queue_id = self.get(spec, "queue", where, _queue_id(queues), None)
        target = queues.get(queue_id) if queue_id else None
        actions = Actions(
            queue=queue_id,
            priority=self.get(spec, "priority", where, _one_of(PRIORITIES), None),
            category=self.get(spec, "category", where, _text, None),
            tags=self.get(spec, "tags", where, _texts, ()),
            assign=self.get(spec, "assign", where, _assignee(target, queues), None),
            ack=self.get(spec, "ack", where, _template_name, None),
            notify=self.get(spec, "notify", where, _addresses, ()),
            suggest=self.get(spec, "suggest", where, _answer_names, ()),
            answer=self.get(spec, "answer", where, _answer_name, None),
            confidential=self.get(spec, "confidential", where, _true, False),
            drop=self.get(spec, "drop", where, _true, False),
            stop=self.get(spec, "stop", where, _true, False),
        )
        if target is not None and (target.confidential or actions.confidential):
            self.confidential_notify(actions.notify, target, spec, where)
        return actions

    def confidential_notify(self, notify: tuple[str, ...], queue: Queue, spec: _Map, where: str) -> None:
        """A confidential ticket's content must not leave its queue's staff and leads."""
        for address in notify:
            if address not in queue.staff and address not in queue.leads:
                self.error(
                    spec.lines["notify"],
                    f"{where}: notify: {address} is neither staff nor lead of queue {queue.id!r}, and the ticket is confidential",
                )
