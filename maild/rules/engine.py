"""Decide where a new message goes and what happens to it. Pure: no I/O, no clock, no database.

How one decision is made (docs/rules.md):

1. Queue by address: the first recipient (To, Cc, envelope, Delivered-To, in that
   order) that is a queue address, plus-addressing ignored.
2. Every rule whose condition matches applies, in file order, until one with
   ``stop``. A later value of ``queue``, ``priority``, ``category``, ``assign`` and
   ``ack`` overrides an earlier one; ``tags`` and ``notify`` accumulate;
   ``confidential`` and ``drop`` can only be switched on.
3. The queue a rule set wins over the address; without either, the default queue.
4. The decision is confidential when its queue is, or a rule said so. Then ``notify``
   keeps only that queue's staff and leads: the content never leaves them.
5. An assignee who is not staff of the final queue is dropped (a rule that sets no
   queue may name staff of another one; see :mod:`maild.rules.loader`).
"""

from __future__ import annotations

from collections.abc import Iterable

from maild.core.addresses import mailboxes
from maild.core.members import Member
from maild.mail import Parsed
from maild.rules.model import ASSIGN_STRATEGIES, Actions, Decision, Facts, Queue, RuleHit, RuleSet
from maild.rules.text import FactsView


def facts_from(
    parsed: Parsed, envelope_recipients: tuple[str, ...], channel: str = "email", member: Member | None = None,
) -> Facts:
    """What the rules may look at in ``parsed``; recipients in routing order, without repeats.
    ``member``: the register's member the mail is from (``maild.core.members.link``), if any."""
    delivered_to = [mailbox.address for mailbox in mailboxes(parsed.headers.get("delivered-to", ()))]
    recipients = (*parsed.to, *parsed.cc, *envelope_recipients, *delivered_to)
    return Facts(
        from_addr=parsed.from_addr.lower(),
        recipients=tuple(dict.fromkeys(address.strip().lower() for address in recipients if address.strip())),
        subject=parsed.subject,
        body=parsed.text,  # the parser has already made text of HTML-only mail
        headers=parsed.headers,
        has_attachment=bool(parsed.attachments),
        channel=channel,
        member=member,
    )


def decide(facts: Facts, rules: RuleSet) -> Decision:
    """What happens to a new message, and which rules said so (see the module docstring)."""
    addressed = _addressed_queues(facts.recipients, rules)
    hits = _matching_rules(FactsView(facts), rules)
    merged = _merge(hits)
    queue = _final_queue(merged, addressed, rules)
    confidential = queue.confidential or merged.confidential
    return Decision(
        queue=queue.id,
        other_queues=tuple(other.address for other in addressed if other.id != queue.id),
        priority=merged.priority or "normal",
        category=merged.category,
        tags=merged.tags,
        assign=_assignee(merged.assign, queue),
        ack=merged.ack,
        notify=_confidential_notify(merged.notify, queue) if confidential else merged.notify,
        confidential=confidential,
        drop=merged.drop,
        hits=hits,
        suggest=merged.suggest,
        answer=merged.answer,
    )


def _addressed_queues(recipients: tuple[str, ...], rules: RuleSet) -> list[Queue]:
    """The queues the mail was sent to, in recipient order, each once."""
    found = (rules.queue_for_address(address) for address in recipients)
    return list(dict.fromkeys(queue for queue in found if queue is not None))


def _matching_rules(view: FactsView, rules: RuleSet) -> tuple[RuleHit, ...]:
    hits = []
    for rule in rules.rules:
        if rule.condition.matches(view):
            hits.append(rule.hit)
            if rule.actions.stop:
                break
    return tuple(hits)


def _merge(hits: Iterable[RuleHit]) -> Actions:
    """Fold what the matched rules set: a later value wins, tags, notify and suggest accumulate.

    ``confidential`` and ``drop`` can only be set to true, so "later wins" keeps them on.
    """
    merged: dict[str, object] = {}
    lists: dict[str, dict[object, None]] = {"tags": {}, "notify": {}, "suggest": {}}
    for hit in hits:
        for key, value in hit.values.items():
            if key in lists:
                lists[key].update(dict.fromkeys(value))  # type: ignore[call-overload]
            else:
                merged[key] = value
    return Actions(**merged, tags=tuple(lists["tags"]), notify=tuple(lists["notify"]),  # type: ignore[arg-type]
                   suggest=tuple(lists["suggest"]))


def _final_queue(merged: Actions, addressed: list[Queue], rules: RuleSet) -> Queue:
    if merged.queue is not None:
        return rules.queues[merged.queue]
    return addressed[0] if addressed else rules.default_queue()


def _assignee(assign: str | None, queue: Queue) -> str | None:
    if assign is None or assign in ASSIGN_STRATEGIES or assign in queue.staff:
        return assign
    return None


def _confidential_notify(notify: tuple[str, ...], queue: Queue) -> tuple[str, ...]:
    return tuple(address for address in notify if address in queue.staff or address in queue.leads)
