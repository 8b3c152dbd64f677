"""Each atheris target, run for a few seconds as a subprocess (libFuzzer exits non-zero on a
finding, a hang over ``-timeout`` or a memory blow-up). Long runs: see each target's docstring."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

HERE = Path(__file__).resolve().parent
SEEDS = {"fuzz_parse.py": [HERE.parent / "corpus"], "fuzz_smtp_data.py": []}


@pytest.mark.parametrize("target", sorted(SEEDS))
def test_target_finds_nothing(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"  # libFuzzer writes new inputs here, never into the repository
    corpus.mkdir()
    command = [
        sys.executable, str(HERE / target), str(corpus), *map(str, SEEDS[target]),
        f"-dict={HERE / 'mail.dict'}", "-max_total_time=10", "-timeout=10", "-rss_limit_mb=1024", "-seed=1",
        f"-artifact_prefix={tmp_path}/", "-print_final_stats=1",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    runs = [line for line in done.stderr.splitlines() if line.startswith("stat::number_of_executed_units")]
    assert done.returncode == 0, done.stderr[-4000:]
    assert runs and int(runs[0].split(":")[-1]) > 100, done.stderr[-2000:]  # it did fuzz
