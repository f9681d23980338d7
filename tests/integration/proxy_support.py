"""Real backends for the reverse proxy tests: gunicorn (the echo app), nginx, a websockets echo
server and a misbehaving raw-socket server, each started in its own session on a free port and
stopped by PID (its process group) in teardown, even when a test failed."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent / "proxy_backends"


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Backend:
    def __init__(self, name: str, port: int, argv: list[str], env: dict | None = None, cwd=None):
        self.name = name
        self.port = port
        log = open(pathlib.Path(cwd or ".") / f"{name}.log", "wb") if cwd else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, cwd=cwd,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while not listening(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"backend {name} did not start on {port}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the backend's whole process group (gunicorn's master and its workers)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.kill()


def gunicorn(name: str, port: int, directory, env: dict | None = None, workers: int = 1) -> Backend:
    return Backend(name, port, [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}",
                                "-k", "gthread", "--threads", "8", "-w", str(workers),
                                "--keep-alive", "30", "--no-control-socket", "--chdir", str(HERE), "echo_app:app"],
                   env={"BACKEND_NAME": name, **(env or {})}, cwd=directory)


def nginx(port: int, directory) -> Backend:
    d = pathlib.Path(directory) / "nginx"
    (d / "tmp").mkdir(parents=True, exist_ok=True)
    conf = d / "nginx.conf"
    temp = "".join(f"  {k}_temp_path {d}/tmp/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf.write_text(f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
{temp}  keepalive_requests 10000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "nginx $connection $connection_requests\\n"; }}
  }}
}}
""")
    return Backend("nginx", port, ["nginx", "-c", str(conf), "-p", str(d), "-g", "daemon off;"], cwd=directory)


def script(name: str, port: int, directory, env: dict | None = None) -> Backend:
    return Backend(name, port, [sys.executable, str(HERE / f"{name}.py"), str(port)], env=env, cwd=directory)
