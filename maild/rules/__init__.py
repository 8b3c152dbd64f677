"""Routing rules: ``rules.yaml`` loaded into a frozen :class:`RuleSet`, and a pure :func:`decide`.

``loader`` reads and validates the file; ``engine`` decides for one message;
``model`` holds the values both share; ``text`` is the normalisation that
patterns and message fields go through.

The names below are imported on first use (PEP 562): importing ``maild.rules.model``
(as ``maild.core`` does) must not load the loader and YAML with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maild.rules.engine import decide, facts_from
    from maild.rules.loader import RulesError, load_rules, parse_rules
    from maild.rules.model import Decision, Facts, Queue, RuleHit, RuleSet

_HOME = {
    "decide": "engine",
    "facts_from": "engine",
    "RulesError": "loader",
    "load_rules": "loader",
    "parse_rules": "loader",
    "Decision": "model",
    "Facts": "model",
    "Queue": "model",
    "RuleHit": "model",
    "RuleSet": "model",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
