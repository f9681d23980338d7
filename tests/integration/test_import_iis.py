"""`wasp import-iis` end to end: an applicationHost.config and a web.config in, a wasp.toml and a
web.toml out that `wasp validate` accepts and a real server serves (a static file, the wfastcgi
Python app, the web.config's rewrite rule and MIME map)."""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest
import requests

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "iis"


def _root(tmp: pathlib.Path) -> pathlib.Path:
    root = tmp / "root"
    inetpub = root / "c" / "inetpub"
    inetpub.mkdir(parents=True)
    shutil.copytree(FIXTURES / "content" / "PyApp", inetpub / "PyApp")
    shutil.copytree(FIXTURES / "content" / "wwwroot", inetpub / "wwwroot")
    return root


@pytest.fixture(scope="module")
def imported(wasp_module_server):
    factory = wasp_module_server
    tmp = factory.dir
    root = _root(tmp)
    port = factory.free_port()
    apphost = tmp / "applicationHost.config"
    apphost.write_text((FIXTURES / "serve.applicationHost.config").read_text().replace("{port}", str(port)))
    result = factory.run_wasp("import-iis", str(apphost), "--root", str(root), "-o", str(tmp / "wasp.toml"),
                              cwd=tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    config = tmp / "wasp.toml"
    if os.geteuid() == 0:  # as the other tests: workers stay root to read pytest's 0700 folders
        config.write_text(config.read_text() + '\n[pool_defaults.identity]\nuser = "root"\n')
    return factory, tmp, root, port, result


def test_import_writes_config_web_toml_and_report(imported):
    _factory, tmp, root, _port, result = imported
    text = (tmp / "wasp.toml").read_text()
    assert 'app = "hello:app"' in text
    # C:\INETPUB\pyapp is found as inetpub/PyApp on disk (Windows paths ignore case).
    assert f'physical_path = "{root}/c/inetpub/PyApp"' in text
    assert (root / "c" / "inetpub" / "PyApp" / "web.toml").is_file()
    report = (tmp / "wasp.toml.import-report.txt").read_text()
    assert "managedRuntimeVersion=\"v4.0\"" in report
    assert ".aspx" in report and "Python replacement" in report
    assert "<system.web>" in report
    assert report.splitlines()[0] in result.stdout


def test_validate_passes(imported):
    factory, tmp, _root, _port, _ = imported
    result = factory.run_wasp("validate", "-c", str(tmp / "wasp.toml"), cwd=tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration OK" in result.stdout


@pytest.fixture(scope="module")
def server(imported):
    factory, _tmp, _root, port, _ = imported
    return factory(None, port=port)


def test_serves_static_file_with_the_server_headers(server):
    r = requests.get(server.url + "/iisstart.htm", timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert "IIS Windows Server" in r.text
    assert r.headers.get("X-Imported-From") == "IIS"
    r = requests.get(server.url + "/", timeout=30)
    assert r.status_code == 200 and "IIS Windows Server" in r.text  # default document


def test_serves_the_python_app_with_app_settings_as_environment(server):
    r = requests.get(server.url + "/py/hello", timeout=60)
    assert r.status_code == 200, (r.status_code, r.text[:500], server.diagnostics())
    assert r.text == "hello from web.config at /hello"


def test_web_toml_static_mime_and_rewrite(server):
    r = requests.get(server.url + "/py/static.txt", timeout=30)
    assert r.status_code == 200 and r.text == "static text file\n"
    r = requests.get(server.url + "/py/data.json", timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.headers.get("Cache-Control") == "max-age=3600"
    r = requests.get(server.url + "/py/manual/page", allow_redirects=False, timeout=30)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert r.headers["Location"].endswith("docs/page")
    r = requests.get(server.url + "/py/x", headers={"User-Agent": "BadBot/1.0"}, timeout=30)
    assert r.status_code == 403


def test_config_files_stay_hidden(server):
    for name in ("web.config", "web.toml"):
        r = requests.get(server.url + "/py/" + name, timeout=30)
        assert r.status_code == 404, (name, r.status_code)


def test_hostile_apphost_is_refused_and_nothing_written(wasp_server, tmp_path):
    bomb = tmp_path / "applicationHost.config"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE configuration [<!ENTITY a "aaaaaaaaaa">'
                    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><configuration>&b;</configuration>')
    result = wasp_server.run_wasp("import-iis", str(bomb), "-o", str(tmp_path / "out.toml"), cwd=tmp_path)
    assert result.returncode == 1
    assert "DOCTYPE refused" in result.stderr
    assert not (tmp_path / "out.toml").exists()
