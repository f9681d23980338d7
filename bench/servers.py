"""How each server in the comparison is configured and started.

A `Deployment` is what a client talks to: one or more processes (nginx in front of gunicorn is
two) and the port the client uses. Every server runs 2 workers where it has workers, the apps come
from `bench/apps`, and nothing writes an access log except wasp when `wasp_log` is on.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from dataclasses import dataclass, field

from bench.procs import Server, free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATIC_DIR = os.path.join(REPO, "bench", "static")
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
              tls: tuple[str, str] | None = None, fronts: int = 1) -> str:
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
        target = f'physical_path = "{STATIC_DIR}"'
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


def wasp_env() -> dict[str, str]:
    """The package runs from the tree; PYTHONPATH lets the manager's children import it too."""
    return {"PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p)}


def wasp_command(config_path: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "wasp.cli.main", *args, "-c", config_path]


def wasp(workdir: str, app: str | None, wasp_log: bool = True, name: str = "wasp",
         pool_extra: str = "", app_extra: str = "", tls: bool = False, fronts: int = 1) -> Deployment:
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
        f.write(wasp_toml(port, app, wasp_log, pool_extra, app_extra, tls=certs, fronts=fronts))
    server = _server(name, wasp_command(config, "serve"), folder, port, kind="wasp", tls=tls, cwd=REPO,
                     env=wasp_env())
    label = "wasp" if fronts == 1 else f"wasp {fronts} fronts"
    return Deployment(label, port, [server], ready_timeout=60.0, config_path=config)


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
