"""The front's TLS ClientHello / SNI path under fuzz/tls.py: 10,000 coverage-guided inputs, mutated
ClientHellos fed to the listener contexts of a TlsState through MemoryBIOs (only ssl.SSLError
escapes, the SNI callback picks tls.select's certificate and never raises, ALPN within the
binding's offer, connection_facts of completed handshakes, per-handshake state released)."""

import pytest

from fuzzing import run_harness

#: A short run is bounded by its input count; on a loaded 2-core machine 10,000 HTTP/2 inputs
#: took longer than the suite's default 120 s, so the subprocess's own 300 s limit decides.
pytestmark = pytest.mark.timeout(330)


def test_tls_harness_runs_10000_inputs_without_a_finding(tmp_path):
    run_harness("tls", tmp_path)
