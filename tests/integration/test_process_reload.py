"""`wasp serve --reload` (developer mode): a saved Python file recycles its pool, overlapped; a
save that breaks the import leaves the old worker serving until the next save fixes it."""

from __future__ import annotations

import time

from process_support import events, get, gone, process_config, wait_event

VERSION = "import os\n\n\ndef app(environ, start_response):\n" \
          "    start_response('200 OK', [('Content-Type', 'text/plain')])\n" \
          "    return [b'{version} ' + str(os.getpid()).encode()]\n"


def pid_of(server, path: str) -> int:
    response = get(server, path)
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return int(response.text.split()[1])


def reload_config(appdir, other) -> str:
    return process_config(f"""
[[pools]]
name = "P"
start_mode = "always_running"

[[pools]]
name = "Other"
start_mode = "always_running"

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{{port}}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "devapp:app"
python_path = ["{appdir}"]
[[sites.applications]]
path = "/other"
pool = "Other"
app = "otherapp:app"
python_path = ["{other}"]
""")


def test_a_saved_file_recycles_its_pool_and_a_broken_save_keeps_the_old_worker(wasp_server, tmp_path):
    appdir, other = tmp_path / "code", tmp_path / "othercode"
    (appdir / "pkg").mkdir(parents=True)
    other.mkdir()
    (appdir / "devapp.py").write_text(VERSION.format(version="v1"))
    (appdir / "pkg" / "helper.py").write_text("")
    (other / "otherapp.py").write_text(VERSION.format(version="other"))
    server = wasp_server(reload_config(appdir, other), start=False)
    server.args = ["serve", "--reload", "-c", str(server.config)]
    server.start()
    assert get(server, "/").text.startswith("v1 ")
    first = pid_of(server, "/")
    other_pid = pid_of(server, "/other")

    (appdir / "devapp.py").write_text(VERSION.format(version="v2-edited"))
    server.wait_until(lambda: get(server, "/").text.startswith("v2-edited "), 60,
                      what=lambda: f"the edited code served\n{server.diagnostics()}")
    [event] = wait_event(server, 9022, 30, pool="P")
    assert "devapp.py" in event["message"] and event["reason"] == "code_change", event
    server.wait_until(lambda: gone(first), 30, what=f"the old worker {first} to exit")
    assert pid_of(server, "/other") == other_pid  # only the pool whose code changed
    assert not events(server, 9022, pool="Other")

    # A broken save: the new worker fails to import, the one serving keeps serving.
    second = pid_of(server, "/")
    (appdir / "devapp.py").write_text("raise ZeroDivisionError('half-typed')\n")
    wait_event(server, 9009, 60, pool="P")
    assert get(server, "/").text == f"v2-edited {second}"
    # A file in a package of the python_path counts too; fixing the app brings the new code.
    (appdir / "devapp.py").write_text(VERSION.format(version="v3-fixed"))
    (appdir / "pkg" / "helper.py").write_text("x = 1\n")
    server.wait_until(lambda: get(server, "/").text.startswith("v3-fixed "), 90,
                      what=lambda: f"the fixed code served\n{server.diagnostics()}")
    server.wait_until(lambda: gone(second), 30, what=f"the old worker {second} to exit")


def test_without_reload_a_saved_file_changes_nothing(wasp_server, tmp_path):
    appdir, other = tmp_path / "code", tmp_path / "othercode"
    appdir.mkdir()
    other.mkdir()
    (appdir / "devapp.py").write_text(VERSION.format(version="v1"))
    (other / "otherapp.py").write_text(VERSION.format(version="other"))
    server = wasp_server(reload_config(appdir, other))
    first = pid_of(server, "/")
    (appdir / "devapp.py").write_text(VERSION.format(version="v2-edited"))
    time.sleep(3)  # three times the watcher's poll: a watcher, if one ran, would have acted
    assert get(server, "/").text == f"v1 {first}"
    assert not events(server, 9022)
