"""How each server in the comparison is configured and started.

A `Deployment` is what a client talks to: one or more processes (nginx in front of gunicorn is
two) and the port the client uses. Every server runs 2 workers where it has workers, the apps come
from `bench/apps`, and nothing writes an access log except wasp when `wasp_log` is on.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field

from bench.procs import Server, ServerFailed, free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATIC_DIR = os.path.join(REPO, "bench", "static")
PHP_DIR = os.path.join(REPO, "bench", "php")
APPS = {
    "wsgi_hello": "bench.apps.wsgi_hello:app",
    "wsgi_100k": "bench.apps.wsgi_100k:app",
    "asgi_hello": "bench.apps.asgi_hello:app",
    "wsgi_page": "bench.apps.wsgi_page:app",
    "wsgi_json": "bench.apps.wsgi_json:app",
}


@dataclass
class Deployment:
    label: str  # as printed in the table
    port: int
    servers: list[Server] = field(default_factory=list)  # started in order, stopped in reverse
    ready_timeout: float = 30.0
    config_path: str = ""  # wasp only: the wasp.toml the manager runs
    wrk_headers: tuple[str, ...] = ()  # on every wrk request, e.g. ("Connection: close",)
    #: The compression rows: (Accept-Encoding sent, Content-Encoding the answer must have), checked
    #: before the run, so a server that quietly sends identity cannot make a fine-looking row.
    encoding: tuple[str, str] | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.servers and self.servers[-1].tls else "http"

    def roots(self) -> list[tuple[str, int]]:
        """(kind, main PID) of each started server, for the cost model (bench/cost.py), in the
        order a request meets them (nginx before the gunicorn behind it)."""
        return [(s.kind, s.pid) for s in reversed(self.servers) if s.proc is not None]

    def start(self) -> None:
        for server in self.servers:
            server.start()
            server.wait_ready(server.port, timeout=self.ready_timeout)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()

    def stop_notes(self) -> list[str]:
        notes = []
        for s in self.servers:
            if s.leftovers:
                notes.append(f"{s.name}: processes left after its exit, killed: {s.leftovers}")
        return notes


def _server(name: str, argv: list[str], workdir: str, port: int, **kw) -> Server:
    return Server(name=name, argv=argv, workdir=workdir, port=port, **kw)


def gunicorn(workdir: str, app: str, port: int | None = None, name: str = "gunicorn") -> Deployment:
    port = port or free_port()
    argv = [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "2", "--threads", "8",
            "-b", f"127.0.0.1:{port}", "--chdir", REPO, "--log-level", "warning",
            "--no-control-socket", APPS[app]]
    return Deployment("gunicorn gthread", port, [_server(name, argv, workdir, port, kind="gunicorn", cwd=REPO)])


def uvicorn(workdir: str, app: str) -> Deployment:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", APPS[app], "--app-dir", REPO, "--host", "127.0.0.1",
            "--port", str(port), "--workers", "2", "--http", "httptools", "--loop", "uvloop",
            "--no-access-log", "--log-level", "warning"]
    return Deployment("uvicorn", port, [_server("uvicorn", argv, workdir, port, kind="uvicorn", cwd=REPO)])


def granian(workdir: str, app: str, interface: str) -> Deployment:
    """Granian (Rust HTTP, Python apps) with 2 workers; its other settings at their defaults."""
    port = free_port()
    argv = [sys.executable, "-m", "granian", "--interface", interface, "--workers", "2",
            "--host", "127.0.0.1", "--port", str(port), "--working-dir", REPO, "--no-access-log",
            "--log-level", "warning", APPS[app]]
    name = f"granian-{interface}"
    return Deployment("granian", port, [_server(name, argv, workdir, port, kind="granian", cwd=REPO)])


def _nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def _nginx_conf(prefix: str, http_body: str) -> str:
    # As root, nginx would switch its workers to "nobody", who cannot enter the 0700 temp dir.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temps = "\n".join(f"    {kind}_temp_path {prefix}/{kind}_temp;"
                      for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
{temps}
    types {{ text/plain txt; text/html html; }}
    default_type application/octet-stream;
{http_body}
}}
"""


