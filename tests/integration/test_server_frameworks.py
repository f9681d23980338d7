"""Flask, Django and FastAPI served side by side from one site, each in its own pool, plus a
WebSocket echo through the FastAPI app."""

from __future__ import annotations

import pytest
import requests
from websockets.sync.client import connect as ws_connect

CONFIG = """
{pool_timing}
[[pools]]
name = "FlaskPool"

[[pools]]
name = "DjangoPool"

[[pools]]
name = "FastApiPool"

[[sites]]
name = "Frameworks"
id = 1
bindings = ["http/127.0.0.1:{port}:"]

[[sites.applications]]
path = "/"
pool = "FlaskPool"
app = "flask_app:app"
python_path = ["{apps}"]

[[sites.applications]]
path = "/dj"
pool = "DjangoPool"
app = "mysite.wsgi:application"
python_path = ["{apps}/djangoproj"]

[[sites.applications]]
path = "/api"
pool = "FastApiPool"
app = "fastapi_app:app"
python_path = ["{apps}"]
"""


@pytest.fixture(scope="module")
def server(wasp_module_server):
    return wasp_module_server(CONFIG)


def get(server, path: str) -> requests.Response:
    return requests.get(server.url + path, timeout=30)


def test_flask_pages(server):
    r = get(server, "/")
    assert (r.status_code, r.text) == (200, "Hello from Flask"), server.diagnostics()
    assert r.headers["Content-Type"].startswith("text/html")
    r = get(server, "/echo?x=1&y=%20z")
    assert r.text == "|/echo|x=1&y=%20z"


def test_flask_exception_is_flasks_500(server):
    r = get(server, "/boom")
    assert r.status_code == 500
    assert get(server, "/").status_code == 200


def test_django_template_page(server):
    r = get(server, "/dj/")
    assert r.status_code == 200, (r.status_code, r.text[:500], server.diagnostics())
    assert r.headers["Content-Type"].startswith("text/html")
    assert "<h1>Django on wasp</h1>" in r.text
    assert "<li>ALPHA</li><li>BETA</li><li>GAMMA</li>" in r.text
    assert "count=3" in r.text
    assert 'href="/dj/json"' in r.text, "reverse() did not see SCRIPT_NAME=/dj"


def test_django_json_view_sees_script_name(server):
    r = get(server, "/dj/json?q=hi")
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert r.json() == {"framework": "django", "script_name": "/dj", "path": "/dj/json",
                        "path_info": "/json", "query": "hi"}


def test_django_404(server):
    r = get(server, "/dj/nope")
    assert r.status_code == 404
    assert "The requested resource was not found on this server." in r.text


def test_fastapi_json_and_lifespan(server):
    r = get(server, "/api/")
    assert r.status_code == 200, (r.status_code, r.text[:500], server.diagnostics())
    assert r.json() == {"framework": "fastapi", "started": True, "root_path": "/api"}
    r = get(server, "/api/items/42?q=x")
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert r.json() == {"id": 42, "q": "x"}
    r = get(server, "/api/items/notanumber")
    assert r.status_code == 422


def test_app_paths_match_whole_segments(server):
    # "/djx" is not under "/dj": it belongs to the root (Flask) app, whose 404 page differs from Django's.
    r = get(server, "/djx")
    assert r.status_code == 404
    assert "The requested URL was not found on the server." in r.text, r.text[:300]


def test_each_application_runs_in_its_own_pool(server):
    flask_pid = int(get(server, "/pid").text)
    django_pid = int(get(server, "/dj/pid").text)
    fastapi_pid = get(server, "/api/pid").json()["pid"]
    assert len({flask_pid, django_pid, fastapi_pid, server.proc.pid}) == 4


def test_websocket_echo_text_and_binary(server):
    uri = f"ws://127.0.0.1:{server.port}/api/ws"
    with ws_connect(uri, open_timeout=20, close_timeout=10) as ws:
        for i in range(10):
            ws.send(f"message {i}")
            assert ws.recv(timeout=10) == f"echo:message {i}"
            payload = bytes([i, 0, 255, 10, 13]) * (i + 1)
            ws.send(payload)
            assert ws.recv(timeout=10) == b"echo:" + payload
        big = "x" * 200_000
        ws.send(big)
        assert ws.recv(timeout=20) == "echo:" + big
        ws.close()
    assert ws.close_code == 1000, (ws.close_code, ws.close_reason)
    # The tunnel's end did not disturb the app.
    assert get(server, "/api/").status_code == 200
