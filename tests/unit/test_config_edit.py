"""wasp/config/edit.py (tomlkit edits), commit.py (validate, write, history) and history.py."""

from __future__ import annotations

import os
import tomllib

import pytest

from wasp.config import commit, history
from wasp.config.edit import EditError, apply_edits, parse_path, parse_selector, path_text

TEXT = '''\
# The production server.  Do not remove this comment.
[server]
run_dir = "run"   # next to this file

[[pools]]
name = "DefaultAppPool"  # the default pool
max_processes = 1

[[sites]]
name = "Default Web Site"
id = 1
bindings = ["http/127.0.0.1:8080:"]  # loopback only

[[sites.applications]]
path = "/"
app = "hello:app"

[default_document]
files = ["index.html"]  # ours
'''


# ---- path syntax ---------------------------------------------------------------------------

def test_paths_parse_keys_selectors_indexes_and_quotes():
    assert parse_path("pools[name='api'].recycling.time") == ["pools", {"name": "api"}, "recycling", "time"]
    assert parse_path("default_document.files.[value='home.html']") == [
        "default_document", "files", {"value": "home.html"}]
    assert parse_path("[name='X'].type") == [{"name": "X"}, "type"]
    assert parse_path('errors[status_code=404,sub_status_code=-1].path') == [
        "errors", {"status_code": 404, "sub_status_code": -1}, "path"]
    assert parse_path('sites[0]."a.b"') == ["sites", 0, "a.b"]
    assert parse_path("bindings.[binding='http/*:80:']") == ["bindings", {"binding": "http/*:80:"}]
    assert parse_selector("""name="a,b", type='x]y'""") == {"name": "a,b", "type": "x]y"}


@pytest.mark.parametrize("bad", ["", "pools[", "pools[name]", "a..b", "pools[name='x'", "'open"])
def test_malformed_paths_are_refused_with_a_message(bad):
    with pytest.raises(EditError) as info:
        parse_path(bad)
    assert info.value.status == 400


def test_path_text_round_trips():
    for text in ("pools[name='api'].recycling.time", "sites[0].bindings", 'x."a.b"'):
        assert parse_path(path_text(parse_path(text))) == parse_path(text)


# ---- edits keep the user's text ------------------------------------------------------------

def test_a_set_keeps_every_comment_and_line_it_does_not_touch():
    out = apply_edits(TEXT, [{"op": "set", "path": "pools[name='defaultapppool'].max_processes", "value": 4}])
    assert out == TEXT.replace("max_processes = 1", "max_processes = 4")


def test_adds_and_deletes_edit_collections_in_place():
    out = apply_edits(TEXT, [
        {"op": "add", "path": "pools", "value": {"name": "api", "max_processes": 2}},
        {"op": "add", "path": "sites[name='Default Web Site'].bindings", "value": "http/127.0.0.1:8081:"},
        {"op": "add", "path": "sites[name='Default Web Site'].applications",
         "value": {"path": "/api", "pool": "api"}},
        {"op": "add", "path": "default_document.files", "value": "home.html"},
        {"op": "delete", "path": "default_document.files.[value='INDEX.html']"},
        {"op": "set", "path": "pools[name='api'].recycling.time", "value": "1h"},
    ])
    for line in TEXT.splitlines():
        if "index.html" not in line and "bindings" not in line:
            assert line in out.splitlines()
    data = tomllib.loads(out)
    assert [p["name"] for p in data["pools"]] == ["DefaultAppPool", "api"]
    assert data["pools"][1]["recycling"] == {"time": "1h"}
    assert data["sites"][0]["bindings"] == ["http/127.0.0.1:8080:", "http/127.0.0.1:8081:"]
    assert [a["path"] for a in data["sites"][0]["applications"]] == ["/", "/api"]
    assert data["default_document"]["files"] == ["home.html"]
    assert "# loopback only" in out and "# ours" in out
    assert "\n\n[[pools]]\nname = \"api\"" in out  # a new table gets a blank line before it


def test_a_duplicate_element_is_appcmds_error():
    with pytest.raises(EditError) as info:
        apply_edits(TEXT, [{"op": "add", "path": "pools", "value": {"name": "DEFAULTAPPPOOL"}}])
    assert info.value.status == 409
    assert str(info.value) == 'Failed to add duplicate collection element "DEFAULTAPPPOOL".'
    with pytest.raises(EditError):
        apply_edits(TEXT, [{"op": "add", "path": "default_document.files", "value": "INDEX.HTML"}])


