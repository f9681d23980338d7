"""The reverse proxy's backend codec under fuzz/backend.py: 10,000 coverage-guided inputs, each fed
in one read and in pieces, with the harness's invariants (only BackendError, bounded heads, the
same head for any split, response blocks without CR/LF or hop-by-hop headers, no leaks)."""

import pytest

from fuzzing import run_harness

pytestmark = pytest.mark.timeout(330)


def test_backend_harness_runs_10000_inputs_without_a_finding(tmp_path):
    run_harness("backend", tmp_path)
