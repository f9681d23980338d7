"""Run one of wasp's coverage-guided fuzz harnesses under atheris (libFuzzer).

    .venv/bin/python fuzz/run.py http1 -runs=1000000 -timeout=10
    .venv/bin/python fuzz/run.py frames -runs=10000 -seed=1 --corpus /tmp/c --max-rss-growth-mb 64
    .venv/bin/python fuzz/run.py http1 crash-1234abcd        # replay one input (libFuzzer does)

A harness is one module in this directory (`fuzz/<name>.py`) that defines

* `test_one_input(data: bytes) -> None`: feed the bytes to the code under test and assert its
  properties; an exception is a finding;
* `seeds() -> Iterable[bytes]`: the starting corpus (written into the working corpus directory).

Adding a harness (HTTP/2, the TLS ClientHello path, ...) is one file with those two names; this
runner does the rest: it instruments `wasp` for coverage while the harness imports it, seeds the
corpus, passes libFuzzer's own flags through, and counts inputs and watches the process's resident
memory, so that every run ends with one summary line:

    fuzz-summary harness=http1 inputs=1000000 rss_warm_mb=52.1 rss_end_mb=52.9 rss_growth_mb=0.8 ...

libFuzzer reports crashes (a Python exception: exit code 1, the input saved as
`<artifacts>/crash-*`) and hangs (`-timeout`, default 10 s here: exit code 70, `timeout-*`).
Leaks: the resident set size is sampled after a warm-up (a tenth of the run, when the corpus and
every lazily built cache exist) and at the end; a growth over `--max-rss-growth-mb` ends the run
with exit code 3 and says LEAK. libFuzzer's own `-rss_limit_mb` (1024 here) stays as a backstop.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXIT_LEAK = 3


def rss_mb() -> float:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


class Watch:
    """Counts inputs and samples RSS; prints the summary when libFuzzer's -runs is reached (libFuzzer
    ends the process with exit(), which runs no Python atexit handler)."""

    def __init__(self, name: str, runs: int, max_growth_mb: float):
        self.name = name
        self.runs = runs
        self.max_growth = max_growth_mb
        self.inputs = 0
        self.started = time.monotonic()
        self.rss_first = rss_mb()
        self.rss_warm = None
        self.rss_max = self.rss_first
        self.warm_at = max(1, runs // 10) if runs > 0 else 10000
        self.sample_every = 1000

    def wrap(self, test_one_input):
        def one(data: bytes) -> None:
            self.inputs += 1
            n = self.inputs
            if n == self.warm_at:
                self.rss_warm = rss_mb()
            if n % self.sample_every == 0:
                self.rss_max = max(self.rss_max, rss_mb())
            try:
                test_one_input(data)
            except BaseException:
                self.summary("crash")
                raise
            if n == self.runs:
                self.finish()
        return one

    def summary(self, outcome: str) -> float:
        end = rss_mb()
        warm = self.rss_warm if self.rss_warm is not None else self.rss_first
        growth = end - warm
        print(f"fuzz-summary harness={self.name} outcome={outcome} inputs={self.inputs} "
              f"seconds={time.monotonic() - self.started:.0f} rss_first_mb={self.rss_first:.1f} "
              f"rss_warm_mb={warm:.1f} rss_end_mb={end:.1f} rss_max_mb={max(self.rss_max, end):.1f} "
              f"rss_growth_mb={growth:.1f}", file=sys.stderr, flush=True)
        return growth

    def finish(self) -> None:
        sys.stderr.flush()
        growth = self.summary("done")
        if growth > self.max_growth:
            print(f"LEAK: resident memory grew {growth:.1f} MB after warm-up "
                  f"(limit {self.max_growth} MB)", file=sys.stderr, flush=True)
            os._exit(EXIT_LEAK)


def write_seeds(corpus: Path, seeds) -> int:
    corpus.mkdir(parents=True, exist_ok=True)
    n = 0
    for data in seeds:
        (corpus / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)
        n += 1
    return n


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], add_help=True)
    parser.add_argument("harness", help="a module in fuzz/: " + ", ".join(harnesses()))
    parser.add_argument("--corpus", type=Path, help="working corpus directory "
                        "(default fuzz/work/<harness>/corpus; libFuzzer adds the inputs it keeps)")
    parser.add_argument("--artifacts", type=Path, help="where crash-*/timeout-* inputs go "
                        "(default fuzz/work/<harness>/)")
    parser.add_argument("--max-rss-growth-mb", type=float, default=64.0,
                        help="resident memory growth after warm-up that counts as a leak")
    ours, libfuzzer = parser.parse_known_args(argv[1:])
    name = ours.harness
    if name not in harnesses():
        parser.error(f"no harness {name!r} in {HERE}")
    work = HERE / "work" / name
    corpus = ours.corpus or work / "corpus"
    artifacts = ours.artifacts or work
    artifacts.mkdir(parents=True, exist_ok=True)
    replay = [a for a in libfuzzer if not a.startswith("-")]

    import atheris  # the fuzz extra: pip install -e '.[fuzz]'

    sys.path.insert(0, str(HERE))
    with atheris.instrument_imports(include=["wasp"]):
        module = importlib.import_module(name)

    flags = {a.split("=", 1)[0] for a in libfuzzer if a.startswith("-")}
    defaults = {"-timeout": "10", "-rss_limit_mb": "1024", "-max_len": "4096",
                "-artifact_prefix": str(artifacts) + "/"}
    args = [argv[0]] + [f"{k}={v}" for k, v in defaults.items() if k not in flags]
    args += [a for a in libfuzzer if a.startswith("-")]
    if replay:
        args += replay
    else:
        write_seeds(corpus, module.seeds())
        args.append(str(corpus))
    runs = -1
    for a in libfuzzer:
        if a.startswith("-runs="):
            runs = int(a.split("=", 1)[1])
    watch = Watch(name, runs, ours.max_rss_growth_mb)
    atheris.Setup(args, watch.wrap(module.test_one_input))
    atheris.Fuzz()


def harnesses() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem not in ("run", "__init__")
                  and not p.stem.startswith("_"))


if __name__ == "__main__":
    main()
