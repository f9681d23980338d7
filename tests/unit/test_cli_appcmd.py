"""wasp/cli/appcmd.py: appcmd's parameters, values typed by the model, and the change requests."""

from __future__ import annotations

import pytest

from wasp.cli import appcmd, configcmd
from wasp.cli.appcmd import CommandError, Param, coerce, edits_from, object_change, parse_params
from wasp.config import sections
from wasp.config.model import Duration, Pool, Size


def test_both_spellings_of_a_parameter_and_the_general_options():
    params, general = parse_params(["queue_length=2000", "/queueLength:3000", "-maxProcesses:2",
                                    "--json", "-c", "x.toml", "/section:default_document",
                                    "--commit", "web", "--user", "alice"])
    assert params == [Param("set", "queue_length", "2000"), Param("set", "queue_length", "3000"),
                      Param("set", "max_processes", "2")]
    assert general == {"json": True, "c": "x.toml", "section": "default_document", "commit": "web",
                       "user": "alice"}


def test_collection_parameters():
    params, _ = parse_params(["+files.[value='home.html']", "/-files.[value='a.htm']",
                              "/+[name='M',type='m:M']", "-[name='X']", "-recycling.time",
                              "errors.[statusCode='404'].path=/404.html"])
    assert params == [Param("add", "files.[value='home.html']", None),
                      Param("remove", "files.[value='a.htm']", None),
                      Param("add", "[name='M',type='m:M']", None),
                      Param("remove", "[name='X']", None),
                      Param("clear", "recycling.time", None),
                      Param("set", "errors.[statusCode='404'].path", "/404.html")]


def test_camel_case_becomes_snake_case_outside_selector_values_only():
    assert appcmd._snake_path("processModel.idleTimeout") == "process_model.idle_timeout"
    assert appcmd._snake_path("files.[value='HomePage.html']") == "files.[value='HomePage.html']"
    assert appcmd._snake_path("applicationPool") == "pool"
    assert appcmd._snake_path("physicalPath") == "physical_path"


def test_an_unknown_parameter_is_bad_usage():
    with pytest.raises(CommandError) as info:
        parse_params(["justaword"])
    assert info.value.code == 2


def test_values_take_the_models_type():
    assert coerce("2000", int) == 2000
    assert coerce("1h", Duration) == "1h" and coerce("90", Duration) == 90 and coerce("2.5", Duration) == 2.5
    assert coerce("512MB", Size) == "512MB"
    assert coerce("true", bool) is True and coerce("False", bool) is False
    assert coerce("yes", bool) == "yes"  # the loader says what is wrong with it
    assert coerce("10", str) == "10"  # a name that looks like a number stays a name
    assert coerce("a.html, b.html", list[str]) == ["a.html", "b.html"]
    assert coerce('["x", "y"]', list[str]) == ["x", "y"]
    assert coerce('{A = "1"}', dict[str, str]) == {"A": "1"}
    assert coerce('"007"', int) == "007"
    with pytest.raises(CommandError):
        coerce("[unclosed", list[str])


def test_edits_of_a_pool():
    params, _ = parse_params(["recycling.time=12h", "/processModel.idleTimeout:0", "threads=4",
                              "-recycling.requests"])
    assert edits_from(params, Pool) == [
        {"op": "set", "path": ["recycling", "time"], "value": "12h"},
        {"op": "set", "path": ["process_model", "idle_timeout"], "value": 0},
        {"op": "set", "path": ["threads"], "value": 4},
        {"op": "delete", "path": ["recycling", "requests"]}]


def test_edits_of_sections_and_their_collections():
    cls = sections.info("default_document").cls
    params, _ = parse_params(["enabled=false", "+files.[value='home.html']", "-files.[value='x.htm']"])
    assert edits_from(params, cls, "default_document") == [
        {"op": "set", "path": ["enabled"], "value": False},
        {"op": "add", "path": ["files"], "value": "home.html"},
        {"op": "delete", "path": ["files", {"value": "x.htm"}]}]
    errors = sections.info("http_errors").cls
    params, _ = parse_params(["+errors.[statusCode='404',path='/404.html',responseMode='ExecuteURL']"])
    assert edits_from(params, errors, "http_errors") == [
        {"op": "add", "path": ["errors"],
         "value": {"status_code": 404, "path": "/404.html", "response_mode": "ExecuteURL"}}]
    modules = sections.info("modules").cls
    params, _ = parse_params(["+[name='mine',type='mymod:Mine']"])
    assert edits_from(params, modules, "modules") == [
        {"op": "add", "path": [], "value": {"name": "mine", "type": "mymod:Mine"}}]
    with pytest.raises(CommandError):
        edits_from(parse_params(["+[value='x']"])[0], cls, "default_document")


