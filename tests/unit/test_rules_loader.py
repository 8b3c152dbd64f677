"""rules.yaml loading: what a valid file becomes, and every problem reported with its line."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from maild.rules import RulesError, load_rules, parse_rules
from maild.rules.model import BusinessDuration, Lifecycle

# Lines 1-14; the rules in RULES cases start on line 16.
QUEUES = """\
queues:
  jasenasiat:
    name: Jäsenasiat
    address: jasenpalvelu@liitto.fi
    staff: [maija@liitto.fi, pekka@liitto.fi]
    default: true
  laskutus:
    name: Laskutus
    address: Laskutus@Liitto.fi
    staff: [sari@liitto.fi]
  tyhja:
    name: Ilman henkilöstöä
    address: tyhja@liitto.fi
    language: sv
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.yaml")
    return caught.value.errors


def with_rules(rules: str) -> str:
    return QUEUES + "rules:\n" + rules


# --- a valid file ------------------------------------------------------------------------


def test_minimal_file_gets_the_contract_defaults() -> None:
    rules = parse_rules(QUEUES, "rules.yaml")

    assert rules.path == "rules.yaml"
    assert rules.rules == ()
    assert rules.sla == {}
    assert rules.lifecycle == Lifecycle(5, 14, 7)
    assert rules.business_hours.days == (0, 1, 2, 3, 4)
    assert (rules.business_hours.start, rules.business_hours.end) == (time(8), time(16))
    assert rules.business_hours.holidays == "FI"


def test_queues_are_typed_and_addresses_lower_case() -> None:
    rules = parse_rules(QUEUES, "rules.yaml")

    laskutus = rules.queues["laskutus"]
    assert laskutus.address == "laskutus@liitto.fi"
    assert laskutus.staff == ("sari@liitto.fi",)
    assert (laskutus.language, laskutus.default, laskutus.confidential, laskutus.leads) == ("fi", False, False, ())
    assert rules.queues["tyhja"].language == "sv"
    assert rules.default_queue().id == "jasenasiat"
    assert rules.addresses() == frozenset({"jasenpalvelu@liitto.fi", "laskutus@liitto.fi", "tyhja@liitto.fi"})


@pytest.mark.parametrize(
    ("address", "queue"),
    [
        ("laskutus@liitto.fi", "laskutus"),
        ("LASKUTUS@LIITTO.FI", "laskutus"),
        ("laskutus+k3x9q@liitto.fi", "laskutus"),
        (" jasenpalvelu@liitto.fi ", "jasenasiat"),
        ("laskutus@liitto.com", None),
        ("laskutusx@liitto.fi", None),
        ("not-an-address", None),
    ],
)
def test_queue_for_address(address: str, queue: str | None) -> None:
    found = parse_rules(QUEUES, "rules.yaml").queue_for_address(address)

    assert (found.id if found else None) == queue


def test_sla_durations_are_business_time_that_keep_their_unit() -> None:
    text = QUEUES + 'sla: {urgent: 30m, high: 4h, normal: 2d}\nbusiness_hours: {hours: "08:00-15:30"}\n'

    sla = parse_rules(text, "rules.yaml").sla

    assert sla["urgent"] == timedelta(minutes=30)
    assert sla["high"] == timedelta(hours=4)
    assert sla["normal"] == timedelta(hours=15)  # two business days of 7.5 hours
    assert isinstance(sla["normal"], BusinessDuration)
    assert (sla["normal"].amount, sla["normal"].unit, sla["normal"].raw) == (2, "d", "2d")
    assert "low" not in sla


def test_business_hours_and_lifecycle_as_written() -> None:
    text = QUEUES + (
        'business_hours: {days: [fri, mon], hours: "09:00 - 17:00", holidays: se}\n'
        "lifecycle: {remind_member_after_days: 3, close_after_days: 30}\n"
    )

    rules = parse_rules(text, "rules.yaml")

    assert rules.business_hours.days == (0, 4)
    assert (rules.business_hours.start, rules.business_hours.end) == (time(9), time(17))
    assert rules.business_hours.holidays == "SE"
    assert rules.lifecycle == Lifecycle(3, 14, 30)


