"""decide(): conditions, normalisation, queue choice, and how rule actions combine."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from maild.mail import Attachment, Parsed
from maild.rules import Facts, decide, facts_from, parse_rules
from maild.rules.model import RuleSet
from maild.rules.text import MAX_TEXT_CHARS, normalise

QUEUES = """\
queues:
  jasenasiat:
    name: Jäsenasiat
    address: jasenpalvelu@liitto.fi
    staff: [maija@liitto.fi, pekka@liitto.fi]
    default: true
  laskutus:
    name: Laskutus
    address: laskutus@liitto.fi
    staff: [sari@liitto.fi]
  lakineuvonta:
    name: Lakineuvonta
    address: lakineuvonta@liitto.fi
    staff: [juristi@liitto.fi]
    leads: [johtaja@liitto.fi]
    confidential: true
rules:
"""

MEMBER = "jasen@example.fi"


def ruleset(rules_yaml: str) -> RuleSet:
    return parse_rules(QUEUES + rules_yaml, "rules.yaml")


def facts(
    *,
    from_addr: str = MEMBER,
    recipients: tuple[str, ...] = ("jasenpalvelu@liitto.fi",),
    subject: str = "",
    body: str = "",
    headers: dict[str, tuple[str, ...]] | None = None,
    has_attachment: bool = False,
) -> Facts:
    return Facts(from_addr, recipients, subject, body, headers or {}, has_attachment)


# --- conditions --------------------------------------------------------------------------

# (condition as YAML, facts, whether the rule matches)
CONDITIONS = [
    # from / to: a bare string means equals
    ("{from: jasen@example.fi}", facts(), True),
    ("{from: JASEN@Example.FI}", facts(), True),
    ("{from: asen@example.fi}", facts(), False),
    ("{from: [muu@example.fi, jasen@example.fi]}", facts(), True),
    ("{from: {contains: '@example.fi'}}", facts(), True),
    ("{from: {regex: '@example\\.(fi|se)$'}}", facts(), True),
    ("{to: laskutus@liitto.fi}", facts(recipients=("jasenpalvelu@liitto.fi", "laskutus@liitto.fi")), True),
    ("{to: laskutus@liitto.fi}", facts(recipients=("laskutus+abc@liitto.fi",)), False),
    ("{to: {contains: laskutus}}", facts(recipients=("laskutus+abc@liitto.fi",)), True),
    ("{to: {equals: [a@liitto.fi, b@liitto.fi]}}", facts(recipients=("b@liitto.fi",)), True),
    # subject / body: a bare string means contains
    ("{subject: eroaminen}", facts(subject="Eroaminen liitosta"), True),
    ("{subject: eroaminen}", facts(subject="EROAMINEN"), True),
    ("{subject: Eroaminen}", facts(subject="eroaminen"), True),
    ("{subject: eroaminen}", facts(body="eroaminen"), False),
    ("{subject: {equals: eroilmoitus}}", facts(subject="  EROILMOITUS "), True),
    ("{subject: {equals: eroilmoitus}}", facts(subject="Eroilmoitus 2025"), False),
    ("{subject: {contains: [eroan, eroilmoitus]}}", facts(subject="Eroilmoitus"), True),
    ("{subject: {contains: [eroan, eroilmoitus]}}", facts(subject="Osoitteenmuutos"), False),
    ("{subject: {regex: '\\berota\\b'}}", facts(subject="Haluan EROTA liitosta"), True),
    ("{subject: {regex: '\\berota\\b'}}", facts(subject="Erotuomarikurssi"), False),
    ("{subject: {regex: ['^vs:', 'jäsenmaksu']}}", facts(subject="Jäsenmaksuni"), True),
    ("{body: {contains: 'säga upp mitt medlemskap'}}", facts(body="Jag vill säga upp\r\nmitt  medlemskap."), True),
    ("{body: 'haluan erota'}", facts(body="Hei,\n\nhaluan\u00a0erota."), True),
    # Unicode: NFC on both sides, casefold rather than lower
    ("{subject: jäsenmaksu}", facts(subject="Ja\u0308senmaksu"), True),
    ("{subject: \"Ja\u0308senmaksu\"}", facts(subject="JÄSENMAKSU"), True),
    ("{subject: {regex: 'j\u00e4sen'}}", facts(subject="JA\u0308SENMAKSU"), True),
    ("{subject: {equals: straße}}", facts(subject="STRASSE"), True),
    ("{subject: jäsenmaksu}", facts(subject="Jasenmaksu"), False),
    # headers: names case-insensitive, any value, missing never matches
    ("{header: {X-Spam-Flag: {equals: 'YES'}}}", facts(headers={"x-spam-flag": ("yes",)}), True),
    ("{header: {x-spam-flag: 'yes'}}", facts(headers={"x-spam-flag": ("NO",)}), False),
    ("{header: {Received: intern}}", facts(headers={"received": ("from mx1", "from internal.liitto.fi")}), True),
    ("{header: {X-Spam-Flag: 'yes'}}", facts(), False),
    ("{not: {header: {X-Spam-Flag: 'yes'}}}", facts(), True),
    ("{header: {X-Priority: '1', Importance: high}}", facts(headers={"x-priority": ("1",), "importance": ("High",)}), True),
    ("{header: {X-Priority: '1', Importance: high}}", facts(headers={"x-priority": ("1",)}), False),
    ("{header: {List-Id: {regex: '<.+\\.liitto\\.fi>'}}}", facts(headers={"list-id": ("Tiedotteet <tiedote.liitto.fi>",)}), True),
    # attachments
    ("{has_attachment: true}", facts(has_attachment=True), True),
    ("{has_attachment: true}", facts(), False),
    ("{has_attachment: false}", facts(), True),
    # combinators
    ("{all: [{subject: lasku}, {has_attachment: true}]}", facts(subject="lasku", has_attachment=True), True),
    ("{all: [{subject: lasku}, {has_attachment: true}]}", facts(subject="lasku"), False),
    ("{any: [{subject: lasku}, {body: lasku}]}", facts(body="Laskussani on virhe"), True),
    ("{any: [{subject: lasku}, {body: lasku}]}", facts(body="Osoite muuttui"), False),
    ("{not: {subject: lasku}}", facts(subject="lasku"), False),
    ("{not: {not: {subject: lasku}}}", facts(subject="lasku"), True),
    ("{subject: lasku, has_attachment: true}", facts(subject="lasku"), False),  # several keys: all
    ("{any: [{all: [{subject: a}, {not: {body: b}}]}, {from: x@y.fi}]}", facts(subject="a", body="c"), True),
    ("{any: [{all: [{subject: a}, {not: {body: b}}]}, {from: x@y.fi}]}", facts(subject="a", body="b"), False),
]


@pytest.mark.parametrize(("condition", "message", "matches"), CONDITIONS)
def test_condition(condition: str, message: Facts, matches: bool) -> None:
    rules = ruleset(f"  - name: r\n    if: {condition}\n    then: {{tags: [osui]}}\n")

    decision = decide(message, rules)

    assert decision.tags == (("osui",) if matches else ())
    assert [hit.name for hit in decision.hits] == (["r"] if matches else [])


def test_a_rule_without_if_matches_everything() -> None:
    decision = decide(facts(), ruleset("  - name: aina\n    then: {tags: [aina]}\n"))

    assert decision.tags == ("aina",)


def test_only_the_first_100k_characters_of_the_body_are_matched() -> None:
    rules = ruleset("  - name: r\n    if: {body: {regex: '\\berota\\b'}}\n    then: {tags: [osui]}\n")
    padding = "x" * (MAX_TEXT_CHARS - 10)

    assert decide(facts(body=padding + " erota"), rules).tags == ("osui",)
    assert decide(facts(body=padding + " " * 20 + "erota"), rules).tags == ()


# --- queue choice ------------------------------------------------------------------------

QUEUE_CHOICE = [
    # recipients, rule queue, expected queue, expected other_queues
    ((), None, "jasenasiat", ()),
    (("toinen@example.fi",), None, "jasenasiat", ()),
    (("laskutus@liitto.fi",), None, "laskutus", ()),
    (("LASKUTUS+k3x9@Liitto.fi",), None, "laskutus", ()),
    (("jasenpalvelu@liitto.fi", "laskutus@liitto.fi"), None, "jasenasiat", ("laskutus@liitto.fi",)),
    (("x@example.fi", "laskutus@liitto.fi", "jasenpalvelu@liitto.fi"), None, "laskutus", ("jasenpalvelu@liitto.fi",)),
    (("laskutus@liitto.fi", "laskutus+abc@liitto.fi"), None, "laskutus", ()),
    (("laskutus@liitto.fi",), "lakineuvonta", "lakineuvonta", ("laskutus@liitto.fi",)),
    (("laskutus@liitto.fi", "lakineuvonta@liitto.fi"), "lakineuvonta", "lakineuvonta", ("laskutus@liitto.fi",)),
    ((), "laskutus", "laskutus", ()),
]


@pytest.mark.parametrize(("recipients", "rule_queue", "queue", "other_queues"), QUEUE_CHOICE)
def test_queue_choice(recipients: tuple[str, ...], rule_queue: str | None, queue: str, other_queues: tuple[str, ...]) -> None:
    rules = ruleset(f"  - name: r\n    then: {{queue: {rule_queue}}}\n" if rule_queue else "  []\n")

    decision = decide(facts(recipients=recipients), rules)

    assert (decision.queue, decision.other_queues) == (queue, other_queues)


# --- how actions combine -----------------------------------------------------------------

COMBINE = """\
  - name: yksi
    if: {subject: lasku}
    then: {queue: laskutus, priority: high, category: laskutus, tags: [lasku, kiire], ack: vastaanotettu}
  - name: kaksi
    if: {subject: virhe}
    then: {priority: urgent, tags: [virhe, lasku], notify: [sari@liitto.fi], assign: sari@liitto.fi}
  - name: kolme
    if: {subject: stop}
    then: {category: muu, ack: false}
    stop: true
  - name: neljä
    if: {subject: lasku}
    then: {priority: low, notify: [maija@liitto.fi, sari@liitto.fi]}
