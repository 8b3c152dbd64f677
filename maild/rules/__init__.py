"""Routing rules: ``rules.yaml`` loaded into a frozen :class:`RuleSet`, and a pure :func:`decide`.

``loader`` reads and validates the file; ``engine`` decides for one message;
``model`` holds the values both share; ``text`` is the normalisation that
patterns and message fields go through.
"""

from maild.rules.engine import decide, facts_from
from maild.rules.loader import RulesError, load_rules, parse_rules
from maild.rules.model import Decision, Facts, Queue, RuleHit, RuleSet

__all__ = [
    "Decision",
    "Facts",
    "Queue",
    "RuleHit",
    "RuleSet",
    "RulesError",
    "decide",
    "facts_from",
    "load_rules",
    "parse_rules",
]
