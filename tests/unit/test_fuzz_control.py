"""The control-channel codec under fuzz/control.py: 10,000 coverage-guided inputs, read as a peer's
byte stream (only ControlProtocolError, split-invariant) and as a recipe for messages that must
round-trip."""

from fuzzing import run_harness


def test_control_harness_runs_10000_inputs_without_a_finding(tmp_path):
    run_harness("control", tmp_path)