def _nginx(workdir: str, name: str, port: int, http_body: str, tls: bool = False) -> Server:
    prefix = os.path.join(workdir, name)
    os.makedirs(prefix, exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(_nginx_conf(prefix, http_body))
    argv = [_nginx_binary(), "-p", prefix + "/", "-c", conf, "-e", os.path.join(prefix, "error.log"),
            "-g", "daemon off;"]
    return _server(name, argv, workdir, port, kind="nginx", tls=tls)


def nginx_gunicorn(workdir: str, app: str, tls: bool = False) -> Deployment:
    """The classic deployment: nginx with a keep-alive upstream in front of gunicorn gthread.
    With `tls`, nginx terminates TLS 1.3 only, with the bench's self-signed certificate."""
    upstream = gunicorn(workdir, app, name="gunicorn-tls" if tls else "gunicorn-upstream")
    port = free_port()
    listen = f"127.0.0.1:{port}"
    if tls:
        from bench.certs import self_signed
        cert, key = self_signed(os.path.join(workdir, "certs"))
        listen += f""" ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3"""
    body = f"""    upstream app {{
        server 127.0.0.1:{upstream.port};
        keepalive 64;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}"""
    nginx = _nginx(workdir, "nginx-tls" if tls else "nginx-proxy", port, body, tls=tls)
    label = "nginx (TLS) -> gunicorn gthread" if tls else "nginx -> gunicorn gthread"
    return Deployment(label, port, upstream.servers + [nginx])


def nginx_cache_gunicorn(workdir: str, app: str) -> Deployment:
    """nginx's proxy_cache in front of gunicorn: every 200 cached for an hour once seen."""
    upstream = gunicorn(workdir, app, name="gunicorn-cached")
    port = free_port()
    prefix = os.path.join(workdir, "nginx-cache")
    body = f"""    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=pages:10m max_size=100m;
    upstream app {{
        server 127.0.0.1:{upstream.port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_cache pages;
            proxy_cache_valid 200 1h;
            proxy_cache_lock on;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}"""
    nginx = _nginx(workdir, "nginx-cache", port, body)
    return Deployment("nginx proxy_cache -> gunicorn gthread", port, upstream.servers + [nginx])


#: The `cached` scenario's wasp: a profile lets the front keep every response of the app an hour.
CACHE_PROFILE = """[[sites.applications.caching.profiles]]
extension = "*"
kernel_caching_policy = "CacheForTimePeriod"
duration = "1h"
"""


def nginx_static(workdir: str) -> Deployment:
    port = free_port()
    body = f"""    sendfile on;
    tcp_nopush on;
    server {{
        listen 127.0.0.1:{port};
        root {STATIC_DIR};
    }}"""
    return Deployment("nginx", port, [_nginx(workdir, "nginx-static", port, body)])


def wasp_toml(port: int, app: str | None, wasp_log: bool, pool_extra: str = "", app_extra: str = "",
              tls: tuple[str, str] | None = None, fronts: int = 1, content: str = STATIC_DIR) -> str:
    """The wasp.toml for one run; run_dir and log_dir land next to it in the temp dir. `tls`
    (certificate file, key file) makes the binding https; `fronts` is server.front_processes
    (1 keeps the one-front server every earlier figure was measured with)."""
    binding = f'"http/127.0.0.1:{port}:"'
    if tls:
        binding = (f'{{ binding = "https/127.0.0.1:{port}:", certificate = "{tls[0]}", '
                   f'key = "{tls[1]}" }}')
    if app:
        target = f'app = "{APPS[app]}"\npython_path = ["{REPO}"]'
    else:
        target = f'physical_path = "{content}"'
    log = "" if wasp_log else "[sites.log]\nenabled = false\n"
    return f"""[server]
run_dir = "run"
log_dir = "logs"
front_processes = {fronts}

[pool_defaults]
max_processes = 2
start_mode = "always_running"
threads = 16
{pool_extra}
[[pools]]
name = "bench"

[[sites]]
name = "bench"
id = 1
bindings = [{binding}]
{log}
[[sites.applications]]
path = "/"
pool = "bench"
{target}
{app_extra}"""


#: IIS's default security modules (issue 9): the `security` scenario's baseline removes them.
SECURITY_MODULES = ("request_filtering", "anonymous_authentication", "url_authorization")


def security_modules_removed() -> str:
    """`app_extra` TOML removing, from the application, those of SECURITY_MODULES this tree has."""
    from wasp.config.sections.modules import NATIVE_MODULES
    present = [m for m in SECURITY_MODULES if m in NATIVE_MODULES]
    names = ", ".join(f'"{m}"' for m in present)
    return f"[sites.applications.modules]\nremove = [{names}]\n"


#: The `rewrite` scenario's rules (URL Rewrite, issue 10): IIS's common recipes on one application.
#: Two that test and do not apply to the benchmark's requests (HTTP -> HTTPS for one host, a
#: canonical host), a rewrite map lookup that finds nothing, then a front controller that rewrites
#: every request to /index.py (the app answers whatever path it gets).
#: The freb scenario (issue 11 item 8): tracing on for the site, and a rule every request's path
#: matches (so each request buffers its events) whose failure definition none meets (hello
#: answers 200): the trace is dropped at the end. FREB_PATH_RULE: a rule no path matches.
FREB_RULES = """[[sites.applications.trace_failed_requests]]
path = "*"
failure_definitions = { status_codes = "500-599", time_taken = "10s" }
[sites.trace_failed_requests_logging]
enabled = true
"""
FREB_PATH_RULE = """[[sites.applications.trace_failed_requests]]
path = "*.php"
failure_definitions = { status_codes = "400-599" }
[sites.trace_failed_requests_logging]
enabled = true
"""

REWRITE_RULES = r"""[sites.applications.rewrite]
rewrite_maps = [ { name = "Moved", entries = [ { key = "/old", value = "/new" } ] } ]
[[sites.applications.rewrite.rules]]
name = "https"
match = { url = "(.*)" }
conditions = { entries = [ { input = "{HTTPS}", pattern = "^OFF$" }, { input = "{HTTP_HOST}", pattern = "^secure\\.example$" } ] }
action = { type = "Redirect", url = "https://{HTTP_HOST}/{R:1}" }
[[sites.applications.rewrite.rules]]
name = "canonical"
match = { url = "(.*)" }
conditions = { entries = [ { input = "{HTTP_HOST}", pattern = "^example\\.com$" } ] }
action = { type = "Redirect", url = "https://www.example.com/{R:1}" }
[[sites.applications.rewrite.rules]]
name = "moved"
match = { url = ".*" }
conditions = { entries = [ { input = "{Moved:{REQUEST_URI}}", pattern = "(.+)" } ] }
action = { type = "Redirect", url = "{C:1}" }
[[sites.applications.rewrite.rules]]
name = "front-controller"
match = { url = "(.*)" }
conditions = { entries = [
  { input = "{REQUEST_FILENAME}", match_type = "IsFile", negate = true },
  { input = "{REQUEST_FILENAME}", match_type = "IsDirectory", negate = true } ] }
action = { type = "Rewrite", url = "index.py?route={R:1}" }
"""


#: The `metrics` scenario (issue 11): request counting off (the baseline) and on with metrics.url.
METRICS_OFF = "[metrics]\nenabled = false\n"
METRICS_ON = '[metrics]\nenabled = true\nurl = "/metrics"\n'


def wasp_env() -> dict[str, str]:
    """The package runs from the tree; PYTHONPATH lets the manager's children import it too."""
    return {"PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p)}


def wasp_command(config_path: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "wasp.cli.main", *args, "-c", config_path]


def wasp(workdir: str, app: str | None, wasp_log: bool = True, name: str = "wasp",
         pool_extra: str = "", app_extra: str = "", tls: bool = False, fronts: int = 1,
         content: str = STATIC_DIR) -> Deployment:
    """wasp's manager on a fresh port; `app` None serves bench/static as the site's content.
    `pool_extra` is TOML appended to [pool_defaults] (sub-tables such as [pool_defaults.failure]),
    `app_extra` TOML after the application (such as CACHE_PROFILE). `tls`: an https binding
    with the bench's self-signed certificate."""
    port = free_port()
    folder = os.path.join(workdir, name if fronts == 1 else f"{name}-{fronts}fronts")
    os.makedirs(folder, exist_ok=True)
    certs = None
    if tls:
        from bench.certs import self_signed
        certs = self_signed(os.path.join(workdir, "certs"))
    config = os.path.join(folder, "wasp.toml")
    with open(config, "w") as f:
        f.write(wasp_toml(port, app, wasp_log, pool_extra, app_extra, tls=certs, fronts=fronts,
                          content=content))
    server = _server(name, wasp_command(config, "serve"), folder, port, kind="wasp", tls=tls, cwd=REPO,
                     env=wasp_env())
    label = "wasp" if fronts == 1 else f"wasp {fronts} fronts"
    return Deployment(label, port, [server], ready_timeout=60.0, config_path=config)


# ---- the tracing scenario (issue 11) ----

def otlp_sink() -> int:
    """An OTLP/HTTP receiver that reads and drops what it is sent, on a thread of the bench
    process (its CPU is not the server's); -> its port."""
    import http.server
    import threading

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd.server_address[1]


def tracing_toml(port: int) -> str:
    """`app_extra` TOML turning tracing on, exporting to the sink on `port`."""
    return f'[tracing]\nenabled = true\nendpoint = "http://127.0.0.1:{port}/v1/traces"\n'


# ---- the compression scenario (issue 10) ----

#: wasp's dynamic_types do not name application/json by default (IIS's list): the JSON row adds it.
JSON_COMPRESSION = """[http_compression]
dynamic_types = [ { mime_type = "application/json" } ]
"""
#: The compression rows' file: a 100 KiB stylesheet (bench/static/100k.css).
STYLESHEET = "100k.css"
#: brotli quality of nginx's precompressed copy: wasp's default static level for br.
BROTLI_STATIC_QUALITY = 9


def nginx_gzip_gunicorn(workdir: str, app: str) -> Deployment:
    """nginx's gzip filter (level 1, its default; wasp's dynamic gzip level 0 is zlib's 1 too) in
    front of gunicorn gthread, compressing application/json."""
    upstream = gunicorn(workdir, app, name="gunicorn-gzip")
    port = free_port()
    body = f"""    upstream app {{
        server 127.0.0.1:{upstream.port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        gzip on;
        gzip_types application/json;
        gzip_min_length 2700;
        gzip_vary on;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}"""
    nginx = _nginx(workdir, "nginx-gzip", port, body)
    dep = Deployment("nginx gzip -> gunicorn gthread", port, upstream.servers + [nginx])
    dep.wrk_headers = ("Accept-Encoding: gzip",)
    dep.encoding = ("gzip", "gzip")
    return dep


def nginx_brotli_static(workdir: str) -> Deployment:
    """nginx serving a precompressed .br copy with sendfile: Debian's nginx has neither the brotli
    module nor brotli_static, so a `map` on Accept-Encoding picks `<file>.br` through an internal
    location that sets `Content-Encoding: br` and `Vary`, the way gzip_static serves `.gz` files.
    The copy is made here with the brotli library at wasp's default static quality."""
    import brotli
    root = os.path.join(workdir, "nginx-br-root")
    os.makedirs(os.path.join(root, "br"), exist_ok=True)
    with open(os.path.join(STATIC_DIR, STYLESHEET), "rb") as f:
        data = f.read()
    with open(os.path.join(root, STYLESHEET), "wb") as f:
        f.write(data)
    with open(os.path.join(root, "br", STYLESHEET), "wb") as f:  # the copy, under the same name
        f.write(brotli.compress(data, quality=BROTLI_STATIC_QUALITY))
    port = free_port()
    body = f"""    sendfile on;
    tcp_nopush on;
    map $http_accept_encoding $br_copy {{
        default "";
        "~*(^|[ ,])br([ ,;]|$)" "1";
    }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        types {{ text/css css; }}
        location ^~ /br/ {{
            internal;
            add_header Content-Encoding br;
            add_header Vary Accept-Encoding;
        }}
        location / {{
            add_header Vary Accept-Encoding;
            if ($br_copy) {{
                rewrite ^(.*)$ /br$1 last;
            }}
        }}
    }}"""
    dep = Deployment("nginx precompressed .br (sendfile)", port,
                     [_nginx(workdir, "nginx-br", port, body)])
    dep.wrk_headers = ("Accept-Encoding: gzip, deflate, br",)
    dep.encoding = ("gzip, deflate, br", "br")
    return dep


# ---- the `proxy` scenario: ARR (issue 10 item 7) against nginx proxy_pass, one gunicorn ----

class SharedServer(Server):
    """A server several rows share: started by the first row that needs it, left running between
    rows and stopped once at exit (so both proxies talk to the very same backend process)."""

    def start(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            super().start()
            import atexit
            atexit.register(Server.stop, self)

    def stop(self) -> None:
        pass  # at exit (above)


_shared_upstreams: dict[str, SharedServer] = {}


def shared_gunicorn(workdir: str, app: str) -> SharedServer:
    server = _shared_upstreams.get(app)
    if server is None:
        port = free_port()
        argv = [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "2", "--threads", "8",
                "-b", f"127.0.0.1:{port}", "--chdir", REPO, "--log-level", "warning",
                "--no-control-socket", APPS[app]]
        server = _shared_upstreams[app] = SharedServer(name="gunicorn-shared", argv=argv, workdir=workdir,
                                                       port=port, kind="gunicorn", cwd=REPO)
    return server


def nginx_proxy_shared(workdir: str, app: str) -> Deployment:
    """nginx proxy_pass (keep-alive upstream) to the shared gunicorn, sending the forwarding
    headers wasp's ARR sends (X-Forwarded-For/-Proto/-Host, X-Original-URL): gunicorn parses the
    same heads from both."""
    upstream = shared_gunicorn(workdir, app)
    port = free_port()
    body = f"""    upstream app {{
        server 127.0.0.1:{upstream.port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Original-URL $request_uri;
        }}
    }}"""
    return Deployment("nginx proxy_pass -> gunicorn", port, [upstream, _nginx(workdir, "nginx-pass", port, body)])


def wasp_proxy_shared(workdir: str, app: str, wasp_log: bool = False, fronts: int = 1) -> Deployment:
    """wasp's reverse proxy (a web farm of the shared gunicorn; the site's app has no Python app)."""
    upstream = shared_gunicorn(workdir, app)
    extra = f"""
[proxy]
enabled = true
url = "http://upstream"
preserve_host_header = true
forwarded = false

[[web_farms]]
name = "upstream"
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {upstream.port}
"""
    dep = wasp(workdir, None, wasp_log, name="wasp-arr", app_extra=extra, fronts=fronts)
    dep.label = "wasp ARR -> gunicorn" if fronts == 1 else f"wasp {fronts} fronts ARR -> gunicorn"
    dep.servers.insert(0, upstream)
    return dep


# ---- PHP: the same php-fpm pool behind nginx and behind wasp's fast_cgi handler ----

#: php-fpm children in the bench pool (static, so no process starts during a run).
PHP_FPM_CHILDREN = 4


def _php_fpm_binary() -> str:
    for path in ("/usr/sbin/php-fpm8.2", shutil.which("php-fpm8.2") or "", shutil.which("php-fpm") or ""):
        if path and os.path.exists(path):
            return path
    return "php-fpm"


#: wasp's worker processes in the bench (max_processes) and the kept connections each may have
#: to php-fpm: together never more than php-fpm's children (a kept connection holds a child).
WASP_WORKERS = 2
PHP_KEEP_CONNECTIONS = PHP_FPM_CHILDREN // WASP_WORKERS


class _FastCgiServer(Server):
    """php-fpm speaks FastCGI, not HTTP: ready once its Unix socket accepts."""

    def wait_ready(self, port: int, path: str = "/", timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"{self.name} exited with code {self.proc.returncode}:\n{self.output_tail()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket_path)
                    return
            except OSError:
                time.sleep(0.1)
        raise ServerFailed(f"{self.name} did not listen on {self.socket_path} within {timeout:.0f}s")


def php_fpm(workdir: str, name: str) -> Server:
    """A php-fpm of the bench's own: a static pool of PHP_FPM_CHILDREN listening on a Unix
    socket (nginx and wasp both connect to one so, with the same pool config)."""
    port = free_port()  # unused by php-fpm; the Server record wants one
    prefix = os.path.join(workdir, name)
    os.makedirs(prefix, exist_ok=True)
    root = os.geteuid() == 0
    conf = os.path.join(prefix, "php-fpm.conf")
    sock = os.path.join(prefix, "fpm.sock")
    with open(conf, "w") as f:
        f.write(f"""[global]
pid = {prefix}/fpm.pid
error_log = {prefix}/fpm.log
daemonize = no

[bench]
{"user = root" if root else ""}
listen = {sock}
listen.mode = 0600
listen.backlog = 511
pm = static
pm.max_children = {PHP_FPM_CHILDREN}
pm.max_requests = 0
""")
    argv = [_php_fpm_binary(), "-F", "-y", conf, "-p", prefix] + (["-R"] if root else [])
    server = _FastCgiServer(name=name, argv=argv, workdir=workdir, port=port, kind="php-fpm")
    server.socket_path = sock
    return server


def nginx_php(workdir: str) -> Deployment:
    """nginx -> php-fpm the usual way: fastcgi_pass to the pool's Unix socket with the stock
    parameters, a new FastCGI connection per request (nginx's default)."""
    fpm = php_fpm(workdir, "php-fpm-nginx")
    port = free_port()
    params = "\n".join(f"            fastcgi_param {k} {v};" for k, v in (
        ("SCRIPT_FILENAME", "$document_root$fastcgi_script_name"), ("QUERY_STRING", "$query_string"),
        ("REQUEST_METHOD", "$request_method"), ("CONTENT_TYPE", "$content_type"),
        ("CONTENT_LENGTH", "$content_length"), ("SCRIPT_NAME", "$fastcgi_script_name"),
        ("REQUEST_URI", "$request_uri"), ("DOCUMENT_URI", "$document_uri"),
        ("DOCUMENT_ROOT", "$document_root"), ("SERVER_PROTOCOL", "$server_protocol"),
        ("REQUEST_SCHEME", "$scheme"), ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx"), ("REMOTE_ADDR", "$remote_addr"), ("REMOTE_PORT", "$remote_port"),
        ("SERVER_ADDR", "$server_addr"), ("SERVER_PORT", "$server_port"),
        ("SERVER_NAME", "$server_name"), ("REDIRECT_STATUS", "200")))
    body = f"""    server {{
        listen 127.0.0.1:{port};
        root {PHP_DIR};
        location ~ \\.php$ {{
            try_files $uri =404;
            fastcgi_pass unix:{fpm.socket_path};
{params}
        }}
    }}"""
    return Deployment("nginx -> php-fpm", port, [fpm, _nginx(workdir, "nginx-php", port, body)])


def wasp_php(workdir: str, wasp_log: bool, fronts: int = 1) -> Deployment:
    """wasp's fast_cgi handler -> php-fpm by address (*.php mapped as IIS's PHP_via_FastCGI), the
    same Unix socket pool config as nginx's, with PHP_KEEP_CONNECTIONS kept per worker."""
    fpm = php_fpm(workdir, "php-fpm-wasp")
    handler = f"""[[sites.applications.handlers]]
name = "PHP_via_FastCGI"
path = "*.php"
verb = "GET,HEAD,POST"
modules = "fast_cgi"
script_processor = "unix:{fpm.socket_path}"
resource_type = "Either"

[[fast_cgi]]
full_path = "unix:{fpm.socket_path}"
keep_connections = {PHP_KEEP_CONNECTIONS}
"""
    dep = wasp(workdir, None, wasp_log, name="wasp-php", app_extra=handler, fronts=fronts, content=PHP_DIR)
    dep.servers.insert(0, fpm)
    return dep
