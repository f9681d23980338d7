"""An app cannot split its response: a CR, LF or NUL in a header it sets is a 500 from the server,
and the header it tried to smuggle never reaches the client (WSGI and ASGI, through a real front)."""

from __future__ import annotations

import pytest

CONFIG = """
{pool_timing}
[[pools]]
name = "Apps"

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Apps"
app = "splitting_app:wsgi_app"
python_path = ["{apps}"]
[[sites.applications]]
path = "/asgi"
pool = "Apps"
app = "splitting_app:asgi_app"
interface = "asgi"
python_path = ["{apps}"]
"""


@pytest.mark.parametrize("path", ["/", "/asgi/"])
def test_a_header_with_a_line_break_is_a_500_and_smuggles_nothing(wasp_server, path):
    server = wasp_server(CONFIG)
    with server.connect() as conn:
        response = conn.request("GET", path)
        assert response.status == 500, response
        assert response.header("Set-Cookie") is None and b"evil" not in response.body
        assert conn.request("GET", path).status == 500  # the connection stays sane
