"""The applications every server in the benchmark runs, so rows differ only by server."""