def test_holidays_false_means_none() -> None:
    rules = parse_rules(QUEUES + "business_hours: {holidays: false}\n", "rules.yaml")

    assert rules.business_hours.holidays is None


def test_rules_are_numbered_and_keep_their_line() -> None:
    text = with_rules(
        "  - name: Ensimmäinen\n"  # line 16
        "    if: {subject: lasku}\n"
        "    then: {queue: laskutus, assign: round-robin}\n"
        "  - name: Toinen\n"  # line 19
        "    then: {priority: urgent, tags: [a, b, a], ack: false}\n"
        "    stop: true\n"
    )

    first, second = parse_rules(text, "rules.yaml").rules

    assert (first.name, first.index, first.line) == ("Ensimmäinen", 0, 16)
    assert dict(first.actions.as_mapping()) == {"queue": "laskutus", "assign": "round-robin"}
    assert (second.name, second.index, second.line) == ("Toinen", 1, 19)
    assert dict(second.actions.as_mapping()) == {"priority": "urgent", "tags": ("a", "b"), "ack": False, "stop": True}


def test_yaml_anchors_and_merge_keys_work() -> None:
    text = (
        "queues:\n"
        "  a: &base {name: A, address: a@liitto.fi, staff: [s@liitto.fi], default: true}\n"
        "  b:\n"
        "    <<: *base\n"
        "    address: b@liitto.fi\n"
        "    default: false\n"
    )

    queues = parse_rules(text, "rules.yaml").queues

    assert (queues["b"].name, queues["b"].address, queues["b"].staff, queues["b"].default) == (
        "A",
        "b@liitto.fi",
        ("s@liitto.fi",),
        False,
    )


CONTRACT_EXAMPLE = """\
queues:
  jasenasiat:                          # queue id
    name: Jäsenasiat
    address: jasenpalvelu@liitto.fi    # mail to this address lands here; From of its mail
    staff: [maija@liitto.fi, pekka@liitto.fi]
    language: fi                       # fi | sv | en: which templates its mail uses
    default: true                      # mail that no rule and no address places lands here
  lakineuvonta:
    name: Lakineuvonta
    address: lakineuvonta@liitto.fi
    staff: [juristi@liitto.fi]
    leads: [johtaja@liitto.fi]         # optional: who hears of escalations
    confidential: true                 # content never leaves this queue's staff
  laskutus:                            # (not in the contract's excerpt, which routes to it)
    name: Laskutus
    address: laskutus@liitto.fi
    staff: [sari@liitto.fi]

sla:                                   # first response targets, in business time (1d = one business day)
  urgent: 4h
  high: 1d
  normal: 3d
  low: 5d

business_hours:
  days: [mon, tue, wed, thu, fri]
  hours: "08:00-16:00"
  holidays: FI                         # public holidays of this country do not count

lifecycle:                             # optional, these are the defaults (calendar days)
  remind_member_after_days: 5          # a pending ticket reminds its member
  resolve_pending_after_days: 14       # ... and is resolved if still silent
  close_after_days: 7                  # a resolved ticket closes; later mail opens a new one

rules:
  - name: Eroamiset kiireellisiksi
    if:
      any:
        - subject: {contains: [eroaminen, eroan, erota, eroilmoitus]}
        - body: {regex: '(?i)\\berota\\b'}
    then:
      priority: high
      category: eroaminen
  - name: Laskutus
    if: {to: laskutus@liitto.fi}
    then: {queue: laskutus, assign: round-robin}
    stop: true
"""


def test_the_contract_example_loads() -> None:
    rules = parse_rules(CONTRACT_EXAMPLE, "rules.yaml")

    assert [rule.name for rule in rules.rules] == ["Eroamiset kiireellisiksi", "Laskutus"]
    assert dict(rules.rules[1].actions.as_mapping()) == {"queue": "laskutus", "assign": "round-robin", "stop": True}
    assert rules.sla["high"] == timedelta(hours=8)
    assert rules.queues["lakineuvonta"].confidential is True


