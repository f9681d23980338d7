"""docs/django.md, run as written: a Django project whose collected static files wasp serves from
a `/static` application next to the Django app."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import requests

PROJECT = "djangostatic"


def doc_block(language: str) -> str:
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "django.md").read_text()
    (block,) = re.findall(rf"```{language}\n(.*?)```", text, re.S)
    return block


def test_the_doc_quotes_the_example_project(wasp_server):
    project = wasp_server.apps / PROJECT
    settings = (project / "mysite" / "settings.py").read_text()
    block = settings.split("# --- static files (docs/django.md) ---\n", 1)[1].split("# --- end ---", 1)[0]
    assert doc_block("python") == block
    assert doc_block("toml") == (project / "wasp.toml").read_text()
    # The README's short version is the applications part of the same file, word for word.
    readme = (wasp_server.apps.parents[2] / "README.md").read_text()
    section = readme.split("## A Django project's static files", 1)[1].split("\n## ", 1)[0]
    [snippet] = re.findall(r"```toml\n(.*?)```", section, re.S)
    assert snippet in doc_block("toml")


def test_django_page_and_collected_static_file(wasp_server, tmp_path):
    shutil.copytree(wasp_server.apps / PROJECT, tmp_path, dirs_exist_ok=True)
    collect = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert collect.returncode == 0, collect.stderr
    css = (tmp_path / "assets" / "css" / "site.css").read_bytes()
    assert (tmp_path / "staticfiles" / "css" / "site.css").read_bytes() == css
    toml = doc_block("toml")
    assert "127.0.0.1:8000" in toml
    server = wasp_server(toml.replace("127.0.0.1:8000", "127.0.0.1:{port}"))
    page = requests.get(server.url + "/", timeout=30)
    assert page.status_code == 200, (page.status_code, page.text[:300], server.diagnostics())
    assert "<h1>Django and its static files on wasp</h1>" in page.text
    assert 'href="/static/css/site.css"' in page.text  # Django's {% static %} points at wasp's app
    static = requests.get(server.url + "/static/css/site.css", timeout=30)
    assert static.status_code == 200, (static.status_code, static.text[:300])
    assert static.content == css
    assert static.headers["Content-Type"].startswith("text/css")
    assert "ETag" in static.headers  # wasp's static handler, not Django
    missing = requests.get(server.url + "/static/css/nope.css", timeout=30)
    assert missing.status_code == 404
