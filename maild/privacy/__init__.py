"""GDPR: a member's data out (export, Art. 15), erased (Art. 17), and retention of closed tickets.

``erase.erase`` is the one core both ``maild members erase`` and the retention sweep use;
``scan`` finds what is left of a person in every table and file, and is what shows that
nothing remains.
"""
