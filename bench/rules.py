"""Benchmark of maild.rules.decide: N rules against M generated Finnish/Swedish messages.

    .venv/bin/python bench/rules.py [--rules 200] [--messages 10000] [--seed 1]

The rules are generated as rules.yaml text and go through the real loader, so the
regexes are compiled and checked as in production. They mix contains, regex and
header conditions nested in all/any/not. Prints the mean and p99 time per message,
which includes normalising the message's fields. The target is p99 < 1 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from maild.rules import Facts, decide, parse_rules
from maild.rules.model import RuleSet

STEMS = [
    "lasku", "jäsenmaksu", "eroilmoitu", "jäsenhakemu", "työsopimu", "irtisano", "lomaut",
    "palkka", "vuosiloma", "koulutus", "jäsenkortti", "vakuutus", "osoite", "työttömyyskassa",
    "ansiosidonnai", "luottamusmie", "työehtosopimu", "ylityö", "sairausloma", "opiskelija",
    "faktura", "medlemsavgift", "utträd", "arbetsavtal", "uppsägning", "semester", "lön",
    "försäkring", "studerande", "kurs",
]
SENTENCES = [
    "Hei, minulla olisi kysymys jäsenmaksusta.",
    "Laskussani on virhe, summa on liian suuri.",
    "Haluan erota liitosta vuoden lopussa.",
    "Työnantaja ilmoitti, että meidät lomautetaan kahdeksi viikoksi.",
    "Voiko jäsenmaksun maksaa kuukausittain e-laskulla?",
    "Osoitteeni on muuttunut, uusi osoite on Hämeentie 12 B 34, 00530 Helsinki.",
    "Olen ollut sairauslomalla, ja palkanmaksu on viivästynyt.",
    "Työsopimuksessani lukee, että koeaika on kuusi kuukautta.",
    "Kuuluuko ylityökorvaus maksaa myös lauantailta?",
    "Jäsenkorttini on kadonnut, voitteko lähettää uuden?",
    "Olen opiskelija ja haluaisin liittyä liittoon.",
    "Milloin ansiosidonnainen päiväraha maksetaan?",
    "Kiitos nopeasta vastauksesta, asia on nyt selvä.",
    "Hej, jag har en fråga om min medlemsavgift.",
    "Jag vill säga upp mitt medlemskap från och med nästa månad.",
    "Fakturan har fel belopp, kan ni skicka en ny?",
    "Min arbetsgivare har sagt upp mig, vad ska jag göra?",
    "Jag är studerande och vill bli medlem i förbundet.",
    "Semesterlönen betalades inte ut i juni.",
    "Tack för hjälpen, allt är klart nu.",
]
SUBJECTS = [
    "Kysymys", "Jäsenmaksu", "Eroilmoitus", "Laskussani on virhe", "Lomautus", "Osoitteenmuutos",
    "VS: Maksumuistutus", "Jäsenhakemus", "Työsopimus", "Fråga om fakturan", "Uppsägning",
    "SV: Medlemskap", "Re: [JP#1234] Jäsenkortti", "Ansökan om medlemskap", "",
]
SIGNATURE = "\n\n--\nYstävällisin terveisin / Med vänliga hälsningar\nMatti Meikäläinen\n040 123 4567\n"
MAILERS = ["Microsoft Outlook 16.0", "Apple Mail (2.3731)", "Thunderbird 115.4", "Roundcube Webmail/1.6"]


def generate_rules(count: int, rng: random.Random) -> str:
    """rules.yaml text with ``count`` generated rules of mixed kinds."""
    lines = [
        "queues:",
        "  jasenasiat: {name: Jäsenasiat, address: jasenpalvelu@liitto.fi, staff: [a@liitto.fi], default: true}",
        "  laskutus: {name: Laskutus, address: laskutus@liitto.fi, staff: [b@liitto.fi]}",
        "rules:",
    ]
    for index in range(count):
        actions = rng.choice(["{tags: [t%d]}", "{priority: high, tags: [t%d]}", "{category: c%d}", "{queue: laskutus, tags: [t%d]}"])
        lines.append(f"  - name: r{index}\n    if: {_condition(rng, depth=0)}\n    then: {actions % index}")
    return "\n".join(lines) + "\n"


def _condition(rng: random.Random, depth: int) -> str:
    if depth < 2 and rng.random() < 0.35:
        combinator = rng.choice(["all", "any", "any"])
        parts = ", ".join(_condition(rng, depth + 1) for _ in range(rng.randint(2, 4)))
        return f"{{{combinator}: [{parts}]}}"
    if depth > 0 and rng.random() < 0.1:
        return f"{{not: {_condition(rng, depth + 1)}}}"
    return _leaf(rng)


def _leaf(rng: random.Random) -> str:
    field = rng.choice(["subject", "body", "body"])
    stems = rng.sample(STEMS, rng.randint(1, 4))
    kind = rng.random()
    if kind < 0.4:
        return f"{{{field}: {{contains: [{', '.join(stems)}]}}}}"
    if kind < 0.75:
        return f"{{{field}: {{regex: '\\b(?:{'|'.join(stems)})\\w*'}}}}"
    if kind < 0.85:
        return f"{{{field}: {{regex: '\\b{stems[0]}.{{0,60}}\\b{rng.choice(STEMS)}'}}}}"
    if kind < 0.95:
        return f"{{header: {{X-Mailer: {{contains: {rng.choice(MAILERS).split()[0].lower()}}}}}}}"
    return f"{{from: {{regex: '@(?:example|esimerkki)\\.(?:fi|se)$'}}}}"


def generate_message(rng: random.Random) -> Facts:
    sentences = rng.choices(SENTENCES, k=rng.choice([2, 4, 8, 15, 30]))
    body = " ".join(sentences) + SIGNATURE
    if rng.random() < 0.3:  # a quoted earlier message, as replies carry
        body += "\n> " + "\n> ".join(rng.choices(SENTENCES, k=10))
    headers = {
        "received": tuple(f"from mx{i}.liitto.fi by smtp{i}.liitto.fi with ESMTPS" for i in range(3)),
        "x-mailer": (rng.choice(MAILERS),),
        "message-id": (f"<{rng.getrandbits(64):x}@example.fi>",),
        "content-type": ("text/plain; charset=utf-8",),
    }
    return Facts(
        from_addr=f"jasen{rng.randint(1, 5000)}@{rng.choice(['example.fi', 'esimerkki.se', 'gmail.com'])}",
        recipients=(rng.choice(["jasenpalvelu@liitto.fi", "laskutus@liitto.fi"]),),
        subject=rng.choice(SUBJECTS),
        body=body,
        headers=headers,
        has_attachment=rng.random() < 0.2,
    )


def measure(rules: RuleSet, messages: list[Facts]) -> list[float]:
    """Milliseconds per decide() call, one per message."""
    timings = []
    for message in messages:
        start = time.perf_counter_ns()
        decide(message, rules)
        timings.append((time.perf_counter_ns() - start) / 1e6)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    text = generate_rules(args.rules, rng)
    start = time.perf_counter()
    rules = parse_rules(text, "bench-rules.yaml")
    load_ms = (time.perf_counter() - start) * 1000
    messages = [generate_message(rng) for _ in range(args.messages)]
    mean_body = statistics.mean(len(message.body) for message in messages)

    measure(rules, messages[:500])  # warm up
    timings = sorted(measure(rules, messages))
    hits = statistics.mean(len(decide(message, rules).hits) for message in messages[:1000])

    print(f"{len(rules.rules)} rules loaded in {load_ms:.1f} ms; {len(messages)} messages, mean body {mean_body:.0f} chars")
    print(f"matching rules per message: {hits:.1f}")
    print(f"per message: mean {statistics.mean(timings):.3f} ms, p50 {timings[len(timings) // 2]:.3f} ms, "
          f"p99 {timings[int(len(timings) * 0.99)]:.3f} ms, max {timings[-1]:.3f} ms")


if __name__ == "__main__":
    main()
