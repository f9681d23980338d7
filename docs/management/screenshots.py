"""Take the screenshots in docs/management/ of the management site's main pages.

Starts a real server (a shop site on a WSGI app, a static site, three pools, the management
site), sends it some traffic, logs in with the printed link, and drives Debian's chromium with
Playwright over each page. Every process it starts is stopped by PID.

    .venv/bin/python docs/management/screenshots.py
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests
from playwright.sync_api import sync_playwright

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROCAPPS = REPO / "tests" / "integration" / "process_apps"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    work = pathlib.Path(tempfile.mkdtemp(prefix="wasp-shots-"))
    (work / "www").mkdir()
    (work / "www" / "index.html").write_text("<h1>docs</h1>\n")
    port, mgmt = free_port(), free_port()
    (work / "wasp.toml").write_text(f"""\
# The example server of docs/management.md's screenshots.
[management]
enabled = true
bindings = ["http/127.0.0.1:{mgmt}:"]

[[pools]]
name = "ShopPool"
start_mode = "always_running"
max_processes = 2

[[pools]]
name = "DocsPool"

[[sites]]
name = "Shop"
id = 1
bindings = ["http/127.0.0.1:{port}:shop.example.test", "http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "ShopPool"
app = "procapp:app"
python_path = ["{PROCAPPS}"]

[[sites]]
name = "Docs"
id = 2
bindings = ["http/127.0.0.1:{port}:docs.example.test"]
[[sites.applications]]
path = "/"
pool = "DocsPool"
physical_path = "www"
""")
    log = open(work / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "wasp.cli.main", "serve", "-c", "wasp.toml"],
                            cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        link = None
        for _ in range(300):
            m = re.search(r"(http://\S+/login\?token=\S+)", (work / "server.log").read_text(errors="replace"))
            if m:
                link = m.group(1)
                try:
                    if requests.get(f"http://127.0.0.1:{mgmt}/login", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        for i in range(40):
            requests.get(base + ("/pid" if i % 3 else "/missing"), timeout=20)
            requests.get(base + "/", headers={"Host": "docs.example.test"}, timeout=20)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(link)
            page.wait_for_selector("#overview-pools")
            for i in range(20):
                requests.get(base + "/pid", timeout=20)
            page.wait_for_timeout(2500)
            page.screenshot(path=str(HERE / "overview.png"))
            shots = [("sites", "#sites-table"), ("pools", "#pools-table"), ("workers", "#workers-table"),
                     ("events", "#events-table"), ("logs", "#log-table")]
            for name, selector in shots:
                page.click(f"nav a[data-page={name}]")
                page.wait_for_selector(selector)
                page.wait_for_timeout(600)
                if name == "workers":
                    page.click("button[data-stacks]")
                    page.wait_for_selector("#stacks-text")
                page.screenshot(path=str(HERE / f"{name}.png"))
            page.goto(f"http://127.0.0.1:{mgmt}/#/pool/ShopPool")
            page.wait_for_selector("#pool-editor")
            page.fill("#f-queue_length", "5000")
            page.fill("#f-recycling\\.time", "soon")
            page.locator("[data-error-for='recycling.time']", has_text="duration").wait_for()
            page.screenshot(path=str(HERE / "pool-editor.png"))
            page.fill("#f-recycling\\.time", "12h")
            page.locator("#editor-status", has_text="valid").wait_for()
            page.click("#save")
            page.wait_for_selector("#change-diff")
            page.click("nav a[data-page=history]")
            page.wait_for_selector("#history-table")
            page.click("#history-table details summary")
            page.screenshot(path=str(HERE / "history.png"))
            login = browser.new_page(viewport={"width": 1280, "height": 600})
            login.goto(f"http://127.0.0.1:{mgmt}/login")
            login.screenshot(path=str(HERE / "login.png"))
            browser.close()
        return 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
