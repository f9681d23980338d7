"""HTTP/2 (on request: `--scenarios h2`): `h2load -c 32 -m 16` against wasp (h2c with prior
knowledge) and nginx with `http2` on its listener, static and dynamic, as ratios to nginx.

nginx 1.22 (Debian 12) speaks h2c with prior knowledge on a `listen … http2` socket and nothing
else there, so each nginx also listens plainly on the port the harness polls for readiness. Both
sides run 2 workers; nginx proxies the dynamic case to gunicorn gthread over HTTP/1.1 keep-alive,
as in the HTTP/1.1 table.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from bench import servers as sv
from bench.procs import free_port
from bench.stress import Section

CLIENTS = 32
STREAMS = 16


def _h2load(port: int, path: str, seconds: int, warmup: int) -> tuple[float, int, int, str]:
    """(req/s, succeeded, failed + errored, output) of one h2load run on 127.0.0.1."""
    argv = ["h2load", "-c", str(CLIENTS), "-m", str(STREAMS), "-t", "1", "-D", str(seconds),
            "--warm-up-time", str(warmup), f"http://127.0.0.1:{port}{path}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + warmup + 60)
    out = done.stdout + done.stderr
    rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out)
    counts = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored", out)
    if not rps or not counts:
        return 0.0, 0, 1, out
    return float(rps.group(1)), int(counts.group(1)), int(counts.group(2)) + int(counts.group(3)), out


def _nginx_h2(workdir: str, name: str, body_for) -> sv.Deployment:
    ready, h2_port = free_port(), free_port()
    # keepalive_requests: nginx ends an HTTP/2 connection after 1000 requests by default, and
    # h2load does not reconnect; wasp has no such limit.
    listen = (f"        listen 127.0.0.1:{ready};\n        listen 127.0.0.1:{h2_port} http2;\n"
              "        keepalive_requests 100000000;\n")
    deployment = body_for(listen)
    server = sv._nginx(workdir, name, ready, deployment[0])
    out = sv.Deployment(f"nginx http2{deployment[1]}", ready, deployment[2] + [server])
    out.h2_port = h2_port
    return out


def nginx_h2_static(workdir: str) -> sv.Deployment:
    return _nginx_h2(workdir, "nginx-h2-static", lambda listen: (
        f"    sendfile on;\n    server {{\n{listen}        root {sv.STATIC_DIR};\n    }}", "", []))


def nginx_h2_gunicorn(workdir: str, app: str) -> sv.Deployment:
    upstream = sv.gunicorn(workdir, app, name="gunicorn-h2-upstream")
    body = f"""    upstream app {{
        server 127.0.0.1:{upstream.port};
        keepalive 64;
    }}
    server {{
@LISTEN@        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}"""
    return _nginx_h2(workdir, "nginx-h2-proxy", lambda listen: (
        body.replace("@LISTEN@", listen), " -> gunicorn gthread", upstream.servers))


def run_h2(workdir: str, settings, quick: bool) -> Section:
    section = Section(f"HTTP/2: h2load -c {CLIENTS} -m {STREAMS}, h2c with prior knowledge")
    if shutil.which("h2load") is None:
        section.failed = True
        section.lines = ["h2load is not installed (Debian package nghttp2-client)"]
        return section
    seconds = settings.duration
    warmup = settings.warmup
    cases = [
        ("h2 static 1k", "/1k.txt", lambda: nginx_h2_static(workdir),
         lambda: sv.wasp(workdir, None, settings.wasp_log, name="wasp-h2-static")),
        ("h2 wsgi hello", "/", lambda: nginx_h2_gunicorn(workdir, "wsgi_hello"),
         lambda: sv.wasp(workdir, "wsgi_hello", settings.wasp_log, name="wasp-h2-wsgi")),
    ]
    section.lines = ["| scenario | server | req/s | failed | vs nginx |", "| --- | --- | --- | --- | --- |"]
    ratios = []
    for label, path, make_peer, make_wasp in cases:
        results = []
        for make in (make_peer, make_wasp):
            deployment = make()
            try:
                deployment.start()
                port = getattr(deployment, "h2_port", deployment.port)
                results.append((deployment.label, *_h2load(port, path, seconds, warmup)))
            except Exception as exc:   # a server that did not start: the row says so
                results.append((deployment.label, 0.0, 0, 1, str(exc)))
            finally:
                deployment.stop()
        base = results[0][1]
        for name, rps, ok, bad, out in results:
            ratio = f"{rps / base:.2f}" if base else "-"
            section.lines.append(f"| {label} | {name} | {rps:,.0f} | {bad} | {ratio} |")
            if bad or not ok:
                section.failed = True
                section.lines.append(f"\n```\n{out.strip()[-600:]}\n```\n")
        if base and results[1][1]:
            ratios.append(f"{label} {results[1][1] / base:.2f}x")
    section.verdict = "INFO HTTP/2 wasp vs nginx: " + ", ".join(ratios) if ratios else ""
    return section
