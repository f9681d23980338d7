"""A pool's bounded queue: when it is full the front answers 503 (HTTPERR reason QueueFull) and
every other request is served; none is lost or left hanging."""

from __future__ import annotations

import collections
import threading

import requests

CONFIG = """
{pool_timing}
[[pools]]
name = "Tiny"
queue_length = 10
threads = 1
max_processes = 1

[[sites]]
name = "Queue Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Tiny"
app = "flask_app:app"
python_path = ["{apps}"]
"""

CLIENTS = 40


def test_queue_overflow_gives_503_queuefull_and_serves_the_rest(wasp_server):
    server = wasp_server(CONFIG)
    warm = requests.get(server.url + "/pid", timeout=30)
    assert warm.status_code == 200, (warm.status_code, warm.text[:300], server.diagnostics())

    barrier = threading.Barrier(CLIENTS, timeout=30)
    results: list[object] = [None] * CLIENTS
    bodies_503: list[str] = []

    def client(i: int) -> None:
        barrier.wait()
        try:
            r = requests.get(server.url + "/slow?s=1", timeout=90)
            results[i] = r.status_code
            if r.status_code == 503:
                bodies_503.append(r.text)
        except requests.RequestException as exc:
            results[i] = repr(exc)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a request hung"

    counts = collections.Counter(results)
    assert set(counts) <= {200, 503}, f"unexpected outcomes: {counts}\n{server.diagnostics()}"
    assert counts[503] >= 1, f"queue_length=10 never overflowed: {counts}"
    assert counts[200] >= 10, f"fewer requests served than the queue holds: {counts}"
    assert all("Service Unavailable" in body for body in bodies_503), bodies_503[:1]

    httperr = server.logs / "httperr"

    def queuefull_logged():
        if not httperr.is_dir():
            return False
        text = "".join(p.read_text(errors="replace") for p in httperr.rglob("*") if p.is_file())
        return text.count("QueueFull") >= counts[503] and text

    text = server.wait_until(queuefull_logged, 15,
                             what=lambda: f"{counts[503]} QueueFull lines in {httperr}\n{server.diagnostics()}")
    lines = [line for line in text.splitlines() if "QueueFull" in line]
    assert len(lines) == counts[503], f"{len(lines)} QueueFull lines for {counts[503]} 503s"
    headers = [line for line in text.splitlines() if line.startswith("#Fields:")]
    assert headers and headers[0] == ("#Fields: date time c-ip c-port s-ip s-port cs-version cs-method cs-uri "
                                      "streamid sc-status s-siteid s-reason s-queuename"), headers[:1]
    fields = headers[0].split()[1:]
    for line in lines:
        values = line.split(" ")
        assert len(values) == len(fields), line
        row = dict(zip(fields, values))
        assert (row["sc-status"], row["s-reason"], row["s-queuename"], row["s-siteid"]) == \
            ("503", "QueueFull", "Tiny", "1"), row
        assert (row["cs-method"], row["cs-uri"], row["c-ip"]) == ("GET", "/slow?s=1", "127.0.0.1"), row
