"""atheris fuzz target: ``maild.core.parse.parse_message`` on arbitrary bytes.

Invariant: it returns a ``Parsed`` whose strings hold no NUL and no lone surrogate, or it
raises ``ParseError``; any other exception (or a hang, see ``-timeout``) is a finding.

Long run (new inputs go to the first directory; the shipped corpus only seeds it; with
MAILD_FUZZ_FINDINGS the run records each distinct finding and goes on)::

    mkdir -p /tmp/fuzz-parse
    MAILD_FUZZ_FINDINGS=/tmp/fuzz-parse-findings nice -n 19 \\
        python tests/fuzz/fuzz_parse.py /tmp/fuzz-parse tests/corpus \\
        -dict=tests/fuzz/mail.dict -max_total_time=3600 -timeout=20 -rss_limit_mb=2048 -artifact_prefix=/tmp/fuzz-parse-
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout, when run as a script

with atheris.instrument_imports():
    import email  # noqa: F401  (instrumented: coverage guides the fuzzer through the stdlib parser too)
    import mailparser  # noqa: F401
    from maild.core.parse import ParseError, parse_message

from tests.fuzz.harness import fuzz  # noqa: E402
from tests.fuzz.invariants import check_strings  # noqa: E402


def one_input(data: bytes) -> None:
    try:
        parsed, _ = parse_message(data)
    except ParseError:
        return
    check_strings(parsed)


if __name__ == "__main__":
    fuzz(one_input)
