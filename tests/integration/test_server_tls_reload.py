"""Certificates are re-read when their files change and on `wasp reload`, without touching open
connections; a bad new certificate keeps the old one serving and says why. `wasp validate`
refuses missing, unreadable, expired, not yet valid and mismatched certificates and keys, naming
the binding's dotted path and line.
"""

from __future__ import annotations

import shutil
import ssl

import pytest

from conftest import RawConnection, run_wasp, wait_until
from tls_support import CA, client_context, common_name, served_certificate

CONFIG = """\
{pool_timing}
[[pools]]
name = "p"

[[sites]]
name = "s"
id = 1
bindings = [{ binding = "https/*:{port}:", certificate = "@CERT@", key = "@KEY@" }]
[[sites.applications]]
path = "/"
pool = "p"
physical_path = "{dir}"
"""


def config(cert, key) -> str:
    return CONFIG.replace("@CERT@", str(cert)).replace("@KEY@", str(key))


def served_name(server, ca) -> str:
    return common_name(served_certificate(server.port, None, ca)[0])


def keep_alive(server, ca) -> RawConnection:
    conn = RawConnection(server.port)
    conn.sock = client_context(ca).wrap_socket(conn.sock, server_hostname=None)
    assert conn.request("GET", "/hello.txt").status == 200
    return conn


def test_changed_files_are_picked_up_and_open_connections_kept(wasp_server, tmp_path):
    ca = CA(tmp_path / "certs")
    (tmp_path / "hello.txt").write_text("hello")
    cert, key = ca.issue("v1", file="site")
    server = wasp_server(config(cert, key))
    assert served_name(server, ca) == "v1"
    with keep_alive(server, ca) as conn:
        new_cert, new_key = ca.issue("v2", file="next")
        shutil.copyfile(new_key, key)
        shutil.copyfile(new_cert, cert)
        wait_until(lambda: served_name(server, ca) == "v2", 20, what=lambda: server.log_tail())
        assert conn.request("GET", "/hello.txt").status == 200   # the connection made before

        # A bad new certificate (expired): the old one keeps serving, and the log says why.
        old_cert, old_key = ca.issue("v3-expired", file="expired", days=-1, start_days=-10)
        shutil.copyfile(old_key, key)
        shutil.copyfile(old_cert, cert)
        wait_until(lambda: "the certificate expired on" in server.output(), 20, what=lambda: server.log_tail())
        assert f"certificate {cert} not reloaded, the one loaded before keeps serving" in server.output()
        assert served_name(server, ca) == "v2"
        assert conn.request("GET", "/hello.txt").status == 200


def test_reload_switches_to_the_new_configs_certificate(wasp_server, tmp_path):
    ca = CA(tmp_path / "certs")
    (tmp_path / "hello.txt").write_text("hello")
    first = ca.issue("first")
    server = wasp_server(config(*first))
    with keep_alive(server, ca) as conn:
        second = ca.issue("second")
        server.config.write_text(server.config.read_text().replace(str(first[0]), str(second[0]))
                                 .replace(str(first[1]), str(second[1])))
        server.cli("reload")
        wait_until(lambda: served_name(server, ca) == "second", 20, what=lambda: server.log_tail())
        assert conn.request("GET", "/hello.txt").status == 200


@pytest.mark.parametrize("case, field, fragment", [
    ("missing", "certificate", "cannot read"),
    ("expired", "certificate", "expired on"),
    ("not_yet_valid", "certificate", "not valid before"),
    ("mismatched", "key", "does not match"),
    ("garbage", "certificate", "no PEM certificate"),
])
def test_validate_refuses_bad_certificates(tmp_path, case, field, fragment):
    ca = CA(tmp_path)
    cert, key = ca.issue("good")
    if case == "missing":
        cert = tmp_path / "nope.pem"
    elif case == "expired":
        cert, key = ca.issue("old", days=-1, start_days=-30)
    elif case == "not_yet_valid":
        cert, key = ca.issue("future", days=30, start_days=2)
    elif case == "mismatched":
        _, key = ca.issue("other")
    elif case == "garbage":
        cert = tmp_path / "garbage.pem"
        cert.write_text("not a certificate\n")
    path = tmp_path / "wasp.toml"
    path.write_text(config(cert, key).replace("{pool_timing}", "").replace("{port}", "8443")
                    .replace("{dir}", str(tmp_path)))
    result = run_wasp("validate", "-c", str(path))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    line = next(i for i, l in enumerate(path.read_text().splitlines(), 1) if "https/" in l)
    assert f"{path}:{line}: sites[0].bindings[0].{field}: " in output
    assert fragment in output


def test_validate_accepts_good_certificates(tmp_path):
    ca = CA(tmp_path)
    cert, key = ca.issue("good")
    path = tmp_path / "wasp.toml"
    path.write_text(config(cert, key).replace("{pool_timing}", "").replace("{port}", "8443")
                    .replace("{dir}", str(tmp_path)))
    result = run_wasp("validate", "-c", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_reload_with_another_client_ca_restarts_the_ports_listener(wasp_server, tmp_path):
    ca = CA(tmp_path / "certs")
    other = CA(tmp_path / "certs", "other CA")
    (tmp_path / "hello.txt").write_text("hello")
    alice = ca.issue("alice", client=True)
    text = config(*ca.issue("site")).replace("key = ", f'client_ca = "{other.path}", key = ', 1).replace(
        "[[sites.applications]]", 'access = { ssl_flags = ["ssl_require_cert"] }\n[[sites.applications]]')
    server = wasp_server(text)

    def status() -> int | str:
        try:
            with RawConnection(server.port) as conn:
                conn.sock = client_context(ca, alice).wrap_socket(conn.sock, server_hostname=None)
                return conn.request("GET", "/hello.txt").status
        except (ssl.SSLError, ConnectionError) as exc:
            return type(exc).__name__

    with keep_alive_raw(server, ca) as before:
        assert status() != 200   # alice's CA is not the port's: refused
        server.config.write_text(server.config.read_text().replace(str(other.path), str(ca.path)))
        server.cli("reload")
        wait_until(lambda: status() == 200, 20, what=lambda: server.log_tail())
        # The connection made before the reload (without a client certificate) is still served.
        assert before.request("GET", "/hello.txt").status == 403


def keep_alive_raw(server, ca) -> RawConnection:
    conn = RawConnection(server.port)
    conn.sock = client_context(ca).wrap_socket(conn.sock, server_hostname=None)
    return conn