def test_a_missing_element_or_key_is_404():
    for edit in ({"op": "delete", "path": "pools[name='nope']"},
                 {"op": "set", "path": "pools[name='nope'].threads", "value": 2},
                 {"op": "delete", "path": "server.log_dir"}):
        with pytest.raises(EditError) as info:
            apply_edits(TEXT, [edit])
        assert info.value.status == 404, edit


def test_a_collection_written_as_a_table_gets_the_new_entry_in_add():
    text = '[default_document]\nfiles = { clear = true, add = ["a.html"] }  # mine\n'
    out = apply_edits(text, [{"op": "add", "path": "default_document.files", "value": "b.html"}])
    assert tomllib.loads(out)["default_document"]["files"] == {"clear": True, "add": ["a.html", "b.html"]}
    assert "# mine" in out


def test_null_and_unknown_ops_are_refused():
    with pytest.raises(EditError):
        apply_edits(TEXT, [{"op": "set", "path": "server.run_dir", "value": None}])
    with pytest.raises(EditError):
        apply_edits(TEXT, [{"op": "rename", "path": "server"}])


def test_text_that_is_not_toml_cannot_be_edited():
    with pytest.raises(EditError) as info:
        apply_edits("[server\n", [{"op": "set", "path": "a", "value": 1}])
    assert info.value.status == 400


# ---- the transaction: validation, refusal, history -----------------------------------------

APP_TEXT = '''\
# keep me
[[pools]]
name = "P"  # the pool

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:18099:"]

[[sites.applications]]
path = "/"
pool = "P"
physical_path = "www"
'''


@pytest.fixture
def config_dir(tmp_path):
    (tmp_path / "www" / "sub").mkdir(parents=True)
    (tmp_path / "wasp.toml").write_text(APP_TEXT)
    return tmp_path


def change(config_dir, request, user="tester"):
    with commit.Transaction(str(config_dir / "wasp.toml"), str(config_dir / "run")) as txn:
        return txn.prepare(request, user)


def test_a_valid_change_is_written_with_a_baseline_and_a_snapshot(config_dir):
    written = change(config_dir, {"target": {"pool": "P"},
                                  "edits": [{"op": "set", "path": "queue_length", "value": 2000}]})
    text = (config_dir / "wasp.toml").read_text()
    assert text == APP_TEXT.replace('name = "P"  # the pool\n', 'name = "P"  # the pool\nqueue_length = 2000\n')
    rows = history.entries(str(config_dir / "run" / "history"))
    assert [r["user"] for r in rows] == ["(outside wasp)", "tester"]
    assert rows[1]["what"] == "set pools[name='P'].queue_length = 2000"
    assert "+queue_length = 2000" in rows[1]["diff"]
    assert written.snapshot == rows[1]["number"]
    assert history.entry(str(config_dir / "run" / "history"), rows[0]["number"])[1] == APP_TEXT
    assert oct(os.stat(config_dir / "run" / "history").st_mode & 0o777) == "0o700"


def test_a_refused_change_writes_nothing_and_names_the_dotted_path(config_dir):
    with pytest.raises(commit.ChangeRefused) as info:
        change(config_dir, {"target": {"pool": "P"}, "edits": [
            {"op": "set", "path": "queue_length", "value": 1},
            {"op": "set", "path": "recycling.requests", "value": "many"}]})
    assert info.value.status == 400
    assert any("pools[0].queue_length: 1 is out of range" in p for p in info.value.problems)
    assert any("pools[0].recycling.requests" in p for p in info.value.problems)
    assert all(p.startswith(str(config_dir / "wasp.toml") + ":") for p in info.value.problems)
    assert (config_dir / "wasp.toml").read_text() == APP_TEXT
    assert history.entries(str(config_dir / "run" / "history")) == []
    assert [p.name for p in config_dir.iterdir() if p.name.startswith(".")] == []  # no temp file


def test_an_unknown_object_is_appcmds_cannot_find(config_dir):
    with pytest.raises(commit.ChangeRefused) as info:
        change(config_dir, {"target": {"pool": "Nope"}, "edits": [{"op": "set", "path": "threads", "value": 2}]})
    assert (info.value.status, str(info.value)) == (404, 'Cannot find APPPOOL object with identifier "Nope".')


def test_a_stale_base_is_refused(config_dir):
    stale = history.sha("something else")
    with pytest.raises(commit.ChangeRefused) as info:
        change(config_dir, {"base": stale, "edits": [{"op": "set", "path": "limits.max_connections", "value": 5}]})
    assert info.value.status == 409
    assert (config_dir / "wasp.toml").read_text() == APP_TEXT
    fresh = history.sha(APP_TEXT)
    change(config_dir, {"base": fresh, "edits": [{"op": "set", "path": "limits.max_connections", "value": 5}]})
    assert "max_connections = 5" in (config_dir / "wasp.toml").read_text()


