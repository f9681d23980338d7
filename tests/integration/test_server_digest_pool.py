"""Digest nonces are the pool's: in a web garden of 2 workers, and across `wasp recycle`, a right
answer to a nonce another worker issued is recognised (401 with `stale=true` challenges, which a
client answers with the new nonce without asking the user, never a plain 401.1), a nonce used
once is never accepted again on any worker, and a client with the password always gets in."""

from __future__ import annotations

import hashlib
import re

import pytest
import requests
from garden_support import Hold
from process_support import last_seq, wait_event, workers

CONFIG = """
{pool_timing}
[[pools]]
name = "G"
max_processes = 2
start_mode = "always_running"

[[sites]]
name = "Garden"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "G"
app = "garden_app:app"
python_path = ["{apps}"]

[[locations]]
path = "Garden/pid"
[locations.anonymous_authentication]
enabled = false
[locations.digest_authentication]
enabled = true
realm = "garden"
user_file = "{dir}/users.htdigest"
"""

REALM, USER, PASSWORD = "garden", "alice", "alice-secret"


def ha1(h=hashlib.sha256) -> str:
    return h(f"{USER}:{REALM}:{PASSWORD}".encode()).hexdigest()


def header(nonce: str, nc: int = 1, uri: str = "/pid") -> dict:
    h = hashlib.sha256
    ha2 = h(f"GET:{uri}".encode()).hexdigest()
    ncs = f"{nc:08x}"
    response = h(f"{ha1()}:{nonce}:{ncs}:c0ffee:auth:{ha2}".encode()).hexdigest()
    return {"Authorization": f'Digest username="{USER}", realm="{REALM}", uri="{uri}", '
                             f'algorithm=SHA-256, nonce="{nonce}", nc={ncs}, cnonce="c0ffee", '
                             f'qop=auth, response="{response}"'}


def get(server, headers=None):
    # A new connection each time: the front may give it to either worker.
    with requests.Session() as s:
        return s.get(server.url + "/pid", headers=headers or {}, timeout=30)


def nonce_in(r) -> tuple[str, bool]:
    offered = r.headers["WWW-Authenticate"]
    challenge = re.search(r'Digest [^,]*, qop="auth", algorithm=SHA-256, nonce="([^"]+)"[^D]*', offered)
    return challenge.group(1), "stale=true" in challenge.group(0)


@pytest.fixture
def server(wasp_server):
    (wasp_server.dir / "users.htdigest").write_text(f"{USER}:{REALM}:{ha1()}\n")
    server = wasp_server(CONFIG)
    server.wait_until(lambda: len([w for w in workers(server, "G") if w["state"] == "Ready"]) == 2, 30,
                      what=lambda: f"two ready workers\n{server.diagnostics()}")
    return server


def sign_in(server, nonce: str, pids: set) -> None:
    """Answer `nonce`; a stale answer is retried with the new nonce, as a client does (bounded)."""
    for _ in range(20):
        r = get(server, header(nonce))
        if r.status_code == 200:
            pids.add(int(r.text))
            return
        assert r.status_code == 401, r.text[:300]
        nonce, stale = nonce_in(r)
        assert stale, "a right answer to the pool's nonce must be stale=true, not a new logon"
    raise AssertionError("no worker accepted a fresh nonce in 20 tries")


def test_a_sibling_workers_nonce_is_stale_then_the_client_gets_in(server):
    nonce, stale = nonce_in(get(server))     # both workers idle: the first one answers
    assert not stale
    hold = Hold(server)                      # ... and this goes to the first one too
    try:
        r = get(server, header(nonce))       # the other worker: the nonce is not its own
        assert r.status_code == 401, r.text[:300]
        fresh, stale = nonce_in(r)
        assert stale, "a right answer to a sibling's nonce must be stale=true, not a new logon"
        r = get(server, header(fresh))
        assert r.status_code == 200 and int(r.text) != hold.pid
        assert get(server, header(fresh)).status_code == 401  # replayed where it was used
    finally:
        hold.release()


def test_nonces_are_the_pools_across_a_garden_and_a_recycle(server):
    pids: set[int] = set()
    used = []
    for _ in range(6):
        nonce, stale = nonce_in(get(server))
        assert not stale
        sign_in(server, nonce, pids)
        used.append(nonce)
    # A used (nonce, nc) is refused on every worker: stale where it is foreign, 401.1 at home.
    for nonce in used[:3]:
        for _ in range(3):
            r = get(server, header(nonce))
            assert r.status_code == 401, "a replayed Digest answer was accepted"

    before = {w["pid"] for w in workers(server, "G")}
    nonce, _ = nonce_in(get(server))  # a nonce of the workers before the recycle
    mark = last_seq(server)
    server.cli("recycle", "pool", "G")
    wait_event(server, 9014, 30, pool="G", count=2, after=mark)
    server.wait_until(lambda: not before & {w["pid"] for w in workers(server, "G")}
                      and len([w for w in workers(server, "G") if w["state"] == "Ready"]) == 2,
                      30, what=lambda: f"the recycled workers\n{server.diagnostics()}")
    r = get(server, header(nonce))
    assert r.status_code == 401
    new_nonce, stale = nonce_in(r)
    assert stale, "after a recycle a right answer must be stale=true, not a new logon"
    after: set[int] = set()
    sign_in(server, new_nonce, after)
    assert after and not after & before
