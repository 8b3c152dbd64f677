"""The rules.yaml shipped at the top of the repository, against real member mail.

Each case is a sentence a member could write, in Finnish or Swedish, and where it
should land. Finnish inflects heavily, so the cases use inflected forms on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from maild.rules import Facts, decide, load_rules
from maild.rules.model import RuleSet

RULES_FILE = Path(__file__).resolve().parents[2] / "rules.yaml"


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(RULES_FILE)


class Route(NamedTuple):
    queue: str
    priority: str = "normal"
    category: str | None = None
    confidential: bool = False


RESIGNATION = Route("jasenasiat", "high", "eroaminen")
APPLICATION = Route("jasenhakemukset", "high", "jäsenhakemus")
INVOICE = Route("laskutus", "normal", "laskutus")
LEGAL = Route("lakineuvonta", "normal", "lakiasia", confidential=True)
COMPLAINT = Route("jasenasiat", "normal", "reklamaatio")
ORDINARY = Route("jasenasiat")

# (subject, body, route); all mail sent to jasenpalvelu@liitto.fi
MAIL = [
    # resignations
    ("Haluan erota liitosta 31.12. alkaen", "", RESIGNATION),
    ("Eroilmoitus", "", RESIGNATION),
    ("EROILMOITUS", "Liitteenä eroilmoitukseni.", RESIGNATION),
    ("Jäsenyys", "Hei! Ilmoitan eroamisesta liitosta vuoden lopussa.", RESIGNATION),
    ("Kysymys", "Voinko erota kesken vuoden, jos jäsenmaksu on jo maksettu?", RESIGNATION),
    ("Eroan liitosta", "", RESIGNATION),
    ("Jäsenyyden irtisanominen", "", RESIGNATION),
    ("", "Haluan irtisanoa jäsenyyteni heti.", RESIGNATION),
    ("Eroa liitosta", "Pyydän eroa liitosta eläkkeelle jäämisen vuoksi.", RESIGNATION),
    ("Jag vill säga upp mitt medlemskap", "", RESIGNATION),
    ("Utträde ur förbundet", "", RESIGNATION),
    ("Medlemskap", "Hej, jag vill säga upp\nmedlemskapet från och med januari.", RESIGNATION),
    # membership applications
    ("Jäsenhakemus", "", APPLICATION),
    ("Liittyminen liittoon", "", APPLICATION),
    ("Kysymys", "Haluan liittyä liittoon, miten toimin?", APPLICATION),
    ("Jäsenyys", "Voinko liittyä jäseneksi, vaikka olen opiskelija?", APPLICATION),
    ("Liittymislomake ei toimi", "", APPLICATION),
    ("Ansökan om medlemskap", "", APPLICATION),
    ("Fråga", "Hur blir man medlem i förbundet?", APPLICATION),
    # invoices and fees
    ("Kysymys jäsenmaksun suuruudesta", "", INVOICE),
    ("Laskussani on virhe", "", INVOICE),
    ("Lasku", "Sain kaksi laskua samasta kuukaudesta.", INVOICE),
    ("Jäsenmaksusta", "Voiko jäsenmaksuni maksaa kuukausittain?", INVOICE),
    ("VS: Maksumuistutus", "Maksoin laskun jo viime viikolla.", INVOICE),
    ("E-lasku", "Miten saan e-laskun käyttöön?", INVOICE),
    ("Faktura för medlemsavgift", "", INVOICE),
    ("Fakturan", "Jag har fått fakturan två gånger.", INVOICE),
    ("Kysymys", "Kysymykseni liittyy jäsenmaksuun.", INVOICE),  # "liittyy" = relates to: not an application
    # legal questions: confidential
    ("Työnantaja irtisanoi minut, tarvitsen lakimiestä", "", LEGAL),
    ("Työsopimukseni ehdot", "", LEGAL),
    ("Apua", "Minut irtisanottiin eilen ilman varoitusta.", LEGAL),
    ("Kysymys työsopimuksen koeajasta", "", LEGAL),
    ("Lomautus", "Meidät lomautettiin kahdeksi viikoksi.", LEGAL),
    ("Juridisk fråga", "Gäller mitt arbetsavtal.", LEGAL),
    ("Uppsägning", "Jag blev uppsagd i går.", LEGAL),
    # complaints go to the service manager
    ("Reklamaatio", "Palvelu oli huonoa.", COMPLAINT),
    ("Valitus palvelusta", "", COMPLAINT),
    # ordinary mail stays in jasenasiat at normal priority
    ("Osoitteenmuutos", "Uusi osoitteeni on Mannerheimintie 1 A, 00100 Helsinki.", Route("jasenasiat", category="yhteystiedot")),
    ("Osoitteeni on muuttunut", "", Route("jasenasiat", category="yhteystiedot")),  # inflected: osoite -> osoitteeni
    ("Osoite muuttui", "", Route("jasenasiat", category="yhteystiedot")),
    ("Eroilmoitus", "Osoitteeni on muuttunut, ja eroan liitosta.", RESIGNATION),  # the specific category wins
    ("Jäsenkortti", "Valitettavasti jäsenkorttini on kadonnut.", Route("jasenasiat", category="jäsenkortti")),
    ("Erotuomarikurssi", "Järjestääkö liitto erotuomarikoulutusta?", ORDINARY),
    ("Liittyen edelliseen viestiini", "Tämä voi liittyä aiempaan kysymykseeni.", ORDINARY),
    ("Ero", "Mikä on ero ansiosidonnaisen ja peruspäivärahan välillä?", ORDINARY),
    ("Koulutus", "Minut valittiin luottamusmieheksi, onko koulutusta?", ORDINARY),
]


@pytest.mark.parametrize(("subject", "body", "route"), MAIL, ids=[f"{s or b}"[:40] for s, b, _ in MAIL])
def test_member_mail_is_routed(rules: RuleSet, subject: str, body: str, route: Route) -> None:
    mail = Facts("jasen@example.fi", ("jasenpalvelu@liitto.fi",), subject, body, {}, False)

    decision = decide(mail, rules)

    assert Route(decision.queue, decision.priority, decision.category, decision.confidential) == route


# (subject, body, canned answer sent at once, answers suggested to staff)
SELF_SERVICE = [
    ("Paljonko jäsenmaksu on?", "", "jasenmaksu", ("jasenmaksu",)),
    ("Kysymys", "Hei, mikä on jäsenmaksun suuruus opiskelijalle?", "jasenmaksu", ("jasenmaksu",)),
    ("Vad kostar medlemsavgiften?", "", "jasenmaksu", ("jasenmaksu",)),
    ("Laskussani on virhe", "", None, ("jasenmaksu",)),
    ("Jäsenkortti", "Missä jäsenkorttini on?", "jasenkortti", ()),
    ("Medlemskortet", "", "jasenkortti", ()),
    ("Eroilmoitus", "", None, ("eroaminen",)),
    ("Osoitteenmuutos", "", None, ("yhteystiedot",)),
    ("Ansiopäiväraha", "Miten haen ansiosidonnaista?", None, ("tyottomyyskassa",)),
    ("Työnantaja irtisanoi minut", "", None, ()),  # legal advice: never a canned answer
]


@pytest.mark.parametrize(("subject", "body", "answer", "suggest"), SELF_SERVICE,
                         ids=[f"{s or b}"[:40] for s, b, _, _ in SELF_SERVICE])
def test_frequent_questions_get_canned_answers(rules: RuleSet, subject: str, body: str, answer: str | None,
                                               suggest: tuple[str, ...]) -> None:
    decision = decide(Facts("jasen@example.fi", ("jasenpalvelu@liitto.fi",), subject, body, {}, False), rules)

    assert (decision.answer, decision.suggest) == (answer, suggest)


def test_an_address_routes_when_no_rule_does(rules: RuleSet) -> None:
    mail = Facts("jasen@example.fi", ("laskutus@liitto.fi",), "Osoitteenmuutos", "", {}, False)

    assert decide(mail, rules).queue == "laskutus"


def test_mail_to_the_legal_address_is_confidential(rules: RuleSet) -> None:
    mail = Facts("jasen@example.fi", ("lakineuvonta@liitto.fi",), "Kysymys", "", {}, False)

    decision = decide(mail, rules)

    assert (decision.queue, decision.confidential) == ("lakineuvonta", True)


def test_complaints_are_assigned_to_the_service_manager(rules: RuleSet) -> None:
    mail = Facts("jasen@example.fi", ("jasenpalvelu@liitto.fi",), "Reklamaatio", "", {}, False)

    assert decide(mail, rules).assign == "anna.nieminen@liitto.fi"


def test_a_complaint_about_a_dismissal_goes_to_legal_without_the_manager(rules: RuleSet) -> None:
    mail = Facts("jasen@example.fi", ("jasenpalvelu@liitto.fi",), "Valitus", "Minut irtisanottiin.", {}, False)

    decision = decide(mail, rules)

    assert (decision.queue, decision.assign, decision.confidential) == ("lakineuvonta", None, True)
    assert [hit.name for hit in decision.hits] == ["Reklamaatiot palvelupäällikölle", "Lakiasiat lakineuvontaan"]


def test_swedish_mail_is_tagged(rules: RuleSet) -> None:
    mail = Facts("medlem@example.se", ("jasenpalvelu@liitto.fi",), "Fråga", "Hej! Jag har en fråga om min adress.", {}, False)

    assert decide(mail, rules).tags == ("svenska",)


def test_spam_is_dropped_and_nothing_else_applies(rules: RuleSet) -> None:
    mail = Facts("x@spam.example", ("jasenpalvelu@liitto.fi",), "Lasku", "", {"x-spam-flag": ("YES",)}, False)

    decision = decide(mail, rules)

    assert decision.drop is True
    assert [hit.name for hit in decision.hits] == ["Roskaposti karanteeniin"]


def test_shipped_settings(rules: RuleSet) -> None:
    assert set(rules.queues) == {"jasenasiat", "jasenhakemukset", "laskutus", "lakineuvonta"}
    assert rules.default_queue().address == "jasenpalvelu@liitto.fi"
    assert [queue.id for queue in rules.queues.values() if queue.confidential] == ["lakineuvonta"]
    assert rules.queues["lakineuvonta"].leads
    assert {priority: duration.raw for priority, duration in rules.sla.items()} == {
        "urgent": "4h",
        "high": "1d",
        "normal": "3d",
        "low": "5d",
    }
    assert rules.business_hours.holidays == "FI"