def test_a_path_below_an_application_becomes_a_location(config_dir):
    written = change(config_dir, {"target": {"config": "Site/sub", "section": "default_document"},
                                  "edits": [{"op": "set", "path": "enabled", "value": False}]})
    data = tomllib.loads((config_dir / "wasp.toml").read_text())
    assert data["locations"] == [{"path": "Site/sub", "default_document": {"enabled": False}}]
    assert written.messages == ['Applied configuration changes to section "default_document" for '
                                '"MACHINE/WEBROOT/APPHOST/Site/sub" at configuration commit path '
                                '"MACHINE/WEBROOT/APPHOST"']
    # a second change to the same path reuses the location
    change(config_dir, {"target": {"config": "Site/sub", "section": "default_document"},
                        "edits": [{"op": "set", "path": "files", "value": ["a.html"]}]})
    assert len(tomllib.loads((config_dir / "wasp.toml").read_text())["locations"]) == 1


def test_web_toml_commits_stay_inside_the_physical_path(config_dir):
    change(config_dir, {"target": {"config": "Site/sub", "section": "default_document", "commit": "web"},
                        "edits": [{"op": "set", "path": "files", "value": ["x.html"]}]})
    assert tomllib.loads((config_dir / "www" / "sub" / "web.toml").read_text()) == {
        "default_document": {"files": ["x.html"]}}
    for path in ("Site/../..", "Site/sub/../../.."):
        with pytest.raises(commit.ChangeRefused) as info:
            change(config_dir, {"target": {"config": path, "section": "default_document", "commit": "web"},
                                "edits": [{"op": "set", "path": "enabled", "value": False}]})
        assert info.value.status == 400
    (config_dir / "outside").mkdir()
    (config_dir / "www" / "escape").symlink_to(config_dir / "outside")
    with pytest.raises(commit.ChangeRefused) as info:
        change(config_dir, {"target": {"config": "Site/escape", "section": "default_document", "commit": "web"},
                            "edits": [{"op": "set", "path": "enabled", "value": False}]})
    assert info.value.status == 403
    assert not (config_dir / "outside" / "web.toml").exists()


def test_a_bad_web_toml_change_is_refused(config_dir):
    with pytest.raises(commit.ChangeRefused) as info:
        change(config_dir, {"target": {"config": "Site/sub", "section": "default_document", "commit": "web"},
                            "edits": [{"op": "set", "path": "enabled", "value": "yes"}]})
    assert info.value.status == 400 and "enabled" in info.value.problems[0]
    assert not (config_dir / "www" / "sub" / "web.toml").exists()


def test_lock_and_unlock_use_a_location_override_mode(config_dir):
    change(config_dir, {"target": {"config": "Site", "section": "default_document"},
                        "edits": [{"op": "lock", "mode": "Deny"}]})
    data = tomllib.loads((config_dir / "wasp.toml").read_text())
    assert data["locations"] == [{"path": "Site", "override_mode": "Deny", "default_document": {}}]
    change(config_dir, {"target": {"config": "Site", "section": "default_document"},
                        "edits": [{"op": "lock", "mode": "Allow"}]})
    data = tomllib.loads((config_dir / "wasp.toml").read_text())
    assert data["locations"] == [{"path": "Site", "override_mode": "Allow", "default_document": {}}]


def test_rollback_puts_the_old_text_back_and_forgets_the_snapshots(config_dir):
    with commit.Transaction(str(config_dir / "wasp.toml"), str(config_dir / "run")) as txn:
        written = txn.prepare({"edits": [{"op": "set", "path": "limits.max_connections", "value": 7}]}, "me")
        txn.rollback(written)
    assert (config_dir / "wasp.toml").read_text() == APP_TEXT
    assert history.entries(str(config_dir / "run" / "history")) == []


def test_history_keeps_max_histories(config_dir):
    (config_dir / "wasp.toml").write_text(APP_TEXT + "\n[server.config_history]\nmax_histories = 3\n")
    for n in range(5):
        change(config_dir, {"edits": [{"op": "set", "path": "limits.max_connections", "value": n + 1}]})
    rows = history.entries(str(config_dir / "run" / "history"))
    assert [r["number"] for r in rows] == [4, 5, 6]
    assert "max_connections = 5" in history.entry(str(config_dir / "run" / "history"), 6)[1]


