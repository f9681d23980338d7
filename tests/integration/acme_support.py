"""A real ACME CA for the tests: Debian's `pebble`, with `pebble-challtestsrv` as its DNS server.

`Pebble(folder, http_port, tls_port)` writes a pebble config (API and management on 127.0.0.1
ephemeral ports; `httpPort`/`tlsPort` = the wasp front's http and https ports, so pebble's
validation connects to wasp), a test CA for pebble's own HTTPS API (Debian ships no test
certificates), and starts both programs with PEBBLE_VA_NOSLEEP=1 and PEBBLE_VA_ALWAYS_VALID=0
(every challenge is really validated). The DNS server answers every A query with 127.0.0.1 and no
AAAA, so any test host name (`www.wasp.test`) reaches wasp on 127.0.0.1. `stop()` ends both by PID.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tls_support import CA


def _free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(name: str) -> str:
    path = shutil.which(name) or f"/usr/bin/{name}"
    if not os.path.exists(path):
        # No skip: CI installs it (.ci/apt-packages).
        raise AssertionError(f"{name} is not installed: apt-get install pebble (listed in .ci/apt-packages)")
    return path


class Pebble:
    def __init__(self, folder: pathlib.Path, http_port: int, tls_port: int, validity_s: int = 0):
        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.api_ca = CA(self.folder / "api-ca", "pebble API test CA")
        cert, key = self.api_ca.issue("localhost", file="api", ip="127.0.0.1")
        self.port = _free_port()
        self.management_port = _free_port()
        self.dns_port = _free_port(socket.SOCK_DGRAM)
        self.challtest_management = _free_port()
        settings = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if validity_s:
            settings["certificateValidityPeriod"] = validity_s
        self.config_path = self.folder / "pebble-config.json"
        self.config_path.write_text(json.dumps({"pebble": settings}))
        self.procs: list[subprocess.Popen] = []
        self.log_path = self.folder / "pebble.log"

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def api_ca_path(self) -> pathlib.Path:
        """The CA bundle that verifies pebble's API (wasp's acme.ca_bundle)."""
        return self.api_ca.path

    def start(self) -> "Pebble":
        log = open(self.log_path, "ab")
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_VA_ALWAYS_VALID="0",
                   PEBBLE_WFE_NONCEREJECT="0")
        self.procs.append(subprocess.Popen(
            [_binary("pebble-challtestsrv"), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
             "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "", "-tlsalpn01", "",
             "-management", f"127.0.0.1:{self.challtest_management}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        self.procs.append(subprocess.Popen(
            [_binary("pebble"), "-config", str(self.config_path), "-strict=false",
             "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=self.folder))
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self._get(f"https://127.0.0.1:{self.port}/dir")
                return self
            except OSError:
                if any(p.poll() is not None for p in self.procs):
                    break
                time.sleep(0.1)
        raise AssertionError(f"pebble did not start:\n{self.log()}")

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.api_ca.path))
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return response.read()

    def roots(self) -> list[x509.Certificate]:
        """Pebble's issuing root (a new one each start), from its management endpoint."""
        return x509.load_pem_x509_certificates(self._get(f"https://127.0.0.1:{self.management_port}/roots/0"))

    def intermediates(self) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates(
            self._get(f"https://127.0.0.1:{self.management_port}/intermediates/0"))

    def roots_pem(self, path: pathlib.Path) -> pathlib.Path:
        path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.roots()))
        return path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs = []
