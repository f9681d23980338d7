"""Does compiling the front's hot modules pay? Build and measure, pure against compiled.

Exports the working tree's committed HEAD twice into a temp dir (`git archive`), compiles the
chosen modules of one copy with Cython (pure-Python mode: the .py files as they are, no .pxd, no
type declarations; `annotation_typing` off so that an annotation never changes what a function
accepts), then runs `bench/hotpath.py` in each copy in turn, --rounds times, and prints every
round and the best of each. Needs Cython and a C compiler (`pip install cython` into the venv;
neither is a wasp dependency). docs/performance.md has the result and why wasp ships no build.

    python bench/compiled.py                       # the default module set, 3 rounds
    python bench/compiled.py --binding false       # Cython's binding=False variant
    python bench/compiled.py --modules wasp/wire/frames.py,wasp/front/cache.py
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: What the profiles of the relay and the cache hit spend their time in (bench/hotpath.py --profile).
MODULES = ["wasp/front/connection.py", "wasp/front/response.py", "wasp/front/request.py",
           "wasp/front/workers.py", "wasp/front/endings.py", "wasp/front/queues.py",
           "wasp/front/cache.py", "wasp/front/server.py", "wasp/front/metrics.py",
           "wasp/front/accesslog.py", "wasp/front/routing.py", "wasp/wire/frames.py", "wasp/wire/w3c.py"]

SETUP = """
from setuptools import setup
from Cython.Build import cythonize
setup(packages=[], ext_modules=cythonize({modules!r}, language_level=3, quiet=True,
      compiler_directives={{"annotation_typing": False, "binding": {binding}}}))
"""


def export(dest: Path) -> None:
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def hotpath(tree: Path, batches: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("WASP_PURE_PYTHON", None)
    out = subprocess.run([sys.executable, "bench/hotpath.py", "--batches", str(batches), "--n", "300"],
                         cwd=tree, env=env, check=True, capture_output=True, text=True).stdout
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\w+): ([\d.]+) µs/request", out, re.M)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modules", default=",".join(MODULES))
    ap.add_argument("--binding", choices=["true", "false"], default="true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, default=60)
    args = ap.parse_args()
    modules = [m for m in args.modules.split(",") if m]
    with tempfile.TemporaryDirectory(prefix="wasp-compiled-") as tmp:
        pure, compiled = Path(tmp) / "pure", Path(tmp) / "compiled"
        export(pure)
        export(compiled)
        (compiled / "cy_setup.py").write_text(SETUP.format(modules=modules, binding=args.binding == "true"))
        print(f"compiling {len(modules)} modules with Cython (binding={args.binding}) ...", flush=True)
        subprocess.run([sys.executable, "cy_setup.py", "build_ext", "--inplace", "-j", "2"], cwd=compiled,
                       check=True, capture_output=True)
        best: dict[str, dict[str, float]] = {"pure": {}, "compiled": {}}
        for r in range(args.rounds):
            for name, tree in (("pure", pure), ("compiled", compiled)):
                got = hotpath(tree, args.batches)
                print(f"round {r + 1} {name:8} " + "  ".join(f"{k} {v:.2f} µs" for k, v in got.items()), flush=True)
                for k, v in got.items():
                    best[name][k] = min(v, best[name].get(k, v))
        for k in best["pure"]:
            p, c = best["pure"][k], best["compiled"][k]
            print(f"best {k}: pure {p:.2f} µs, compiled {c:.2f} µs ({(c - p) / p * 100:+.0f}%)")


if __name__ == "__main__":
    main()
