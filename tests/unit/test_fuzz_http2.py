"""The front's HTTP/2 connection under fuzz/http2.py: 10,000 coverage-guided inputs, each fed in one
read and in many, with the harness's invariants (a valid frame sequence within the client's
windows and settings, each accepted stream answered or reset once, the stream and flood limits,
no leaks, the same outcome for any split)."""

from fuzzing import run_harness


def test_http2_harness_runs_10000_inputs_without_a_finding(tmp_path):
    run_harness("http2", tmp_path)