def test_backups_add_list_refuse_duplicates_and_bad_names(tmp_path):
    run = str(tmp_path / "run")
    history.backup_add(run, "before-upgrade", "a = 1\n", "me", "/x/wasp.toml")
    assert [b["name"] for b in history.backups(run)] == ["before-upgrade"]
    assert history.backup_text(run, "before-upgrade") == "a = 1\n"
    with pytest.raises(history.HistoryError) as info:
        history.backup_add(run, "before-upgrade", "", "me", "")
    assert info.value.status == 409
    for bad in ("../x", ".hidden", "a/b", "", "x" * 65):
        with pytest.raises(history.HistoryError):
            history.backup_add(run, bad, "", "me", "")
    history.backup_delete(run, "before-upgrade")
    assert history.backups(run) == []
    with pytest.raises(history.HistoryError):
        history.backup_text(run, "before-upgrade")


# ---- the admin API's routes ----------------------------------------------------------------

def test_the_config_routes():
    from wasp.manager.admin import RouteError, route

    assert route("POST", "/config/changes") == ("config_change", {})
    assert route("GET", "/config") == ("config_get", {})
    assert route("GET", "/config/history") == ("config_history", {})
    assert route("POST", "/config/history/7/restore") == ("config_restore", {"number": "7"})
    assert route("GET", "/backups") == ("backup_list", {})
    assert route("POST", "/backups") == ("backup_add", {})
    assert route("POST", "/backups/b1/restore") == ("backup_restore", {"name": "b1"})
    assert route("DELETE", "/backups/b1") == ("backup_delete", {"name": "b1"})
    for method, path in (("GET", "/config/changes"), ("DELETE", "/config"), ("GET", "/backups/b1")):
        with pytest.raises(RouteError) as info:
            route(method, path)
        assert info.value.status == 405


def test_a_symlinked_config_keeps_its_link_and_a_restore_cannot_write_elsewhere(config_dir):
    real = config_dir / "real.toml"
    real.write_text(APP_TEXT)
    (config_dir / "wasp.toml").unlink()
    (config_dir / "wasp.toml").symlink_to(real)
    change(config_dir, {"edits": [{"op": "set", "path": "limits.max_connections", "value": 3}]})
    assert (config_dir / "wasp.toml").is_symlink()
    assert "max_connections = 3" in real.read_text()
    with commit.Transaction(str(config_dir / "wasp.toml"), str(config_dir / "run")) as txn:
        for target in (config_dir / "elsewhere.toml", config_dir / "web.toml"):
            with pytest.raises(commit.ChangeRefused) as info:
                txn.replace(str(target), "[default_document]\nenabled = false\n", "me", "restore")
            assert info.value.status == 403
            assert not target.exists()


def test_list_config_names_the_level_that_set_each_key(config_dir):
    from wasp.config import view
    from wasp.config.load import load

    change(config_dir, {"target": {"config": "Site", "section": "default_document"},
                        "edits": [{"op": "set", "path": "enabled", "value": False}]})
    change(config_dir, {"target": {"config": "Site/sub", "section": "default_document"},
                        "edits": [{"op": "set", "path": "files", "value": ["a.html"]}]})
    change(config_dir, {"target": {"config": "Site/sub", "section": "directory_browse", "commit": "web"},
                        "edits": [{"op": "set", "path": "enabled", "value": True}]})
    config = load(str(config_dir / "wasp.toml"))
    seen = view.config_view(config, "Site/sub", "default_document")
    doc = seen["sections"]["default_document"]
    assert doc["enabled"] == {"value": False, "set_at": "wasp.toml sites[name='Site']"}
    assert doc["files"]["value"][0] == "a.html"  # an array adds to the inherited list (IIS <add>)
    assert doc["files"]["set_at"].startswith("wasp.toml locations[0]")
    browse = view.config_view(config, "Site/sub", "directory_browse")["sections"]["directory_browse"]
    assert browse["enabled"] == {"value": True, "set_at": str(config_dir / "www" / "sub" / "web.toml")}
    assert view.config_view(config, "Site", "default_document")["sections"]["default_document"].keys() == {"enabled"}
    everything = view.config_view(config, "", "default_document", effective=True)
    assert everything["sections"]["default_document"]["enabled"] == {"value": True, "set_at": "default"}
    with pytest.raises(view.ViewError):
        view.config_view(config, "Nope", "")
    with pytest.raises(view.ViewError):
        view.config_view(config, "Site", "no_such_section")
