"""Peak memory of `maild ingest` for one big message (issue 13's target: <= 150 MB RSS).

    .venv/bin/python bench/memory.py [--attachment-mib 18] [--keep DIR]

Makes a fresh instance (`maild init`) in a temporary directory, writes a message of about
25 MB (a short text and an 18 MiB PDF-like attachment, base64-encoded), and runs the real
command line, `maild ingest FILE`, in a child process. Prints the message size, the outcome,
the wall time and the child's peak resident set size (its VmHWM, read by the child as it
ends: ``ru_maxrss`` would count this process's memory too, shared until the exec). A run
on a tiny message first tells the fixed cost of the interpreter and the imports apart
from what the message costs.

Measured (2 cores, Python 3.11): before issue 13, 97 MB small and 193 MB big; after it,
97 MB and 112 MB, of which 26 MB are the command line reading the whole file to store it
(96 MB with ``stage_stream``: the big message then costs under 1 MB more than a small one).
"""

from __future__ import annotations

import argparse
import base64
import email.message
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_big_message(path: Path, attachment_mib: int) -> None:
    """A member's mail with one attachment of ``attachment_mib`` MiB (random, so incompressible),
    written a chunk at a time: the benchmark itself stays small, and a child's peak RSS counts
    its parent's memory up to the exec."""
    boundary = f"===============maild-bench-{time.time_ns()}=="
    head = (
        f"From: matti@example.fi\r\nTo: jasenpalvelu@liitto.fi\r\nSubject: Liitteenä palkkatodistus\r\n"
        f"Message-ID: <big-{os.getpid()}-{time.time_ns()}@example.fi>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"Hei,\r\n\r\nliitteenä palkkatodistukseni.\r\n\r\nMatti\r\n"
        f"--{boundary}\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="palkkatodistus.pdf"\r\n\r\n'
    )
    with path.open("wb") as out:
        out.write(head.encode("utf-8"))
        chunk = 57 * 1024  # 57 bytes make one 76-character base64 line
        for _ in range(attachment_mib * 1024 * 1024 // chunk + 1):
            encoded = base64.b64encode(os.urandom(chunk))
            out.write(b"\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76)) + b"\r\n")
        out.write(f"--{boundary}--\r\n".encode("ascii"))


def small_message() -> bytes:
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "maija@example.fi", "jasenpalvelu@liitto.fi", "Kysymys"
    msg["Message-ID"] = f"<small-{os.getpid()}-{time.time_ns()}@example.fi>"
    msg.set_content("Hei, onko jäsenmaksu jo maksettu?\n")
    return bytes(msg)


# `maild` as its console script runs it, then the high-water mark of its own resident set
PEAK = ("import sys\nfrom maild.cli import main\ntry:\n    main()\nfinally:\n"
        "    print(*[l for l in open('/proc/self/status') if l.startswith('VmHWM')], file=sys.stderr)\n")


def ingest(config: Path, message: Path) -> tuple[str, float, int]:
    """Run `maild ingest` in a child process; return its outcome line, wall seconds and peak RSS in bytes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", PEAK, "--config", str(config), "ingest", "--recipient", "jasenpalvelu@liitto.fi",
         str(message)],
        capture_output=True, env=env,
    )
    elapsed = time.perf_counter() - started
    text = (child.stdout + child.stderr).decode(errors="replace")
    found = re.search(r"VmHWM:\s+(\d+) kB", text)
    if child.returncode != 0 or not found:
        raise SystemExit(f"maild ingest failed ({child.returncode}): {text}")
    outcome = next(line for line in text.splitlines() if line.startswith(("1:", "2:")))
    return outcome, elapsed, int(found.group(1)) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attachment-mib", type=int, default=18)
    parser.add_argument("--keep", type=Path, help="make the instance here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maild-memory-") as tmp:
        root = args.keep or Path(tmp)
        subprocess.run([sys.executable, "-m", "maild", "init", str(root / "inst")], check=True, capture_output=True)
        config = root / "inst" / "maild.toml"
        small, big = root / "small.eml", root / "big.eml"
        small.write_bytes(small_message())
        write_big_message(big, args.attachment_mib)
        for name, path in (("small", small), ("big", big)):
            outcome, elapsed, peak = ingest(config, path)
            print(f"{name:5} {path.stat().st_size / 1e6:7.1f} MB message: {outcome:12} {elapsed:5.2f} s, "
                  f"peak RSS {peak / 1e6:6.1f} MB")


if __name__ == "__main__":
    main()
