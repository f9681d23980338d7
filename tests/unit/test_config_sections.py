"""The system.webServer sections: registry, decoding at server / site / application level with
dotted-path errors, and IIS's merge (scalars, sub-elements key by key, collections add/remove/clear)."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest
from msgspec import Struct, field

from wasp.config import sections
from wasp.config.load import load_text
from wasp.config.sections import Section, SectionError, collection, register
from wasp.config.sections.modules import NATIVE_MODULES
from wasp.errors import ConfigError

HEAD = '[[pools]]\nname = "DefaultAppPool"\n'
SITE = '[[sites]]\nname = "s"\nid = 1\nbindings = ["http/*:8080:"]\n'
APP = '[[sites.applications]]\npath = "/"\napp = "m:app"\n'


class Limits(Struct, forbid_unknown_fields=True, kw_only=True):
    max_url: int = 4096
    max_query: int = 2048


class Rule(Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    verb: str = "*"
    users: str = ""


class Sample(Section):
    enabled: bool = True
    mode: str = "a"
    limits: Limits = field(default_factory=Limits)
    rules: Annotated[list[Rule], collection(key="name")] = field(
        default_factory=lambda: [Rule(name="first")])
    pairs: Annotated[list[Rule], collection(key=("verb", "users"))] = field(default_factory=list)
    first: Annotated[list[str], collection(merge_append=False)] = field(default_factory=lambda: ["x"])


@pytest.fixture
def sample():
    register("sample_section", Sample)
    yield
    sections.unregister("sample_section")


def config(server: str = "", site: str = "", app: str = "") -> str:
    return server + HEAD + SITE + site + APP + app


def effective(text: str):
    loaded = load_text(text)
    site = loaded.sites[0]
    app = site.applications[0]
    levels = sections.application_levels(loaded.sections, site.id, f"{site.id}{app.path}",
                                         app.default_documents)
    value, _ = sections.resolve(levels, lambda path, message: pytest.fail(f"{path}: {message}"))
    return value


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_text(text)
    return [(p.path, p.message) for p in info.value.problems]


# ---- merging, level by level ----

MERGES = [
    # (server, site, app) tables of [sample_section] -> (attribute, expected effective value)
    ("", "", "", "mode", "a"),
    ("mode = \"s\"\n", "", "", "mode", "s"),
    ("mode = \"s\"\n", "mode = \"site\"\n", "", "mode", "site"),
    ("mode = \"s\"\n", "mode = \"site\"\n", "mode = \"app\"\n", "mode", "app"),
    ("enabled = false\n", "mode = \"site\"\n", "", "enabled", False),
    # a sub-element merges key by key
    ("limits = { max_url = 10 }\n", "limits = { max_query = 20 }\n", "", "limits", Limits(max_url=10, max_query=20)),
    ("limits = { max_url = 10 }\n", "", "limits = { max_url = 30 }\n", "limits", Limits(max_url=30)),
    # collections: an array adds after the inherited entries
    ("rules = [ { name = \"s\" } ]\n", "rules = [ { name = \"site\" } ]\n", "", "rules",
     [Rule(name="first"), Rule(name="s"), Rule(name="site")]),
    ("", "rules = { clear = true, add = [ { name = \"only\" } ] }\n", "", "rules", [Rule(name="only")]),
    ("rules = [ { name = \"s\" } ]\n", "", "rules = { remove = [\"FIRST\"] }\n", "rules", [Rule(name="s")]),
    # remove then add the same key replaces an entry
    ("", "", "rules = { remove = [\"first\"], add = [ { name = \"first\", verb = \"GET\" } ] }\n", "rules",
     [Rule(name="first", verb="GET")]),
    ("", "rules = { clear = true }\n", "", "rules", []),
    # tuple keys
    ("pairs = [ { name = \"a\", verb = \"GET\" } ]\n", "", "pairs = { remove = [[\"get\", \"\"]] }\n", "pairs", []),
    # merge_append = false: a level's entries go before the inherited ones
    ("first = [\"s\"]\n", "first = [\"site1\", \"site2\"]\n", "", "first", ["site1", "site2", "s", "x"]),
]


@pytest.mark.parametrize("server,site,app,attribute,expected", MERGES)
def test_levels_merge(sample, server, site, app, attribute, expected):
    text = config(f"[sample_section]\n{server}" if server else "",
                  f"[sites.sample_section]\n{site}" if site else "",
                  f"[sites.applications.sample_section]\n{app}" if app else "")
    assert getattr(effective(text).sample_section, attribute) == expected


def test_effective_structs_are_new_and_defaults_untouched(sample):
    value = effective(config(app="[sites.applications.sample_section]\nrules = [ { name = \"b\" } ]\n"))
    assert [r.name for r in value.sample_section.rules] == ["first", "b"]
    assert [r.name for r in Sample().rules] == ["first"]


# ---- errors, each with its dotted path ----

ERRORS = [
    ("[sample_section]\nmode = 1\n", "", "", "sample_section.mode", "expected a string, got an integer"),
    ("[sample_section]\nmodes = \"a\"\n", "", "", "sample_section.modes", "unknown key; did you mean \"mode\"?"),
    ("", "[sites.sample_section]\nlimits = { max_uri = 1 }\n", "", "sites[0].sample_section.limits.max_uri", "unknown key"),
    ("", "", "[sites.applications.sample_section]\nrules = [ { verb = \"GET\" } ]\n",
     "sites[0].applications[0].sample_section.rules[0].name", "required key is missing"),
    ("", "", "[sites.applications.sample_section]\nrules = { add = [ { name = \"First\" } ] }\n",
     "sites[0].applications[0].sample_section.rules.add[0]", "name = \"First\" is already in the list (the default list)"),
    ("[sample_section]\nrules = [ { name = \"s\" } ]\n", "", "[sites.applications.sample_section]\nrules = [ { name = \"s\" } ]\n",
     "sites[0].applications[0].sample_section.rules[0]", "already in the list (sample_section.rules[0])"),
    ("", "[sites.sample_section]\nrules = [ { name = \"a\" }, { name = \"a\" } ]\n", "",
     "sites[0].sample_section.rules[1]", "already in the list (sites[0].sample_section.rules[0])"),
    ("", "", "[sites.applications.sample_section]\nrules = { remove = [\"nope\"] }\n",
     "sites[0].applications[0].sample_section.rules.remove[0]", "'nope' is not in the inherited list"),
    ("", "", "[sites.applications.sample_section]\nrules = { remove = \"first\" }\n",
     "sites[0].applications[0].sample_section.rules.remove", "expected an array of keys"),
    ("", "", "[sites.applications.sample_section]\nrules = { drop = [\"first\"] }\n",
     "sites[0].applications[0].sample_section.rules.drop", "a collection table has clear, remove and add"),
    ("", "", "[sites.applications.sample_section]\nrules = \"first\"\n",
     "sites[0].applications[0].sample_section.rules", "expected an array of entries to add"),
    ("", "", "[sites.applications.sample_section]\npairs = { remove = [\"GET\"] }\n",
     "sites[0].applications[0].sample_section.pairs.remove[0]", "expected [verb, users]"),
    ("sample_section = 3\n", "", "", "sample_section", "expected a table, got an integer"),
]


@pytest.mark.parametrize("server,site,app,path,message", ERRORS)
def test_errors_name_their_path(sample, server, site, app, path, message):
    found = problems(config(server, site, app))
    assert any(p == path and message in m for p, m in found), found


def test_server_level_problem_is_reported_once_for_many_sites(sample):
    text = "[sample_section]\nmode = 1\n" + HEAD + SITE + APP + SITE.replace("id = 1", "id = 2").replace(
        '"s"', '"t"').replace("8080", "8081") + APP
    assert [p for p, _ in problems(text)] == ["sample_section.mode"]


def test_problem_has_its_line(sample):
    text = config(app="[sites.applications.sample_section]\nmode = 1\n")
    with pytest.raises(ConfigError) as info:
        load_text(text)
    assert info.value.problems[0].line == text.splitlines().index("mode = 1") + 1


# ---- the registry ----

def test_registry_refuses_a_second_class_and_fields_without_defaults():
    class Other(Section):
        mode: str = ""

    with pytest.raises(SectionError, match="registered twice"):
        register("http_errors", Other)

    class Needs(Section):
        name: str

    with pytest.raises(SectionError, match="has no default"):
        register("needs_section", Needs)
    assert "needs_section" not in sections.registered()


def test_builtin_sections_and_their_lock_defaults():
    found = {name: entry.override_mode_default for name, entry in sections.registered().items()}
    assert {"http_errors": "Allow", "caching": "Allow", "access": "Deny", "default_document": "Allow",
            "modules": "Deny"}.items() <= found.items()


# ---- the built-in sections at their levels ----

def test_http_errors_at_server_level_reaches_sites_and_applications():
    loaded = load_text(config("[http_errors]\nerror_mode = \"Custom\"\n"))
    assert loaded.sites[0].http_errors.error_mode == "Custom"
    assert loaded.sites[0].applications[0].http_errors.error_mode == "Custom"


def test_access_at_server_level_is_the_site_s():
    loaded = load_text(config("[access]\nssl_flags = [\"ssl\"]\n"))
    assert loaded.sites[0].access.ssl_flags == ["ssl"]


def test_default_document_files_prepend_and_default_documents_replaces():
    value = effective(config("[default_document]\nfiles = [\"home.html\"]\n",
                             "[sites.default_document]\nfiles = { remove = [\"Default.asp\"] }\n"))
    assert value.default_document.files == ["home.html", "Default.htm", "index.htm", "index.html", "iisstart.htm"]
    value = effective(config("[default_document]\nfiles = [\"home.html\"]\n", app='default_documents = ["a.html"]\n'))
    assert value.default_document.files == ["a.html"]
    found = problems(config(app='default_documents = ["a.html"]\n[sites.applications.default_document]\nfiles = ["b"]\n'))
    assert ("sites[0].applications[0].default_documents",
            "set either default_documents or default_document.files, not both") in found
    found = problems(config("[default_document]\nfiles = [\"a/b\"]\n"))
    assert found[0][0] == "default_document.files[0]"


def test_modules_default_and_a_removal_and_an_array():
    assert [e.name for e in effective(config()).modules.entries] == list(NATIVE_MODULES)
    value = effective(config(app="[sites.applications.modules]\nremove = [\"http_cache\"]\n"))
    assert [e.name for e in value.modules.entries] == [m for m in NATIVE_MODULES if m != "http_cache"]
    value = effective(config("modules = [ { name = \"api_key\", type = \"mine:ApiKey\" } ]\n"))
    assert value.modules.entries[-1].type == "mine:ApiKey"
    value = effective(config("[modules]\nclear = true\nadd = [ { name = \"static_file\" } ]\n"))
    assert [e.name for e in value.modules.entries] == ["static_file"]
    found = problems(config("[modules]\nentries = []\nclear = true\n"))
    assert found[0] == ("modules.entries", "write either entries or clear/remove/add, not both")
    found = problems(config(site="[sites.modules]\nadd = [ { name = \"static_file\" } ]\n"))
    assert found[0][0] == "sites[0].modules.add[0]"


def test_a_python_module_s_own_table_is_carried_undecoded():
    text = config("modules = [ { name = \"api_key\", type = \"mine:ApiKey\" } ]\n",
                  app="[sites.applications.api_key]\nheader = \"X-Key\"\n")
    loaded = load_text(text)
    assert loaded.sections["applications"]["1/"]["api_key"] == {"header": "X-Key"}
    levels = sections.application_levels(loaded.sections, 1, "1/")
    _value, passthrough = sections.resolve(levels, lambda p, m: pytest.fail(m))
    assert passthrough == {"api_key": {"header": "X-Key"}}
    # a table no module names is still an unknown key
    assert problems(config(app="[sites.applications.api_key]\nheader = 1\n"))[0][0] == \
        "sites[0].applications[0].api_key"


def test_sections_survive_the_trip_to_a_worker():
    from wasp.config import model
    loaded = load_text(config("[http_errors]\nerror_mode = \"Custom\"\n"))
    assert model.decode(model.encode(loaded)).sections == loaded.sections
