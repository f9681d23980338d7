"""The front <-> worker frame codec under fuzz/frames.py: 10,000 coverage-guided inputs, read as a
peer's byte stream (only ProtocolError, bounded memory, split-invariant) and as a recipe for
frames that must round-trip."""

from fuzzing import run_harness


def test_frames_harness_runs_10000_inputs_without_a_finding(tmp_path):
    run_harness("frames", tmp_path)
