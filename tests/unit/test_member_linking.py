"""Which member a mail is from (docs/coming.md#member-register), and rules on the member register: pure parts."""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maild.core.members import (
    _NUMBER,
    NUMBER_WORDS,
    Link,
    Member,
    from_lookup,
    link,
    member_numbers,
    shown_fields,
    template_member,
)
from maild.rules import decide
from maild.rules.loader import RulesError, parse_rules
from maild.rules.model import Facts

MATTI = Member("1001", "matti@example.fi", {"Osasto": "Tampereen osasto", "maksettu": "ei"}, id=1)
ANNA = Member("2002", "anna@example.fi", {"Osasto": "Oulun osasto", "maksettu": "kyllä"}, id=2)


@pytest.mark.parametrize(
    ("subject", "text", "numbers"),
    [
        ("Jäsennumero 12345", "", ("12345",)),
        ("", "Hei, jäsennumeroni on 12345.", ("12345",)),
        ("", "jäsennro: 12345", ("12345",)),
        ("", "JÄSENNUMERO:12345", ("12345",)),
        ("", "Mitt medlemsnummer är 4711", ("4711",)),
        ("", "medlemsnummer 4711", ("4711",)),
        ("", "My member number is 99", ("99",)),
        ("", "jäsen nro 555", ("555",)),
        ("Jäsennumero 1", "jäsennumero 2, jäsennumero 1", ("1", "2")),
        ("", "puhelinnumero 0401234567", ()),
        ("", "jäsennumero 12345678901234567", ()),
        ("", "jäsennumeroni unohtui", ()),
    ],
)
def test_member_numbers_in_subject_and_text(subject: str, text: str, numbers: tuple[str, ...]) -> None:
    assert member_numbers(subject, text) == numbers


def test_every_number_word_the_regex_matches_holds_a_prefilter_word() -> None:
    """The prefilter (``NUMBER_WORDS``) is exact: each character of its words is matched by the
    regex's IGNORECASE only to characters that casefold to that very character."""
    chars = sorted(set("".join(NUMBER_WORDS)))
    either = re.compile("[" + re.escape("".join(chars)) + "]", re.IGNORECASE)
    wrong = [
        (char, hex(code)) for code in range(sys.maxunicode + 1) if either.fullmatch(chr(code))
        for char in chars if re.fullmatch(re.escape(char), chr(code), re.IGNORECASE) and chr(code).casefold() != char
    ]
    assert wrong == []
    for spelling in ("JÄSENNUMERO 1", "Jäsen Nro 1", "jäsen-numero 1", "MEDLEMSNR 1", "Membership No 1",
                     "MEMBER-NUMBER 1", "member number 1", "memberno 1", "Medlem\u017fnummer 1"):
        found = _NUMBER.search(spelling)
        assert found is not None and any(word in spelling.casefold() for word in NUMBER_WORDS), spelling


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["jäsen", "JÄSEN", "numero", "nro", "no", "ni", " ", "-", ":", "#", "on", "is",
                                 "medlems", "nummer", "member", "ship", "MEMBER", "\u017f", "12", "345", "x", "\n"]),
                max_size=12).map("".join))
def test_member_numbers_are_what_the_regex_alone_finds(text: str) -> None:
    assert member_numbers("", text) == tuple(dict.fromkeys(_NUMBER.findall(text)))


@pytest.mark.parametrize(
    ("by_address", "numbers", "by_number", "expected"),
    [
        (MATTI, (), {}, Link(MATTI, "address")),
        (MATTI, ("1001",), {"1001": MATTI}, Link(MATTI, "address")),
        (MATTI, ("9999",), {}, Link(MATTI, "address")),  # an unknown number changes nothing
        (MATTI, ("2002",), {"2002": ANNA}, Link(MATTI, "address", conflict="2002")),  # never overridden
        (MATTI, ("1001", "2002"), {"1001": MATTI, "2002": ANNA}, Link(MATTI, "address", conflict="2002")),
        (None, ("2002",), {"2002": ANNA}, Link(ANNA, "number")),  # writes from another address
        (None, ("9999", "2002"), {"2002": ANNA}, Link(ANNA, "number")),
        (None, ("9999",), {}, Link(None)),
        (None, (), {}, Link(None)),
    ],
    ids=["address", "address-same-number", "unknown-number", "conflict", "conflict-second", "number",
         "first-known-number", "unknown", "nothing"],
)
def test_link(by_address: Member | None, numbers: tuple[str, ...], by_number: dict[str, Member], expected: Link) -> None:
    assert link(by_address, numbers, by_number) == expected


def test_a_looked_up_member_without_id_is_the_same_as_its_number() -> None:
    looked_up = Member("1001", "matti@example.fi", {}, source="lookup")
    assert link(looked_up, ("1001",), {"1001": MATTI}).conflict is None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, None),
        ({}, None),
        ({"member_number": 123, "Osasto": "Oulu", "aktiivinen": True, "email": "x@y"},
         Member("123", "a@example.fi", {"Osasto": "Oulu", "aktiivinen": "true"}, source="lookup")),
        ({"Jäsennumero": " 77 ", "maksettu": None}, Member("77", "a@example.fi", {"maksettu": ""}, source="lookup")),
    ],
)
def test_from_lookup(answer: object, expected: Member | None) -> None:
    found = from_lookup(answer, "a@example.fi")
    assert (found and (found.member_number, found.email, dict(found.fields), found.source)) == (
        expected and (expected.member_number, expected.email, dict(expected.fields), expected.source))


