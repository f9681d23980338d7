"""app_offline.htm and recycling.monitor_changes_to, without a server (docs/deploys.md)."""

from __future__ import annotations

import os
import queue
import time

from wasp.config.load import load_text
from wasp.manager.deploys import FileWatcher, watched
from wasp.worker import app_offline
from wasp.worker.app_offline import OfflineCheck


def test_app_offline_is_looked_at_once_a_second(tmp_path):
    check = OfflineCheck(str(tmp_path))
    assert check.current(now=100.0) is None
    (tmp_path / "app_offline.htm").write_text("<p>down</p>")
    assert check.current(now=100.5) is None          # not looked at again yet
    assert check.current(now=101.0) == b"<p>down</p>"
    (tmp_path / "app_offline.htm").write_text("<p>down for longer</p>")
    assert check.current(now=102.0) == b"<p>down for longer</p>"  # new size: read again
    os.unlink(tmp_path / "app_offline.htm")
    assert check.current(now=102.5) == b"<p>down for longer</p>"
    assert check.current(now=103.0) is None


def test_app_offline_page_is_capped_and_a_root_less_app_is_never_offline(tmp_path):
    (tmp_path / "app_offline.htm").write_bytes(b"x" * (app_offline.MAX_BYTES + 10))
    assert len(OfflineCheck(str(tmp_path)).current(now=1.0)) == app_offline.MAX_BYTES
    assert OfflineCheck("").current(now=1.0) is None
    block, body = app_offline.response(b"<p>x</p>")
    assert block.startswith(b"503 Service Unavailable\r\n") and b"Content-Length: 8\r\n" in block


def test_for_app_uses_physical_path_then_python_path(tmp_path):
    config = load_text(f"""
[[pools]]
name = "P"
[pools.recycling]
monitor_changes_to = ["{tmp_path}/stamp"]
[[sites]]
name = "S"
id = 1
bindings = ["http/127.0.0.1:8080:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "m:app"
python_path = ["{tmp_path}"]
""", source=str(tmp_path / "wasp.toml"))
    app = config.sites[0].applications[0]
    assert app_offline.for_app(app).path == os.path.join(str(tmp_path), "app_offline.htm")
    assert watched(config) == {"P": [str(tmp_path / "stamp")]}


def test_the_file_watcher_posts_changes_creations_and_removals(tmp_path):
    posted: queue.Queue = queue.Queue()
    stamp = tmp_path / "stamp"
    watcher = FileWatcher(posted.put, interval=0.05)
    watcher.watch({"P": [str(stamp)]})
    watcher.start()
    try:
        for action in (lambda: stamp.write_text("1"), lambda: stamp.write_text("22"), stamp.unlink):
            time.sleep(0.2)  # a few poll intervals, so the watcher has looked before the change
            action()
            assert posted.get(timeout=10) == ("files_changed", "P", [str(stamp)])
    finally:
        watcher.close()
    assert posted.empty()
