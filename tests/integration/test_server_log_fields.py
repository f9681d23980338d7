"""The W3C log shows the protocol (issue 7 item 1) on a real server: `log_ext_file_flags` with
ProtocolVersion and the byte counts, and a custom `HTTPS` server-variable field, written to the
site's `u_exYYMMDD_x.log`: an HTTP/2 request over TLS logs `HTTP/2` and `on`, a plain HTTP/1.1
request `HTTP/1.1` and `off`."""

from __future__ import annotations

import json

from conftest import RawConnection, free_port, wait_until
from h2_support import H2Client
from tls_support import CA, client_context

CONFIG = """\
{pool_timing}
[[pools]]
name = "W"

[[sites]]
name = "logged"
id = 1
bindings = [
  "http/127.0.0.1:{port}:",
  { binding = "https/*:@TLS_PORT@:", certificate = "@CERTS@/log.test.pem", key = "@CERTS@/log.test.key" },
]
[sites.log]
log_ext_file_flags = ["Date", "Time", "Method", "UriStem", "ServerPort", "ProtocolVersion", "HttpStatus",
                      "BytesSent", "BytesRecv"]
[[sites.log.custom_fields]]
log_field_name = "x-https"
source_name = "HTTPS"
source_type = "server_variable"
[[sites.log.custom_fields]]
log_field_name = "x-tls"
source_name = "CRYPT_PROTOCOL"
source_type = "server_variable"
[[sites.applications]]
path = "/"
pool = "W"
app = "h2_apps:wsgi"
python_path = ["{apps}"]
"""


def test_the_x_log_shows_http2_over_tls_and_http11_in_the_clear(wasp_server, tmp_path):
    folder = tmp_path / "certs"
    ca = CA(folder)
    ca.issue("log.test")
    tls_port = free_port()
    server = wasp_server(CONFIG.replace("@CERTS@", str(folder)).replace("@TLS_PORT@", str(tls_port)))

    context = client_context(ca, alpn=("h2",))
    with H2Client(tls_port, tls=context, sni="log.test") as client:
        response = client.get("/info", scheme="https", authority="log.test")
    assert response["headers"][b":status"] == b"200"
    assert json.loads(response["body"])["protocol"] == "HTTP/2"
    with RawConnection(server.port) as conn:
        plain = conn.request("GET", "/info")
    assert plain.status == 200

    site = server.logs / "W3SVC1"

    def lines():
        found = [p for p in site.glob("*.log")] if site.exists() else []
        if not found:
            return []
        return [line for p in found for line in p.read_text().splitlines()]

    wait_until(lambda: len([x for x in lines() if "/info" in x]) >= 2, 15,
               what=lambda: f"two /info lines in {site}: {lines()}")
    [path] = site.glob("*.log")
    assert path.name.startswith("u_ex") and path.name.endswith("_x.log"), path.name
    text = path.read_text().splitlines()
    assert ("#Fields: date time cs-method cs-uri-stem s-port cs-version sc-status sc-bytes cs-bytes "
            "x-https x-tls") in text
    rows = [line.split(" ") for line in text if "/info" in line]
    by_port = {row[4]: row for row in rows}
    h2_row, plain_row = by_port[str(tls_port)], by_port[str(server.port)]
    assert h2_row[5:7] == ["HTTP/2", "200"] and h2_row[9] == "on" and h2_row[10].startswith("TLSv1.")
    assert plain_row[5:7] == ["HTTP/1.1", "200"] and plain_row[9:] == ["off", "-"]
    assert int(h2_row[7]) > len(response["body"]) and int(h2_row[8]) > 0
    assert int(plain_row[7]) > len(plain.body) and int(plain_row[8]) > len("GET /info HTTP/1.1\r\n\r\n")
