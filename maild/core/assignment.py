"""Who gets a new ticket (docs/rules.md, ``assign``). Pure: the store supplies turn and load."""

from __future__ import annotations

from collections.abc import Mapping


def pick_assignee(
    how: str | None, staff: tuple[str, ...], turn: int = 0, load: Mapping[str, int] | None = None
) -> str | None:
    """A staff address for ``how``: an address, ``round-robin`` or ``least-loaded``.

    ``turn`` is a counter kept in the database (fair across restarts and instances);
    ``load`` counts open tickets per staff member in the queue. Ties go to the one listed
    first in rules.yaml.
    """
    if not how:
        return None
    if how == "round-robin":
        return staff[turn % len(staff)] if staff else None
    if how == "least-loaded":
        if not staff:
            return None
        counts = load or {}
        return min(staff, key=lambda member: (counts.get(member, 0), staff.index(member)))
    return how.lower()