def test_iis_binding_syntax_becomes_a_wasp_binding():
    from wasp.config.model import Site

    params, _ = parse_params(["/+bindings.[protocol='http',bindingInformation='*:8081:']"])
    assert edits_from(params, Site) == [{"op": "add", "path": ["bindings"], "value": "http/*:8081:"}]


def test_object_requests_and_their_appcmd_lines():
    req, lines = object_change("add", "pool", "api", parse_params(["maxProcesses=2", "recycling.time=1h"])[0])
    assert req == {"edits": [{"op": "add", "path": ["pools"], "value": {"name": "api", "max_processes": 2}},
                             {"op": "set", "path": ["pools", {"name": "api"}, "recycling", "time"], "value": "1h"}]}
    assert lines == ['APPPOOL object "api" added']
    req, lines = object_change("add", "pool", "", parse_params(["/name:batch"])[0])
    assert lines == ['APPPOOL object "batch" added']
    req, lines = object_change("set", "app", "Default Web Site/shop", parse_params(["/applicationPool:api"])[0])
    assert req == {"target": {"app": "Default Web Site/shop"},
                   "edits": [{"op": "set", "path": ["pool"], "value": "api"}]}
    assert lines == ['APP object "Default Web Site/shop" changed']
    req, lines = object_change("add", "site", "Shop", parse_params(
        ["bindings=http/*:81:,http/*:82:", "physicalPath=/srv/shop", "applicationPool=api"])[0])
    assert req["edits"][0] == {"op": "add", "path": ["sites"],
                               "value": {"name": "Shop", "bindings": ["http/*:81:", "http/*:82:"]}}
    assert req["edits"][1]["value"] == {"path": "/", "physical_path": "/srv/shop", "pool": "api"}
    assert lines == ['SITE object "Shop" added', 'APP object "Shop/" added', 'VDIR object "Shop/" added']
    req, lines = object_change("delete", "binding", "Shop", [Param("set", "binding", "http/*:82:")])
    assert req == {"target": {"site": "Shop"},
                   "edits": [{"op": "delete", "path": ["bindings", {"binding": "http/*:82:"}]}]}
    req, lines = object_change("set", "vdir", "Shop/", parse_params(["physicalPath=/srv/new"])[0])
    assert req == {"target": {"app": "Shop"}, "edits": [{"op": "set", "path": ["physical_path"], "value": "/srv/new"}]}


def test_missing_identifiers_and_empty_sets_are_appcmds_errors():
    with pytest.raises(CommandError) as info:
        object_change("add", "pool", "", [])
    assert str(info.value) == "Must specify the APPPOOL object with identifier."
    with pytest.raises(CommandError):
        object_change("set", "pool", "api", [])
    with pytest.raises(CommandError):
        object_change("add", "vdir", "Shop/images", parse_params(["physicalPath=/x"])[0])


def test_identifiers_are_the_words_before_the_parameters():
    assert configcmd._split_words(["Default Web Site/app", "pool=x", "-c", "f"]) == (
        ["Default Web Site/app"], ["pool=x", "-c", "f"])
    assert configcmd._split_words(["Shop", "http/*:80:", "certificate=c.pem"]) == (
        ["Shop", "http/*:80:"], ["certificate=c.pem"])
    assert configcmd._split_words(["--section", "x", "Site"]) == ([], ["--section", "x", "Site"])


def test_list_config_text_shows_where_each_key_was_set():
    text = configcmd.config_text({"path": "MACHINE/WEBROOT/APPHOST/S", "effective": True, "sections": {
        "default_document": {"enabled": {"value": False, "set_at": "wasp.toml sites[name='S']"},
                             "files": {"value": ["a.html"], "set_at": "default"}}}})
    lines = text.splitlines()
    assert lines[0] == '# CONFIG "MACHINE/WEBROOT/APPHOST/S"'
    assert lines[1] == "[default_document]"
    assert lines[2].startswith("enabled = false") and lines[2].endswith("# wasp.toml sites[name='S']")
    assert lines[3].startswith('files = ["a.html"]') and lines[3].endswith("# default")
