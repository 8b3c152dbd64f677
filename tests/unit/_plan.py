"""Builders for the planner's table tests: readings, lookups and a policy, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from maild.core import threader
from maild.core.plan import AddEvent, Effect, Lookups, Policy, QueueMail, TicketFacts, TicketState, UpdateTicket
from maild.core.reading import ToFile
from maild.mail import Envelope, Parsed, Verdict
from maild.rules.engine import decide, facts_from
from maild.rules.loader import parse_rules

RULES = """\
queues:
  jasenasiat:
    name: Jäsenasiat
    address: jasenpalvelu@liitto.fi
    staff: [maija@liitto.fi, pekka@liitto.fi]
    language: fi
    default: true
  laskutus:
    name: Laskutus
    address: laskutus@liitto.fi
    staff: [lasse@liitto.fi, liisa@liitto.fi]
    language: fi
  laki:
    name: Lakineuvonta
    address: laki@liitto.fi
    staff: [hanna@liitto.fi]
    language: fi
    confidential: true
sla: {urgent: 4h, high: 1d, normal: 3d, low: 5d}
rules:
  - name: Laskutus
    if: {subject: {contains: [lasku]}}
    then: {queue: laskutus, assign: round-robin}
  - name: Hiljaa
    if: {subject: {contains: [hiljaa]}}
    then: {ack: false}
  - name: Roskaposti
    if: {subject: {contains: [viagra]}}
    then: {drop: true}
  - name: Laki
    if: {subject: {contains: [irtisanominen]}}
    then: {queue: laki}
"""

RULESET = parse_rules(RULES, "rules.yaml")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
POLICY = Policy(RULESET, "JP", ack_limit_per_hour=3)
MEMBER = "jasen@example.fi"


def parsed(subject: str = "Kysymys", sender: str = MEMBER, text: str = "Hei", cc: tuple[str, ...] = (),
           to: tuple[str, ...] = ("jasenpalvelu@liitto.fi",), message_id: str | None = "m1@example.fi",
           **extra: Any) -> Parsed:
    return Parsed(message_id=message_id, in_reply_to=(), references=(), subject=subject, from_addr=sender,
                  from_name="Jäsen", to=to, cc=cc, reply_to=(), date=None, headers={}, text=text, html=None,
                  fingerprint="v2:" + subject + text + sender, **extra)


def to_file(p: Parsed | None = None, machine: str = "normal", recipients: tuple[str, ...] = (),
            policy: Policy = POLICY) -> ToFile:
    p = p or parsed()
    envelope = Envelope("smtp", None, recipients or p.to)
    keys = threader.keys(p, envelope, policy.tag_prefix, policy.rules.addresses())
    decision = decide(facts_from(p, envelope.recipients), policy.rules)
    return ToFile(envelope, p, Verdict(machine, "" if machine == "normal" else "because"), p.from_addr, keys, decision)


def ticket(**changes: Any) -> TicketState:
    base = TicketState(id=7, number=12, queue="jasenasiat", status="open", requester=MEMBER, subject="Kysymys")
    return replace(base, **changes)


def facts(**changes: Any) -> TicketFacts:
    fields = {k: changes.pop(k) for k in list(changes) if k in TicketFacts.__dataclass_fields__}
    return TicketFacts(ticket(**changes), **fields)


def found_ticket(state: TicketState, via: str = "tag", **extra: Any) -> Lookups:
    ref = state.ref()
    found = {"tag": threader.Found(tag_tickets=(ref,)), "token": threader.Found(token_ticket=ref, **extra),
             "references": threader.Found(reference_ticket=ref)}[via]
    return Lookups(found=found, ticket=TicketFacts(state))


def events(effects: tuple[Effect, ...]) -> list[str]:
    return [str(e.kind) for e in effects if isinstance(e, AddEvent)]


def mails(effects: tuple[Effect, ...]) -> list[tuple[str, str]]:
    return [(str(e.kind), e.notice) for e in effects if isinstance(e, QueueMail)]


def changes(effects: tuple[Effect, ...]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for effect in effects:
        if isinstance(effect, UpdateTicket):
            merged.update(effect.changes)
    merged.pop("updated_at", None)
    return merged
