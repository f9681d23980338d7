"""The handler mapping list: matching (path, verb, resource type, access), IIS's prepend merge,
and the managedHandler precondition decided from it."""

from __future__ import annotations

import pytest

from wasp.config import sections
from wasp.worker import modules  # noqa: F401  (registers the built-in modules)
from wasp.worker.handlers import compile_path, parse_verbs
from wasp.worker.pipeline import Pipeline

from worker_fakes import make_app, make_ctx


@pytest.mark.parametrize("pattern, rel, hit", [
    ("*", b"/anything", True),
    ("*.py", b"/a/b.py", True), ("*.py", b"/a/b.PY", True), ("*.py", b"/a/b.pyc", False),
    ("*.py", b"/a.py/b", False),                      # the file name, not a directory on the way
    ("robots.txt", b"/robots.txt", True), ("robots.txt", b"/x/robots.txt", True),
    ("robots.txt", b"/robots.txt.bak", False),
    ("/api/*", b"/api/users", True), ("/api/*", b"/API/users", True), ("/api/*", b"/apix/users", False),
    ("api/*", b"/api/x", True),                       # a path with "/" is rooted at the application
    ("/api/*", b"/x/api/users", False),
    ("a.b", b"/aXb", False),                          # only "*" is special
])
def test_handler_paths_match_like_iis(pattern, rel, hit):
    match = compile_path(pattern)
    name = rel[rel.rfind(b"/") + 1:]
    assert (match is None or match(rel, name)) is hit


def test_verbs():
    assert parse_verbs("*") is None
    assert parse_verbs("GET, HEAD,POST") == {"GET", "HEAD", "POST"}


def tables(app_handlers=None, server=None):
    t = {"server": server or {}}
    if app_handlers is not None:
        t["applications"] = {"1/": {"handlers": app_handlers}}
    return t


#: IIS's server-side include entries, between the Python app's and StaticFile.
SSINC = ["SSINC-stm", "SSINC-shtm", "SSINC-shtml"]


def run(app, method="GET", path="/"):
    pipeline = Pipeline(app)
    ctx = make_ctx(app, method=method, path=path)
    pipeline.run_sync(ctx)
    return ctx.channel.response()


def test_a_level_s_entries_come_before_the_inherited_ones(tmp_path):
    t = tables([{"name": "Api", "path": "/api/*", "verb": "POST", "modules": "python_app"}])
    app = make_app(physical_path=str(tmp_path), tables=t)
    assert [e.name for e in app.sections.handlers.entries] == ["Api", "PythonApp", *SSINC, "StaticFile"]


def test_removing_and_clearing_handlers(tmp_path):
    app = make_app(physical_path=str(tmp_path), tables=tables({"remove": ["PythonApp"]}))
    assert [e.name for e in app.sections.handlers.entries] == [*SSINC, "StaticFile"]
    app = make_app(physical_path=str(tmp_path), tables=tables({"clear": True}))
    assert app.sections.handlers.entries == []
    assert run(app, path="/x.txt")[:2] == (404, 4)


def test_bad_entries_name_their_key():
    problems = []
    sections.resolve([("sites.applications[0]", {"handlers": [{"name": "x", "path": "*", "verb": "GET;rm"}]})],
                     lambda p, m: problems.append((p, m)))
    assert problems and problems[0][0] == "sites.applications[0].handlers.entries[0].verb"


def test_path_matching_and_verb_not_listed_goes_on_then_405_with_allow(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    t = tables({"clear": True, "add": [
        {"name": "Read", "path": "*.txt", "verb": "GET,HEAD", "modules": "static_file",
         "resource_type": "File", "require_access": "Read"}]})
    app = make_app(physical_path=str(tmp_path), tables=t)
    assert run(app, path="/f.txt")[:2] == (200, 0)
    status, sub, headers, *_ = run(app, method="DELETE", path="/f.txt")
    assert (status, sub, headers["allow"]) == (405, 0, "GET, HEAD")
    assert run(app, path="/f.css")[:2] == (404, 4)      # no entry's path: no handler


def test_resource_type_and_access_policy(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f.txt").write_text("x")
    entry = {"name": "Files", "path": "*", "modules": "static_file", "resource_type": "File",
             "require_access": "Read"}
    app = make_app(physical_path=str(tmp_path), tables=tables({"clear": True, "add": [entry]}))
    assert run(app, path="/nope.txt")[:2] == (404, 0)
    assert run(app, path="/d/")[:2] == (404, 0)         # a directory is not a File
    app = make_app(physical_path=str(tmp_path), tables=tables(
        {"clear": True, "add": [entry]}, server={"handlers": {"access_policy": ["Script"]}}))
    assert run(app, path="/f.txt")[:2] == (403, 2)      # Read not granted: 403.2


def test_an_entry_whose_module_does_not_run_is_passed_over(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    app = make_app(physical_path=str(tmp_path))  # no Python app: PythonApp has no handler
    pipeline = Pipeline(app)
    assert pipeline.map_for(app.sections.handlers).names == [*SSINC, "StaticFile"]
    assert run(app, path="/f.txt")[:2] == (200, 0)


def test_empty_segments_find_the_same_location():
    # "//private/x" is /private/x on disk: it must get the location's configuration (a bypass
    # of every per-path rule otherwise).
    location = {"site": 1, "url": "/private", "override_mode": "Inherit", "at": "locations[0]",
                "tables": {"default_document": {"files": ["p.html"]}}}
    from wasp.config import model
    from wasp.worker.application import Application

    config = model.Application(path="/")
    site = model.Site(name="S", id=1, bindings=["http/*:80:"], applications=[config])
    app = Application(site, config, {"locations": [location]})
    for path in (b"/private/x", b"//private/x", b"/private//x", b"///private///"):
        assert app.urls.lookup(path).default_document.files[0] == "p.html", path
    assert app.urls.lookup(b"/other/x").default_document.files[0] != "p.html"


def test_managed_handler_modules_are_gated_by_the_mapping(tmp_path):
    from wasp.config.sections.modules import ModuleEntry
    from wasp.worker.registry import CONTINUE, Module, Phase, register, unregister

    seen = []

    @register("t.managed", phases=(Phase.BEGIN_REQUEST,))
    class Managed(Module):
        def begin_request(self, ctx):
            seen.append(ctx.head.path)
            return CONTINUE

    try:
        (tmp_path / "f.txt").write_text("x")
        app = make_app(physical_path=str(tmp_path))

        class Host:
            def execute(self, ctx):
                ctx.respond(b"200 OK\r\nContent-Length: 3\r\n", b"app")
                from wasp.worker.registry import FINISH
                return FINISH
        app.host = Host()
        section = app.sections.modules
        import msgspec
        gated = msgspec.structs.replace(section, entries=section.entries + [
            ModuleEntry(name="t.managed", pre_condition="managedHandler")])
        pipeline = Pipeline(app, section=gated)
        for path in ("/f.txt", "/app"):
            ctx = make_ctx(app, path=path, threaded=False)
            pipeline.run_sync(ctx)
        assert seen == [b"/app"]
        every = Pipeline(app, section=msgspec.structs.replace(
            gated, run_all_managed_modules_for_all_requests=True))
        every.run_sync(make_ctx(app, path="/f.txt", threaded=False))
        assert seen == [b"/app", b"/f.txt"]
    finally:
        unregister("t.managed")
