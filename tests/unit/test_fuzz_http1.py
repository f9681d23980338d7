"""The front's HTTP/1.1 connection under fuzz/http1.py: 10,000 coverage-guided inputs, each fed in one
read and in many, with the harness's invariants (valid responses, never more answers than
requests, errors close, bounded buffers, no leaks, the same outcome for any split)."""

from fuzzing import run_harness


def test_http1_harness_runs_10000_inputs_without_a_finding(tmp_path):
    run_harness("http1", tmp_path)
