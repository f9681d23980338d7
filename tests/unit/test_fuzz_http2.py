"""The front's HTTP/2 connection under fuzz/http2.py: 10,000 coverage-guided inputs, each fed in one
read and in many, with the harness's invariants (a valid frame sequence within the client's
windows and settings, each accepted stream answered or reset once, the stream and flood limits,
no leaks, the same outcome for any split)."""

import pytest

from fuzzing import run_harness

#: A short run is bounded by its input count; on a loaded 2-core machine 10,000 HTTP/2 inputs
#: took longer than the suite's default 120 s, so the subprocess's own 300 s limit decides.
pytestmark = pytest.mark.timeout(330)


def test_http2_harness_runs_10000_inputs_without_a_finding(tmp_path):
    run_harness("http2", tmp_path)
