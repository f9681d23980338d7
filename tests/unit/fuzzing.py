"""Runs a harness of fuzz/ under atheris in a subprocess (libFuzzer runs once per process) for
the suite's short runs: tests/unit/test_fuzz_*.py. docs/fuzzing.md has the long runs."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNS = 10_000
#: Resident memory the short run may gain after its warm-up (a tenth of the run) before it counts
#: as a leak. The corpus libFuzzer keeps grows a little; a leak of even 100 bytes an input is 0.9 MB.
MAX_GROWTH_MB = 16


def run_harness(name: str, tmp_path: pathlib.Path, runs: int = RUNS) -> dict:
    cmd = [sys.executable, str(ROOT / "fuzz" / "run.py"), name, f"-runs={runs}", "-seed=1",
           "-timeout=10", "--corpus", str(tmp_path / "corpus"), "--artifacts", str(tmp_path),
           "--max-rss-growth-mb", str(MAX_GROWTH_MB)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    err = proc.stderr
    assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{err[-6000:]}"
    assert f"Done {runs} runs" in err, err[-3000:]
    summary = re.search(r"^fuzz-summary (.*)$", err, re.M)
    assert summary is not None, err[-3000:]
    fields = dict(pair.split("=", 1) for pair in summary.group(1).split())
    assert fields["harness"] == name and fields["outcome"] == "done", fields
    assert int(fields["inputs"]) == runs, fields
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))
    return fields