@pytest.mark.parametrize("answer", [[1, 2], "text", 5])
def test_from_lookup_refuses_what_is_not_an_object(answer: object) -> None:
    with pytest.raises(ValueError):
        from_lookup(answer, "a@example.fi")


def test_fields_are_found_by_name_case_insensitively() -> None:
    assert MATTI.field(" OSASTO ") == "Tampereen osasto"
    assert MATTI.field("member_number") == "1001"
    assert MATTI.field("puuttuu") is None
    assert shown_fields(MATTI, ["osasto", "puuttuu", "Maksettu"]) == [("osasto", "Tampereen osasto"), ("Maksettu", "ei")]
    assert template_member(Link(None), ["osasto"]) is None
    assert template_member(Link(MATTI, "number", "5"), ["Osasto"]) == {
        "member_number": "1001", "fields": [("Osasto", "Tampereen osasto")], "linked_by": "number", "conflict": "5"}


# --- rules -------------------------------------------------------------------------------------

RULES = """\
queues:
  jasenasiat: {name: Jäsenasiat, address: jasenpalvelu@liitto.fi, default: true}
  hakemukset: {name: Hakemukset, address: hakemukset@liitto.fi}
  tampere: {name: Tampere, address: tampere@liitto.fi}
rules:
  - name: Hakemus ei-jäseneltä
    if: {member: false, subject: {contains: jäsenhakemus}}
    then: {queue: hakemukset}
  - name: Tampereen osasto
    if: {member: {OSASTO: {contains: tampere}}}
    then: {queue: tampere}
  - name: Maksamaton eroaja
    if:
      member: {maksettu: ei, Osasto: {regex: '\\bosasto$'}}
      subject: {contains: eroan}
    then: {tags: [maksamatta]}
  - name: Jäsen
    if: {member: true}
    then: {tags: [jasen]}
"""


def facts(subject: str, member: Member | None) -> Facts:
    return Facts("x@example.fi", ("jasenpalvelu@liitto.fi",), subject, "", {}, False, member=member)


@pytest.mark.parametrize(
    ("subject", "member", "queue", "tags"),
    [
        ("Jäsenhakemus", None, "hakemukset", ()),
        ("Jäsenhakemus", ANNA, "jasenasiat", ("jasen",)),  # a member's "application" is something else
        ("Kysymys", MATTI, "tampere", ("jasen",)),
        ("Eroan liitosta", MATTI, "tampere", ("maksamatta", "jasen")),
        ("Eroan liitosta", ANNA, "jasenasiat", ("jasen",)),  # paid
        ("Eroan liitosta", None, "jasenasiat", ()),  # not a member: no field matches
        ("Kysymys", Member("3", "c@example.fi", {}), "jasenasiat", ("jasen",)),  # a member without fields
    ],
)
def test_rules_on_the_register(subject: str, member: Member | None, queue: str, tags: tuple[str, ...]) -> None:
    decision = decide(facts(subject, member), parse_rules(RULES, "rules.yaml"))
    assert (decision.queue, decision.tags) == (queue, tags)


@pytest.mark.parametrize(
    ("condition", "error"),
    [
        ("{member: maybe}", "rules.yaml:5: rule 'r': member: expected true, false or register fields such as {maksettu: ei}, got 'maybe'"),
        ("{member: {}}", "rules.yaml:5: rule 'r': member: name at least one register field"),
        ("{member: {maksettu: {starts: e}}}", "rules.yaml:5: rule 'r': member maksettu: unknown operator 'starts'"),
        ("{member: {maksettu: {regex: '(a+)+'}}}", "rules.yaml:5: rule 'r': member maksettu:"),
        ("{membr: false}", "rules.yaml:5: rule 'r': unknown condition 'membr' (did you mean 'member'?)"),
    ],
)
def test_member_conditions_are_checked_with_their_line(condition: str, error: str) -> None:
    text = f"queues:\n  q: {{name: Q, address: q@liitto.fi, default: true}}\nrules:\n  - name: r\n    if: {condition}\n    then: {{priority: high}}\n"
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.yaml")
    assert caught.value.errors[0].startswith(error), caught.value.errors


@pytest.mark.parametrize(
    ("condition", "reads"),
    [("{subject: lasku}", False), ("{member: false}", True), ("{not: {member: {osasto: Oulu}}}", True),
     ("{any: [{subject: x}, {all: [{body: y}, {member: true}]}]}", True), ("{header: {X-Member: kyllä}}", False)],
)
def test_a_ruleset_knows_whether_it_reads_the_register(condition: str, reads: bool) -> None:
    text = f"queues:\n  q: {{name: Q, address: q@liitto.fi, default: true}}\nrules:\n  - name: r\n    if: {condition}\n    then: {{priority: high}}\n"
    assert parse_rules(text, "rules.yaml").uses_member is reads