@pytest.mark.parametrize(
    "regex",
    [
        r"lasku.*virhe",
        r"haluan(?:\s+\w+){0,2}\s+erota",
        r"(\d+\.){3}\d+",
        r"(a++)+",
        r"^.*lasku",
        r"\bero(?:an|ta)\b",
    ],
)
def test_safe_regexes_are_accepted(regex: str) -> None:
    text = with_rules(f"  - name: r\n    if: {{body: {{regex: '{regex}'}}}}\n    then: {{tags: [x]}}\n")

    assert len(parse_rules(text, "rules.yaml").rules) == 1


# --- errors, each with its line ----------------------------------------------------------

FILE_ERRORS = [
    # (libyaml and PyYAML word syntax errors differently; the context is the same)
    ("queues:\n  a: {name: A\n  b: x\n", 3, "(while parsing a flow mapping)"),
    ("queues:\n\ta: x\n", 2, "that cannot start any token"),
    ("queues:\n  a: \x00\n", 2, "characters are not allowed (character #x0000)"),
    ("queues:\n  [a]: x\n", 2, "invalid YAML: a key must be a plain value"),
    ("", 1, "rules file: expected a mapping, got nothing"),
    ("- a\n- b\n", 1, "rules file: expected a mapping, got a list"),
    ("rules: []\n", 1, "top level: missing 'queues'"),
    (QUEUES + "rule: []\n", 15, "top level: unknown key 'rule' (did you mean 'rules'?)"),
    (QUEUES + "queues: {}\n", 15, "duplicate key 'queues'"),
    ("queues: {}\n", 1, "queues: define at least one queue"),
    ("queues: [a]\n", 1, "queues: expected a mapping, got a list"),
    # queues
    (QUEUES.replace("    language: sv", "    language: de"), 14, "queue 'tyhja': language: expected one of fi, sv, en, got 'de'"),
    (QUEUES.replace("    language: sv", "    langauge: sv"), 14, "queue 'tyhja': unknown key 'langauge' (did you mean 'language'?)"),
    (QUEUES.replace("    address: tyhja@liitto.fi\n", ""), 11, "queue 'tyhja': missing 'address'"),
    (QUEUES.replace("    name: Laskutus\n", ""), 7, "queue 'laskutus': missing 'name'"),
    (QUEUES.replace("tyhja@liitto.fi", "JASENPALVELU@liitto.fi"), 13, "address jasenpalvelu@liitto.fi is already used by queue 'jasenasiat'"),
    (QUEUES.replace("tyhja@liitto.fi", "tyhja+x@liitto.fi"), 13, "'+' is reserved for reply addresses"),
    (QUEUES.replace("tyhja@liitto.fi", "tyhja"), 13, "queue 'tyhja': address: 'tyhja' is not an email address"),
    (QUEUES.replace("sari@liitto.fi", "sari at liitto"), 10, "queue 'laskutus': staff: 'sari at liitto' is not an email address"),
    (QUEUES.replace("  tyhja:", "  tyhjä jono:"), 11, "queue 'tyhjä jono': a queue id is letters, digits, '-' and '_'"),
    (QUEUES.replace("    default: true\n", ""), 1, "queues: no queue has default: true (exactly one must)"),
    (QUEUES.replace("    language: sv", "    default: true"), 14, "queue 'tyhja': only one queue can be default, and 'jasenasiat' is"),
    (QUEUES.replace("    default: true", "    default: yes please"), 6, "queue 'jasenasiat': default: expected true or false"),
    # sla, business hours, lifecycle
    (QUEUES + "sla:\n  high: 1 day\n", 16, "sla: high: expected a duration such as 30m, 4h or 1d, got '1 day'"),
    (QUEUES + "sla:\n  high: 4\n", 16, "sla: high: expected a duration such as 30m, 4h or 1d, got 4"),
    (QUEUES + "sla:\n  high: 0h\n", 16, "sla: high: expected a duration"),
    (QUEUES + "sla:\n  hihg: 4h\n", 16, "sla: unknown key 'hihg' (did you mean 'high'?)"),
    (QUEUES + "business_hours:\n  hours: 8-16\n", 16, "business_hours: hours: expected \"HH:MM-HH:MM\", got '8-16'"),
    (QUEUES + 'business_hours:\n  hours: "16:00-08:00"\n', 16, "business_hours: hours: '16:00-08:00' ends before it starts"),
    (QUEUES + 'business_hours:\n  hours: "08:00-24:00"\n', 16, "business_hours: hours: expected \"HH:MM-HH:MM\""),
    (QUEUES + "business_hours:\n  days: [mon, funday]\n", 16, "business_hours: days: expected one of mon, tue"),
    (QUEUES + "business_hours:\n  days: [mon, mon]\n", 16, "business_hours: days: a day is listed twice"),
    (QUEUES + "business_hours:\n  holidays: XX\n", 16, "business_hours: holidays: 'XX' is not a country code"),
    (QUEUES + "business_hours:\n  weekend: [sat]\n", 16, "business_hours: unknown key 'weekend'"),
    (QUEUES + "lifecycle:\n  close_after_days: 0\n", 16, "lifecycle: close_after_days: expected a whole number of days, at least 1, got 0"),
    (QUEUES + "lifecycle:\n  close_after_days: true\n", 16, "lifecycle: close_after_days: expected a whole number of days"),
    (QUEUES + "lifecycle:\n  close_after: 3\n", 16, "lifecycle: unknown key 'close_after' (did you mean 'close_after_days'?)"),
    (QUEUES + "rules: {a: 1}\n", 15, "rules: expected a list of rules, got a mapping"),
]


