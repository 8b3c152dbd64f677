"""Reports for team leads (docs/coming.md#reports-and-privacy): ``maild report`` and the weekly mail.

``figures`` computes (pure), ``query`` reads, ``build`` puts them together, ``text``,
``html`` and ``svg`` render, ``weekly`` sends the Monday mail from the scheduler.
"""
