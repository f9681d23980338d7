"""URL Rewrite's engine and HTML rewriter under fuzz/rewrite.py: 5,000 coverage-guided inputs
(patterns, templates, redirect targets and bodies; split-invariant, bounded memory)."""

import pytest

from fuzzing import run_harness

pytestmark = pytest.mark.timeout(330)


def test_rewrite_harness_runs_5000_inputs_without_a_finding(tmp_path):
    run_harness("rewrite", tmp_path, runs=5000)
