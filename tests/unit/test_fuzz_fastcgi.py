"""The FastCGI record reader and the CGI head parser under fuzz/fastcgi.py: 10,000 coverage-guided
inputs, split-invariant, refusing only with their own errors, never letting a script's head split
the response block."""

import pytest

from fuzzing import run_harness

pytestmark = pytest.mark.timeout(330)


def test_fastcgi_harness_runs_10000_inputs_without_a_finding(tmp_path):
    run_harness("fastcgi", tmp_path)
