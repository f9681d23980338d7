"""bench/hotpath.py measures what it says: every relay call is one request through the front to
the fake worker and one 200 back; every hit call is a 200 from the response cache, no worker."""

from __future__ import annotations

import pathlib
import sys

import pytest

REPO = str(pathlib.Path(__file__).resolve().parents[2])
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import hotpath  # noqa: E402
from wasp.wire.frames import FrameReader, FrameType  # noqa: E402


class _Kept(bytearray):
    """A transport's output buffer that keeps what the rig clears after each request."""

    def __init__(self, got: list[bytes]):
        super().__init__()
        self.got = got

    def clear(self) -> None:
        self.got.append(bytes(self))
        super().clear()


def _record(transport) -> list[bytes]:
    got: list[bytes] = []
    transport.out = _Kept(got)
    return got


@pytest.mark.parametrize("path", ["relay", "hit"])
def test_each_call_is_one_answered_request(tmp_path, path):
    one = hotpath.PATHS[path](tmp_path)
    client = _record(one.client)
    to_worker = _record(one.worker.transport)
    cache = one.rig.server.cache
    hits = cache.hits
    for _ in range(5):
        one()
    responses = b"".join(client) + bytes(one.client.out)
    assert responses.count(b"HTTP/1.1 200 OK\r\n") == 5 and responses.count(b"Hello, world!") == 5
    requests = [f for f in FrameReader().feed(b"".join(to_worker + [bytes(one.worker.transport.out)])) if f[0] == FrameType.REQUEST]
    if path == "relay":
        assert len(requests) == 5 and cache.hits == hits
    else:
        assert requests == [] and cache.hits == hits + 5


def test_the_log_is_off_as_in_bench_run(tmp_path):
    one = hotpath.relay_rig(tmp_path)
    assert all(not site.log.enabled for site in one.rig.config.sites)
