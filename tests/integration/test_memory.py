"""Contract 6 and issue 12: a big message is processed in bounded memory (`maild ingest`).

The peak is the child's VmHWM (the high-water mark of its own address space): ``ru_maxrss``
of a child would count this test process's memory too, which the child shares until its exec.
"""

from __future__ import annotations

import email.message
import email.utils
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import MakeInstance, maild_env

MB = 1_000_000
PEAK = ("import sys\nfrom maild.cli import main\ntry:\n    main()\nfinally:\n"
        "    print(*[l for l in open('/proc/self/status') if l.startswith('VmHWM')], file=sys.stderr)\n")


def peak_of_ingest(config: Path, message: Path) -> int:
    """Bytes of peak RSS of `maild ingest MESSAGE`, run as a child process."""
    result = subprocess.run(
        [sys.executable, "-c", PEAK, "--config", str(config), "ingest", "--recipient", "jasenpalvelu@liitto.fi",
         str(message)],
        capture_output=True, timeout=300, env=maild_env(),
    )
    assert result.returncode == 0, result.stderr
    assert b": new:" in result.stderr, result.stderr
    found = re.search(rb"VmHWM:\s+(\d+) kB", result.stderr)
    assert found, result.stderr
    return int(found.group(1)) * 1024


def member_mail(attachment: bytes | None) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "matti@example.fi", "jasenpalvelu@liitto.fi", "Liitteenä palkkatodistus"
    msg["Message-ID"] = email.utils.make_msgid(domain="example.fi")
    msg.set_content("Liitteenä palkkatodistukseni.")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="pdf", filename="palkkatodistus.pdf")
    return bytes(msg)


def test_ingest_of_a_25_mb_message_costs_a_few_times_its_size(make_instance: MakeInstance, sqlite_url: str,
                                                             tmp_path: Path) -> None:
    """Before: 370 MB at the peak, 275 MB more than a small message; now about 95 MB more."""
    config = make_instance(sqlite_url)
    small, big = tmp_path / "small.eml", tmp_path / "big.eml"
    small.write_bytes(member_mail(None))
    big.write_bytes(member_mail(os.urandom(18 * 1024 * 1024)))
    assert big.stat().st_size > 24 * MB
    baseline = peak_of_ingest(config, small)
    cost = peak_of_ingest(config, big) - baseline
    assert cost < 150 * MB, f"{cost / MB:.0f} MB over the {baseline / MB:.0f} MB of a small message"
