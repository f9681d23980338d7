"""The front's start-up memory settings (wasp/front/main.py): glibc's malloc keeps freed blocks
for reuse, so relaying one large body after another does not fault fresh pages in each time."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys
from wasp.front.main import tune_malloc
if not tune_malloc():
    print("not applied"); sys.exit(0)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
pieces = [b"x" * 102400, b"y" * 300000]
for _ in range(50):                       # warm: the heap grows once
    for piece in pieces:
        body = piece[1:] + b"z"           # a fresh block each time, freed at the next turn
before = faults()
for _ in range(1000):
    for piece in pieces:
        body = piece[1:] + b"z"
print(faults() - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_large_blocks_are_reused_not_faulted_in_again():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = out.stdout.strip()
    assert result != "not applied"
    # 2,000 blocks of 100 and 293 KiB: with glibc's defaults each is ~25-75 fresh pages (about
    # 100,000 faults in all); reused, a handful.
    assert int(result) < 500, result


QUIET = """
import logging, sys
import hpack, hpack.hpack
from wasp.front.main import quiet_hpack
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)
logging.getLogger().addHandler(Keep())
if sys.argv[1] == "debug":
    logging.getLogger("hpack").setLevel(logging.DEBUG)
applied = quiet_hpack()
headers = [(b":status", b"200"), (b"content-type", b"text/plain"), (b"x-n", b"%d" % 12345)]
block = hpack.Encoder().encode(headers)
assert hpack.Decoder().decode(block, raw=True) == headers
print(applied, len(records) > 0)
"""


@pytest.mark.parametrize("level, expected", [("default", "True False"), ("debug", "False True")])
def test_hpack_debug_logging_is_dropped_unless_someone_asked_for_it(level, expected):
    done = subprocess.run([sys.executable, "-c", QUIET, level], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == expected.split()