@pytest.mark.parametrize(("text", "line", "message"), FILE_ERRORS)
def test_file_errors_name_their_line(text: str, line: int, message: str) -> None:
    errors = errors_of(text)

    assert any(error.startswith(f"rules.yaml:{line}: ") and message in error for error in errors), errors


RULE_ERRORS = [
    # rule shape
    ("  - name: a\n    iff: {subject: x}\n    then: {tags: [x]}\n", 17, "rule 'a': unknown key 'iff' (did you mean 'if'?)"),
    ("  - if: {subject: x}\n    then: {tags: [x]}\n", 16, "rule #1: missing 'name'"),
    ("  - name: a\n    if: {subject: x}\n", 16, "rule 'a': does nothing"),
    ("  - name: a\n    then: {}\n", 16, "rule 'a': does nothing"),
    ("  - just a string\n", 16, "rule #1: expected a mapping, got 'just a string'"),
    ("  - {name: a, then: {tags: [x]}}\n  - {name: a, then: {tags: [y]}}\n", 17, "rule 'a': another rule has this name (line 16)"),
    ("  - name: a\n    name: b\n    then: {tags: [x]}\n", 17, "duplicate key 'name'"),
    ("  - name: a\n    stop: false\n    then: {tags: [x]}\n", 17, "rule 'a': stop: can only be true"),
    # conditions
    ("  - name: a\n    if: {subjet: x}\n    then: {tags: [x]}\n", 17, "rule 'a': unknown condition 'subjet' (did you mean 'subject'?)"),
    ("  - name: a\n    if: {}\n    then: {tags: [x]}\n", 17, "rule 'a': empty condition"),
    ("  - name: a\n    if: subject\n    then: {tags: [x]}\n", 17, "rule 'a': condition: expected a mapping, got 'subject'"),
    ("  - name: a\n    if: {any: {subject: x}}\n    then: {tags: [x]}\n", 17, "rule 'a': any: expected a list of conditions, got a mapping"),
    ("  - name: a\n    if: {all: []}\n    then: {tags: [x]}\n", 17, "rule 'a': all: expected a list of conditions, got an empty list"),
    ("  - name: a\n    if:\n      any:\n        - subject: x\n        - bdy: y\n    then: {tags: [x]}\n", 20, "unknown condition 'bdy' (did you mean 'body'?)"),
    ("  - name: a\n    if: {not: {from: {contain: x}}}\n    then: {tags: [x]}\n", 17, "rule 'a': not: from: unknown operator 'contain' (did you mean 'contains'?)"),
    ("  - name: a\n    if: {subject: {contains: x, regex: y}}\n    then: {tags: [x]}\n", 17, "subject: give exactly one of equals, contains, regex"),
    ("  - name: a\n    if: {subject: {contains: []}}\n    then: {tags: [x]}\n", 17, "subject: contains: the list is empty"),
    ("  - name: a\n    if: {subject: {contains: ['  ']}}\n    then: {tags: [x]}\n", 17, "subject: expected text, got '  '"),
    ("  - name: a\n    if: {subject: 2024}\n    then: {tags: [x]}\n", 17, "subject: expected text, got 2024"),
    ("  - name: a\n    if: {has_attachment: yes please}\n    then: {tags: [x]}\n", 17, "has_attachment: expected true or false"),
    ("  - name: a\n    if: {header: {'X Spam': x}}\n    then: {tags: [x]}\n", 17, "header: 'X Spam' is not a header name"),
    ("  - name: a\n    if: {header: {}}\n    then: {tags: [x]}\n", 17, "header: name at least one header"),
    # regexes
    ("  - name: a\n    if: {body: {regex: '['}}\n    then: {tags: [x]}\n", 17, "body: bad regex '[': unterminated character set at position 0"),
    (
        "  - name: a\n    if:\n      body:\n        regex:\n          - ok\n          - '(?<=a+)b'\n    then: {tags: [x]}\n",
        21,
        "body: bad regex '(?<=a+)b': look-behind requires fixed-width pattern",
    ),
    ("  - name: a\n    if: {body: {regex: '(a+)+$'}}\n    then: {tags: [x]}\n", 17, "regex '(a+)+$' can backtrack catastrophically"),
    ("  - name: a\n    if: {body: {regex: '(.*)*'}}\n    then: {tags: [x]}\n", 17, "regex '(.*)*' can backtrack catastrophically"),
    ("  - name: a\n    if: {body: {regex: '(\\w+\\s?)*$'}}\n    then: {tags: [x]}\n", 17, "can backtrack catastrophically"),
    ("  - name: a\n    if: {body: {regex: '(?:x|(?:ab{1,3})*)+'}}\n    then: {tags: [x]}\n", 17, "can backtrack catastrophically"),
    ("  - name: a\n    if: {body: {regex: '(a{1,3})*'}}\n    then: {tags: [x]}\n", 17, "can backtrack catastrophically"),
    ("  - name: a\n    if: {subject: {regex: '.*lasku'}}\n    then: {tags: [x]}\n", 17, "starts with an unbounded wildcard"),
    ("  - name: a\n    if: {subject: {regex: '(?:x|[^,]+)y'}}\n    then: {tags: [x]}\n", 17, "starts with an unbounded wildcard"),
    ("  - name: a\n    if: {subject: {regex: 'a.*e.*x'}}\n    then: {tags: [x]}\n", 17, "has more than one unbounded wildcard"),
    ("  - name: a\n    if: {subject: {regex: 'a\\S+ (b.+)'}}\n    then: {tags: [x]}\n", 17, "has more than one unbounded wildcard"),
    # actions
    ("  - name: a\n    then: {queue: laskutu}\n", 17, "rule 'a': then: queue: no queue 'laskutu' (did you mean 'laskutus'?); queues: jasenasiat, laskutus, tyhja"),
    ("  - name: a\n    then: {priority: hi}\n", 17, "then: priority: expected one of low, normal, high, urgent, got 'hi' (did you mean 'high'?)"),
    ("  - name: a\n    then: {queue: laskutus, assign: maija@liitto.fi}\n", 17, "then: assign: maija@liitto.fi is not staff of queue 'laskutus'"),
    ("  - name: a\n    then: {assign: outsider@liitto.fi}\n", 17, "then: assign: outsider@liitto.fi is not staff of any queue"),
    ("  - name: a\n    then: {queue: tyhja, assign: round-robin}\n", 17, "then: assign: queue 'tyhja' has no staff"),
    ("  - name: a\n    then: {ack: true}\n", 17, "then: ack: expected a template name or false, got true"),
    ("  - name: a\n    then: {ack: ../../etc/passwd}\n", 17, "then: ack: expected a template name or false"),
    ("  - name: a\n    then: {notify: [boss]}\n", 17, "then: notify: 'boss' is not an email address"),
    ("  - name: a\n    then: {drop: false}\n", 17, "then: drop: can only be true (leave it out otherwise), got false"),
    ("  - name: a\n    then: {confidential: false}\n", 17, "then: confidential: can only be true"),
    ("  - name: a\n    then: {tags: []}\n", 17, "then: tags: expected text or a list of texts, got an empty list"),
    ("  - name: a\n    then: {category: [a, b]}\n", 17, "then: category: expected text, got a list"),
    ("  - name: a\n    then: {priority: high, asign: x}\n", 17, "then: unknown key 'asign' (did you mean 'assign'?)"),
    ("  - name: a\n    then: [queue, laskutus]\n", 17, "rule 'a': then: expected a mapping, got a list"),
    (
        "  - name: a\n    then:\n      queue: laskutus\n      confidential: true\n      notify: [maija@liitto.fi]\n",
        20,
        "then: notify: maija@liitto.fi is neither staff nor lead of queue 'laskutus', and the ticket is confidential",
    ),
]