"""


def test_defaults_when_no_rule_matches() -> None:
    decision = decide(facts(subject="Osoitteenmuutos"), ruleset(COMBINE))

    assert decision.priority == "normal"
    assert (decision.category, decision.assign, decision.ack) == (None, None, None)
    assert (decision.tags, decision.notify, decision.hits) == ((), (), ())
    assert (decision.confidential, decision.drop) == (False, False)


def test_later_rules_override_and_lists_accumulate() -> None:
    decision = decide(facts(subject="Lasku virhe"), ruleset(COMBINE))

    assert [(hit.name, hit.index) for hit in decision.hits] == [("yksi", 0), ("kaksi", 1), ("neljä", 3)]
    assert decision.queue == "laskutus"
    assert decision.priority == "low"
    assert decision.category == "laskutus"
    assert decision.tags == ("lasku", "kiire", "virhe")
    assert decision.notify == ("sari@liitto.fi", "maija@liitto.fi")
    assert decision.assign == "sari@liitto.fi"
    assert decision.ack == "vastaanotettu"


def test_stop_ends_the_run() -> None:
    decision = decide(facts(subject="lasku stop"), ruleset(COMBINE))

    assert [hit.name for hit in decision.hits] == ["yksi", "kolme"]
    assert decision.priority == "high"  # "neljä" would have made it low
    assert decision.category == "muu"
    assert decision.ack is False
    assert dict(decision.hits[1].values) == {"category": "muu", "ack": False, "stop": True}


def test_hits_record_what_each_rule_set() -> None:
    decision = decide(facts(subject="lasku"), ruleset(COMBINE))

    assert dict(decision.hits[0].values) == {
        "queue": "laskutus",
        "priority": "high",
        "category": "laskutus",
        "tags": ("lasku", "kiire"),
        "ack": "vastaanotettu",
    }


def test_drop() -> None:
    rules = ruleset("  - name: roska\n    if: {header: {X-Spam-Flag: 'yes'}}\n    then: {drop: true}\n")

    assert decide(facts(headers={"x-spam-flag": ("YES",)}), rules).drop is True
    assert decide(facts(), rules).drop is False


@pytest.mark.parametrize(
    ("recipients", "subject", "confidential"),
    [
        (("lakineuvonta@liitto.fi",), "kysymys", True),  # the queue is confidential
        (("jasenpalvelu@liitto.fi",), "salainen asia", True),  # a rule says so
        (("jasenpalvelu@liitto.fi",), "työsopimus", True),  # a rule moves it to the confidential queue
        (("jasenpalvelu@liitto.fi", "lakineuvonta@liitto.fi"), "kysymys", False),  # only noted as other queue
        (("jasenpalvelu@liitto.fi",), "kysymys", False),
    ],
)
def test_confidential(recipients: tuple[str, ...], subject: str, confidential: bool) -> None:
    rules = ruleset(
        "  - name: salainen\n    if: {subject: salainen}\n    then: {confidential: true}\n"
        "  - name: laki\n    if: {subject: työsopimus}\n    then: {queue: lakineuvonta}\n"
    )

    assert decide(facts(recipients=recipients, subject=subject), rules).confidential is confidential


def test_confidential_notify_stays_within_the_queue() -> None:
    rules = ruleset(
        "  - name: ilmoita\n    then: {notify: [maija@liitto.fi, johtaja@liitto.fi, juristi@liitto.fi]}\n"
        "  - name: laki\n    if: {subject: työsopimus}\n    then: {queue: lakineuvonta}\n"
    )

    assert decide(facts(subject="työsopimus"), rules).notify == ("johtaja@liitto.fi", "juristi@liitto.fi")
    assert decide(facts(subject="muu"), rules).notify == ("maija@liitto.fi", "johtaja@liitto.fi", "juristi@liitto.fi")


@pytest.mark.parametrize(
    ("subject", "assign"),
    [
        ("reklamaatio", "maija@liitto.fi"),  # staff of the final queue (jasenasiat)
        ("reklamaatio lasku", None),  # moved to laskutus, where maija is not staff
        ("lasku kiire", "round-robin"),
        ("lasku", None),
    ],
)
def test_assignee_must_be_staff_of_the_final_queue(subject: str, assign: str | None) -> None:
    rules = ruleset(
        "  - name: reklamaatio\n    if: {subject: reklamaatio}\n    then: {assign: maija@liitto.fi}\n"
        "  - name: lasku\n    if: {subject: lasku}\n    then: {queue: laskutus}\n"
        "  - name: kiire\n    if: {subject: kiire}\n    then: {assign: round-robin}\n"
    )

    assert decide(facts(subject=subject), rules).assign == assign


def test_decide_is_deterministic_and_leaves_its_input_alone() -> None:
    message = facts(subject="Lasku virhe", headers={"x-a": ("b",)})
    rules = ruleset(COMBINE)

    assert decide(message, rules) == decide(message, rules)
    assert message == facts(subject="Lasku virhe", headers={"x-a": ("b",)})


# --- JSON for `maild rules test` -----------------------------------------------------------


def test_to_json() -> None:
    decision = decide(facts(subject="Lasku virhe", recipients=("jasenpalvelu@liitto.fi",)), ruleset(COMBINE))

    document = decision.to_json()

    assert json.loads(json.dumps(document, ensure_ascii=False)) == {
        "queue": "laskutus",
        "other_queues": ["jasenpalvelu@liitto.fi"],
        "priority": "low",
        "category": "laskutus",
        "tags": ["lasku", "kiire", "virhe"],
        "assignee": "sari@liitto.fi",
        "ack": "vastaanotettu",
        "notify": ["sari@liitto.fi", "maija@liitto.fi"],
        "suggest": [],
        "answer": None,
        "confidential": False,
        "drop": False,
        "matched_rules": [
            {
                "name": "yksi",
                "index": 0,
                "actions": {
                    "queue": "laskutus",
                    "priority": "high",
                    "category": "laskutus",
                    "tags": ["lasku", "kiire"],
                    "ack": "vastaanotettu",
                },
            },
            {
                "name": "kaksi",
                "index": 1,
                "actions": {
                    "priority": "urgent",
                    "tags": ["virhe", "lasku"],
                    "notify": ["sari@liitto.fi"],
                    "assign": "sari@liitto.fi",
                },
            },
            {"name": "neljä", "index": 3, "actions": {"priority": "low", "notify": ["maija@liitto.fi", "sari@liitto.fi"]}},
        ],
    }


# --- facts_from --------------------------------------------------------------------------

PARSED = Parsed(
    message_id="<1@example.fi>",
    in_reply_to=(),
    references=(),
    subject="Laskussani on virhe",
    from_addr="jasen@example.fi",
    from_name="Jäsen",
    to=("Jasenpalvelu@liitto.fi",),
    cc=("laskutus@liitto.fi", "jasenpalvelu@liitto.fi"),
    reply_to=(),
    date=None,
    headers={"delivered-to": ("<Lakineuvonta@liitto.fi>", "laskutus@liitto.fi"), "x-a": ("b",)},
    text="Hei, laskussa on virhe.",
    html=None,
)


def test_facts_from_parsed_orders_recipients_without_repeats() -> None:
    found = facts_from(PARSED, ("arkisto@liitto.fi", "laskutus@liitto.fi"))

    assert found.recipients == (
        "jasenpalvelu@liitto.fi",
        "laskutus@liitto.fi",
        "arkisto@liitto.fi",
        "lakineuvonta@liitto.fi",
    )
    assert (found.from_addr, found.subject, found.body) == ("jasen@example.fi", "Laskussani on virhe", "Hei, laskussa on virhe.")
    assert found.headers["x-a"] == ("b",)
    assert found.has_attachment is False


def test_facts_from_sees_attachments() -> None:
    attachment = Attachment("lasku.pdf", "application/pdf", 3, "00", b"pdf")

    assert facts_from(replace(PARSED, attachments=(attachment,)), ()).has_attachment is True


# --- regexes: the literal prefilter never changes an answer ---------------------------------

# (regex, text, whether re.search finds it in the normalised text)
REGEXES = [
    (r"\blasku\w*", "Jäsenmaksulasku ja toinen lasku", True),  # first occurrence fails \b, second matches
    (r"\blasku\w*", "Jäsenmaksulasku", False),
    (r"(?<!e-)lasku", "e-lasku ja lasku", True),
    (r"(?<!e-)lasku", "E-LASKU", False),
    (r"^vs:", "VS: Eroilmoitus", True),
    (r"^vs:", "Asia vs: toinen", False),
    (r"Lasku(?:n|sta)", "LASKUSTA", True),
    (r"\b(?:verkko|paperi)?lasku", "Verkkolasku", True),
    (r"\b(?:verkko|paperi)?lasku", "jäsenlaskut", False),
    (r"colou?r", "COLOR", True),
    (r"ab|cd", "xxCD", True),
    (r"(?:abc)+d", "abcABCd", True),
    (r"(?:abc)+d", "abd", False),
    (r"\w+lasku", "jäsenlasku", True),
    (r"x", "X", True),
    (r"(?-i:ABC)", "ABC", False),  # the text is casefolded: a case-sensitive capital never matches
    (r"jäsen", "JA\u0308SEN", True),
    (r"k", "\u212a", True),  # KELVIN SIGN casefolds to k
    (r"kapi", "KAPI", True),
    (r"kapi", "Kapı", True),  # dotless ı is read as i, as re.IGNORECASE does
    (r"\bero(?:an|ta)\b|\bero[an]? liitosta\b", "Pyydän eroa liitosta", True),
    (r"\bero(?:an|ta)\b|\bero[an]? liitosta\b", "Erotuomari", False),
]


@pytest.mark.parametrize(("regex", "text", "found"), REGEXES)
def test_regex_rules_match_exactly_where_re_search_does(regex: str, text: str, found: bool) -> None:
    rules = ruleset(f"  - name: r\n    if: {{body: {{regex: '{regex}'}}}}\n    then: {{tags: [osui]}}\n")

    assert bool(re.search(regex, normalise(text), re.IGNORECASE)) is found
    assert decide(facts(body=text), rules).tags == (("osui",) if found else ())


def test_contains_reads_dotless_i_as_i() -> None:
    rules = ruleset("  - name: r\n    if: {subject: kapi}\n    then: {tags: [osui]}\n")

    assert decide(facts(subject="Kapı"), rules).tags == ("osui",)


def test_rules_can_test_the_channel() -> None:
    from maild.rules.loader import parse_rules
    from maild.rules.model import Facts

    rules = parse_rules(
        "queues:\n  a: {name: A, address: a@liitto.fi, staff: [s@liitto.fi], default: true}\n"
        "rules:\n  - name: Puhelut\n    if: {channel: phone}\n    then: {tags: [puhelu]}\n"
        "  - name: Lomake\n    if: {channel: {equals: [web]}}\n    then: {tags: [lomake]}\n", "rules.yaml")
    base = dict(from_addr="m@example.fi", recipients=("a@liitto.fi",), subject="", body="", headers={}, has_attachment=False)
    assert decide(Facts(**base, channel="phone"), rules).tags == ("puhelu",)
    assert decide(Facts(**base, channel="web"), rules).tags == ("lomake",)
    assert decide(Facts(**base), rules).tags == ()
