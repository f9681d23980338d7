"""The front's timers on a fake clock: none fires before its configured time, each fires by its
deadline plus one sweep, whatever the phase of the once-a-second sweep when the timer starts."""

from __future__ import annotations

import pytest

from front_fakes import FrontRig, split_responses
from wasp.config import model

LIMIT = 15.0
PHASES = [0.05, 0.4, 0.95]


def _rig(tmp_path):
    limits = model.Limits(header_wait_timeout=model.Duration(LIMIT), connection_timeout=model.Duration(LIMIT))
    return FrontRig(tmp_path, limits=limits)


def _sweep_until(rig, done, start: float) -> float:
    """Sweep once a second, in step with the sweep before `start`, until done(); the time."""
    t = rig.last_sweep
    for _ in range(int(LIMIT) + 5):
        t += 1.0
        rig.loop.now = t
        rig.server.tick()
        if done():
            return t
    raise AssertionError("the timer never fired")


def _offbeat(rig, phase: float) -> float:
    """A sweep runs, then `phase` of a second passes with no sweep: the moment a timer starts."""
    rig.advance(0.3)
    rig.last_sweep = rig.loop.now
    rig.loop.now += phase
    return rig.loop.now


@pytest.mark.parametrize("phase", PHASES)
def test_header_wait_never_fires_early(tmp_path, phase):
    rig = _rig(tmp_path)
    conn, transport = rig.connect()
    start = _offbeat(rig, phase)
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")   # the head, incomplete
    fired = _sweep_until(rig, lambda: transport.closed, start)
    assert start + LIMIT <= fired <= start + LIMIT + 1.0


@pytest.mark.parametrize("phase", PHASES)
def test_idle_keep_alive_never_fires_early(tmp_path, phase):
    rig = _rig(tmp_path)
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    start = _offbeat(rig, phase)
    worker.respond(sid)                                     # the response ends: idle from here
    assert split_responses(bytes(transport.out))[0][0] == 200
    fired = _sweep_until(rig, lambda: transport.closed, start)
    assert start + LIMIT <= fired <= start + LIMIT + 1.0


@pytest.mark.parametrize("phase", PHASES)
def test_entity_body_gap_never_fires_early(tmp_path, phase):
    rig = _rig(tmp_path)
    rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    start = _offbeat(rig, phase)
    conn.data_received(b"abc")                              # the last body bytes for a while
    fired = _sweep_until(rig, lambda: transport.closed, start)
    assert start + LIMIT <= fired <= start + LIMIT + 1.0


@pytest.mark.parametrize("phase", PHASES)
def test_queue_wait_never_fires_early(tmp_path, phase):
    rig = _rig(tmp_path)                                    # no worker: the request waits
    conn, transport = rig.connect()
    start = _offbeat(rig, phase)
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    fired = _sweep_until(rig, lambda: bool(transport.out), start)
    assert split_responses(bytes(transport.out))[0][0] == 503
    assert start + LIMIT <= fired <= start + LIMIT + 1.0