@pytest.mark.parametrize(("rules", "line", "message"), RULE_ERRORS)
def test_rule_errors_name_their_line(rules: str, line: int, message: str) -> None:
    errors = errors_of(with_rules(rules))

    assert any(error.startswith(f"rules.yaml:{line}: ") and message in error for error in errors), errors


def test_every_error_is_reported_in_line_order() -> None:
    text = (
        "queues:\n"
        "  a: {name: A, address: a@liitto.fi, language: de, default: true}\n"  # 2
        "  b: {name: B, address: a@liitto.fi, default: true}\n"  # 3: address taken, second default
        "sla: {high: soon}\n"  # 4
        "rules:\n"
        "  - name: r\n"
        "    if: {subject: {regex: '(a+)+'}, body: {regex: '('}}\n"  # 7: two errors
        "    then: {queue: c, priority: asap}\n"  # 8: two errors
    )

    errors = errors_of(text)

    assert [error.split(":")[1] for error in errors] == ["2", "3", "3", "4", "7", "7", "8", "8"]
    assert all(error.startswith("rules.yaml:") for error in errors)


def test_rules_error_message_lists_all_errors() -> None:
    error = RulesError(["r.yaml:1: one", "r.yaml:2: two"])

    assert str(error) == "r.yaml:1: one\nr.yaml:2: two"


# --- reading files -----------------------------------------------------------------------


def test_load_rules_reads_a_file(tmp_path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(QUEUES, encoding="utf-8")

    rules = load_rules(path)

    assert rules.path == str(path)
    assert rules.queues["jasenasiat"].name == "Jäsenasiat"


def test_load_rules_names_the_file_in_errors(tmp_path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(QUEUES + "sla: {high: 1 day}\n", encoding="utf-8")

    with pytest.raises(RulesError) as caught:
        load_rules(path)

    assert caught.value.errors == [f"{path}:15: sla: high: expected a duration such as 30m, 4h or 1d, got '1 day'"]


def test_missing_file(tmp_path) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path / "nope.yaml")

    assert caught.value.errors == [f"{tmp_path / 'nope.yaml'}:1: cannot read the rules file: No such file or directory"]


def test_file_that_is_not_utf8(tmp_path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(QUEUES.replace("Jäsenasiat", "J\xe4senasiat").encode("latin-1"))

    with pytest.raises(RulesError) as caught:
        load_rules(path)

    assert caught.value.errors == [f"{path}:3: not UTF-8 text"]
