"""The front's HTTP/1.1 connection under fuzz/http1.py: 10,000 coverage-guided inputs, each fed in one
read and in many, with the harness's invariants (valid responses, never more answers than
requests, errors close, bounded buffers, no leaks, the same outcome for any split)."""

import pytest

from fuzzing import run_harness

#: A short run is bounded by its input count; on a loaded 2-core machine 10,000 HTTP/2 inputs
#: took longer than the suite's default 120 s, so the subprocess's own 300 s limit decides.
pytestmark = pytest.mark.timeout(330)


def test_http1_harness_runs_10000_inputs_without_a_finding(tmp_path):
    run_harness("http1", tmp_path)
