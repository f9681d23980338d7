"""The control-channel codec under fuzz/control.py: 10,000 coverage-guided inputs, read as a peer's
byte stream (only ControlProtocolError, split-invariant) and as a recipe for messages that must
round-trip."""

import pytest

from fuzzing import run_harness

#: A short run is bounded by its input count; on a loaded 2-core machine 10,000 HTTP/2 inputs
#: took longer than the suite's default 120 s, so the subprocess's own 300 s limit decides.
pytestmark = pytest.mark.timeout(330)


def test_control_harness_runs_10000_inputs_without_a_finding(tmp_path):
    run_harness("control", tmp_path)
