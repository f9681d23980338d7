"""wasp serve --reload: which files a pool watches, and what counts as a change."""

from __future__ import annotations

import os
import queue

from wasp.config import model
from wasp.manager import reloader


def _config(apps, run_dir="", log_dir=""):
    return model.Config(
        server=model.ServerSettings(run_dir=run_dir or "/nonexistent/run", log_dir=log_dir or "/nonexistent/logs"),
        pools=[model.Pool(name="P"), model.Pool(name="Q")],
        sites=[model.Site(name="S", id=1, bindings=["http/127.0.0.1:8080:"],
                          applications=[model.Application(**a) for a in apps])])


def test_roots_are_the_apps_python_path_or_the_config_directory(tmp_path):
    config = _config([
        dict(path="/", pool="P", app="a:app", python_path=[str(tmp_path / "a"), str(tmp_path / "b")]),
        dict(path="/x", pool="P", app="x:app", python_path=[str(tmp_path / "a")]),
        dict(path="/q", pool="Q", app="q:app"),
        dict(path="/static", pool="Q", physical_path=str(tmp_path)),
    ])
    roots = reloader.pool_roots(config, str(tmp_path / "conf" / "wasp.toml"))
    assert roots == {"P": [str(tmp_path / "a"), str(tmp_path / "b")], "Q": [str(tmp_path / "conf")]}


def test_a_pool_without_a_python_app_is_not_watched(tmp_path):
    config = _config([dict(path="/", pool="P", physical_path=str(tmp_path))])
    assert reloader.pool_roots(config, str(tmp_path / "wasp.toml")) == {}


def test_scan_finds_python_files_and_skips_what_is_not_the_apps_code(tmp_path):
    for rel in ("app.py", "pkg/mod.py", "pkg/data.txt", ".venv/lib/x.py", "pkg/__pycache__/m.py",
                "lib/site-packages/dep.py", "node_modules/n.py", ".git/hook.py"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")
    os.symlink(tmp_path, tmp_path / "pkg" / "loop")  # a symlink loop is walked once
    found, cut = reloader.scan([str(tmp_path)])
    assert not cut
    assert sorted(os.path.relpath(p, tmp_path) for p in found) == ["app.py", "pkg/mod.py"]


def test_scan_stops_at_its_limit(tmp_path):
    for n in range(5):
        (tmp_path / f"m{n}.py").write_text("")
    found, cut = reloader.scan([str(tmp_path)], limit=3)
    assert cut and len(found) == 3


def test_changes_are_additions_removals_and_modifications():
    before = {"/a.py": (1, 10), "/b.py": (1, 10), "/c.py": (1, 10)}
    after = {"/a.py": (1, 10), "/b.py": (2, 10), "/d.py": (1, 1)}
    assert reloader.changes(before, after) == ["/b.py", "/c.py", "/d.py"]
    assert reloader.changes(before, dict(before)) == []


def test_the_watcher_posts_a_pools_changed_files(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("v = 1\n")
    posted: queue.Queue = queue.Queue()
    watcher = reloader.CodeWatcher(posted.put, interval=0.05)
    watcher.watch({"P": [str(code)]})
    watcher.start()
    try:
        # The first look is the baseline: change the file (another size each time, so a change
        # within one mtime tick shows too) until a look after the baseline reports it.
        for n in range(600):
            (code / "app.py").write_text("v = 1\n" + "#" * (n + 1))
            try:
                kind, pool, files = posted.get(timeout=0.1)
                break
            except queue.Empty:
                continue
        else:
            raise AssertionError("no change reported")
        assert (kind, pool, files) == ("code_changed", "P", [str(code / "app.py")])
        (code / "new.py").write_text("")
        app, new = str(code / "app.py"), str(code / "new.py")
        for _ in range(10):  # a look may still report the last edit of app.py, alone or with it
            kind, pool, files = posted.get(timeout=30)
            assert (kind, pool) == ("code_changed", "P") and set(files) <= {app, new}, files
            if new in files:
                break
        assert new in files
    finally:
        watcher.close()
