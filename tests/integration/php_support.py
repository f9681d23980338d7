"""Real PHP for the FastCGI tests: the pages in php_apps/, and a php-fpm of the test's own.

`start_fpm(dir)` writes a php-fpm config (a static pool of `children`, listening on a Unix socket
in `dir`), starts `php-fpm -F` in its own session and waits for the socket; `stop_fpm(proc)` stops
it by PID (SIGTERM, SIGKILL after 5 s). No system service is touched.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

PHP_APPS = pathlib.Path(__file__).parent / "php_apps"
PHP_CGI = shutil.which("php-cgi") or "/usr/bin/php-cgi"
PHP_FPM = next((p for p in ("/usr/sbin/php-fpm8.2", shutil.which("php-fpm8.2") or "", shutil.which("php-fpm") or "")
                if p and os.path.exists(p)), "")


def copy_pages(target: pathlib.Path) -> pathlib.Path:
    shutil.copytree(PHP_APPS, target, dirs_exist_ok=True)
    return target


def fpm_config(directory: pathlib.Path, children: int = 4, listen: str = "", extra: str = "") -> pathlib.Path:
    root = os.geteuid() == 0
    conf = directory / "php-fpm.conf"
    conf.write_text(f"""[global]
pid = {directory}/fpm.pid
error_log = {directory}/fpm.log
daemonize = no

[wasp-test]
{"user = root" if root else ""}
listen = {listen or f"{directory}/fpm.sock"}
pm = static
pm.max_children = {children}
clear_env = no
catch_workers_output = yes
{extra}
""")
    return conf


def start_fpm(directory: pathlib.Path, children: int = 4, listen: str = "", extra: str = "") -> subprocess.Popen:
    """`listen` "127.0.0.1:PORT" for TCP (default: fpm.sock in `directory`); `extra` more pool
    lines ("pm.max_requests = 3")."""
    conf = fpm_config(directory, children, listen, extra)
    argv = [PHP_FPM, "-F", "-y", str(conf), "-p", str(directory)]
    if os.geteuid() == 0:
        argv.append("-R")
    log = open(directory / "fpm.stdout", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    sock = directory / "fpm.sock"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"php-fpm exited: {(directory / 'fpm.stdout').read_text()}")
        try:
            if listen:
                host, _colon, port = listen.rpartition(":")
                socket.create_connection((host, int(port)), timeout=1).close()
            else:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(sock))
            return proc
        except OSError:
            time.sleep(0.05)
    stop_fpm(proc)
    raise AssertionError("php-fpm did not listen in 20 s")


def stop_fpm(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
