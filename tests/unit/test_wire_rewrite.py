"""URL Rewrite's engine (wasp/wire/rewrite.py) and its section's checks, without a server."""

from __future__ import annotations

import pytest

from wasp.config.sections import resolve
from wasp.config.sections.rewrite import compile_global, compile_section
from wasp.wire import rewrite as engine
from wasp.wire.htmlrewrite import HtmlRewriter
from wasp.wire.rewrite import Pattern, RewriteConfigError, RuleTimeout, translate_ecmascript


def effective(tables: dict, prefix: str = ""):
    problems: list = []
    levels = [("", {})] + ([(prefix, tables)] if prefix else []) if prefix else [("", tables)]
    eff, _ = resolve(levels, lambda p, m: problems.append((p, m)))
    return eff.rewrite, problems


def rules(*rules, maps=()):
    section, problems = effective({"rewrite": {"rules": list(rules), "rewrite_maps": list(maps)}})
    assert problems == []
    return compile_section(section)[0]


class Vars:
    """Server variables and a fake file system."""

    def __init__(self, files=(), dirs=(), **variables):
        self.variables = {"HTTPS": "off", "HTTP_HOST": "example.com", **variables}
        self.files = set(files)
        self.dirs = set(dirs)

    def get(self, name):
        return self.variables.get(name, "")

    def filename(self, url):
        return "/srv/www" + url

    def is_file(self, path):
        return path in self.files

    def is_dir(self, path):
        return path in self.dirs


def run(ruleset, path, query="", v=None):
    v = v or Vars()
    return ruleset.evaluate(path, query, v.get, v)


# ---- patterns ----

@pytest.mark.parametrize("source, translated", [
    (r"^(.*)$", r"^(.*)\Z"),
    (r"(?<year>\d{4})/\k<year>", r"(?<year>\d{4})/(?P=year)"),
    (r"[^]", r"[\s\S]"),
    (r"a[]b", r"a(?!)b"),
    (r"\cJ", r"\x0a"),
    (r"\u{1F600}", r"\x{1F600}"),
    (r"\$\/", r"\$/"),
    (r"[$]", r"[$]"),
    (r"a+?b*?", r"a+?b*?"),
])
def test_ecmascript_is_translated_to_the_same_meaning(source, translated):
    assert translate_ecmascript(source) == translated


@pytest.mark.parametrize("source", [
    "(?i)abc", "(?P<x>a)", "(?#note)", "(?>a)", "a*+", "a++", r"\Aabc", r"abc\Z", r"\p{L}",
    "[abc", "abc\\", "(a", r"\k<x",
])
def test_what_ecmascript_does_not_say_is_refused(source):
    with pytest.raises(RewriteConfigError):
        Pattern(source)


def test_dollar_is_the_end_of_the_input_not_before_a_newline():
    assert Pattern("^abc$").match("abc") is not None
    assert Pattern("^abc$").match("abc\n") is None


def test_digits_and_word_characters_are_ascii_as_in_ecmascript():
    assert Pattern(r"^\d+$").match("١٢٣") is None      # Arabic-Indic digits
    assert Pattern(r"^\w+$").match("é") is None


def test_wildcard_star_captures_question_mark_does_not():
    assert Pattern("*/*.html", "Wildcard").match("contoso/test.html") == ("contoso/test.html", "contoso", "test")
    assert Pattern("img?.png", "Wildcard").match("img1.png") == ("img1.png",)
    assert Pattern("*.png", "Wildcard").match("a.png.txt") is None  # the whole input
    assert Pattern("a.b", "Wildcard").match("axb") is None          # "." is literal


def test_exact_match_and_case():
    assert Pattern("Index.HTML", "ExactMatch").match("index.html") == ("index.html",)
    assert Pattern("Index.HTML", "ExactMatch", ignore_case=False).match("index.html") is None
    assert Pattern("^ABC$", ignore_case=False).match("abc") is None


def test_catastrophic_backtracking_times_out_instead_of_hanging():
    with pytest.raises(RuleTimeout):
        Pattern(r"^(a|aa)+$").match("a" * 5000 + "!")


def test_an_input_over_the_limit_is_never_matched():
    with pytest.raises(RuleTimeout):
        Pattern("x").match("a" * (engine.MAX_INPUT + 1))


# ---- templates ----

def test_unknown_variable_function_and_map_are_config_errors():
    with pytest.raises(RewriteConfigError, match="not a server variable"):
        engine.Template("{NO_SUCH_THING}")
    with pytest.raises(RewriteConfigError, match="neither a function"):
        engine.Template("{Nope:{R:1}}", frozenset())
    with pytest.raises(RewriteConfigError, match="back-reference"):
        engine.Template("{R:10}")
    with pytest.raises(RewriteConfigError, match="only in outbound"):
        engine.Template("{RESPONSE_Location}")
    with pytest.raises(RewriteConfigError):
        engine.Template("{R:1")


def test_functions_and_variables_expand():
    env = engine.Env({"HTTP_HOST": "Example.COM"}.get, {})
    env.rule = ("a b/c", "a b/c")
    assert engine.Template("{ToLower:{HTTP_HOST}}").expand(env) == "example.com"
    assert engine.Template("{UrlEncode:{R:1}}").expand(env) == "a%20b%2Fc"
    assert engine.Template("{UrlDecode:x%41y}").expand(env) == "xAy"
    assert engine.Template("{R:5}-{C:1}").expand(env) == "-"


# ---- inbound rules ----

def test_http_to_https_redirect_keeps_path_and_query():
    rs = rules({"name": "https", "match": {"url": "(.*)"},
                "conditions": {"entries": [{"input": "{HTTPS}", "pattern": "^OFF$"}]},
                "action": {"type": "Redirect", "url": "https://{HTTP_HOST}/{R:1}",
                           "redirect_type": "Permanent"}})
    r = run(rs, "/shop/cart", "id=3")
    assert (r.kind, r.status, r.location) == ("Redirect", 301, "https://example.com/shop/cart?id=3")
    assert run(rs, "/x", v=Vars(HTTPS="on")).kind == "None"


@pytest.mark.parametrize("kind, status", [("Permanent", 301), ("Found", 302), ("SeeOther", 303),
                                          ("Temporary", 307)])
def test_redirect_types(kind, status):
    rs = rules({"name": "r", "match": {"url": "^old$"},
                "action": {"type": "Redirect", "url": "/new", "redirect_type": kind}})
    assert run(rs, "/old").status == status


def test_query_string_append_rules():
    def rewrite(url, append):
        return rules({"name": "r", "match": {"url": "^p/(\\w+)$"},
                      "action": {"type": "Rewrite", "url": url, "append_query_string": append}})
    r = run(rewrite("index.php?page={R:1}", True), "/p/about", "lang=en")
    assert (r.path, r.query) == ("/index.php", "page=about&lang=en")
    r = run(rewrite("index.php?page={R:1}", False), "/p/about", "lang=en")
    assert (r.path, r.query) == ("/index.php", "page=about")
    r = run(rewrite("/about.html", True), "/p/about", "lang=en")
    assert (r.path, r.query) == ("/about.html", "lang=en")
    r = run(rewrite("/about.html", False), "/p/about", "lang=en")
    assert (r.path, r.query) == ("/about.html", "")


def test_later_rules_see_the_rewritten_url_and_stop_processing_stops():
    rs = rules({"name": "one", "match": {"url": "^a$"}, "action": {"type": "Rewrite", "url": "/b"}},
               {"name": "two", "match": {"url": "^b$"}, "action": {"type": "Rewrite", "url": "/c"},
                "stop_processing": True},
               {"name": "three", "match": {"url": "^c$"}, "action": {"type": "Rewrite", "url": "/d"}})
    r = run(rs, "/a")
    assert (r.path, r.rules) == ("/c", ["one", "two"])


def test_negated_match_and_disabled_rule():
    rs = rules({"name": "off", "enabled": False, "match": {"url": ".*"},
                "action": {"type": "AbortRequest"}},
               {"name": "not-api", "match": {"url": "^api/", "negate": True},
                "action": {"type": "CustomResponse", "status_code": 403, "sub_status_code": 7,
                           "status_reason": "Forbidden", "status_description": "only /api"}})
    r = run(rs, "/home")
    assert (r.kind, r.status, r.substatus, r.reason, r.description) == \
        ("CustomResponse", 403, 7, "Forbidden", "only /api")
    assert run(rs, "/api/x").kind == "None"


def test_condition_back_references_last_match_and_track_all():
    base = {"name": "host", "match": {"url": "(.*)"},
            "action": {"type": "Rewrite", "url": "/{C:1}/{C:2}/{R:1}"}}
    conds = [{"input": "{HTTP_HOST}", "pattern": "^(\\w+)\\.example\\.com$"},
             {"input": "{QUERY_STRING}", "pattern": "^v=(\\d)$"}]
    r = run(rules({**base, "conditions": {"entries": conds}}), "/x", "v=2",
            Vars(HTTP_HOST="shop.example.com"))
    assert r.path == "/2//x"   # {C:n} are the last matched condition's
    r = run(rules({**base, "conditions": {"entries": conds, "track_all_captures": True}}),
            "/x", "v=2", Vars(HTTP_HOST="shop.example.com"))
    assert r.path == "/shop/2/x"  # numbered on: the first's groups, then the second's


def test_match_any():
    rs = rules({"name": "any", "match": {"url": ".*"},
                "conditions": {"logical_grouping": "MatchAny", "entries": [
                    {"input": "{HTTP_USER_AGENT}", "pattern": "bot"},
                    {"input": "{REMOTE_ADDR}", "pattern": "^10\\."}]},
                "action": {"type": "AbortRequest"}})
    assert run(rs, "/", v=Vars(REMOTE_ADDR="10.1.2.3")).kind == "AbortRequest"
    assert run(rs, "/", v=Vars(HTTP_USER_AGENT="GoodBot/1")).kind == "AbortRequest"
    assert run(rs, "/", v=Vars(REMOTE_ADDR="192.0.2.1")).kind == "None"
    assert rs.varies  # looks at a header and the client: never cacheable by the front


def test_spa_fallback_with_is_file_and_is_directory_negated():
    rs = rules({"name": "spa", "match": {"url": ".*"},
                "conditions": {"entries": [
                    {"input": "{REQUEST_FILENAME}", "match_type": "IsFile", "negate": True},
                    {"input": "{REQUEST_FILENAME}", "match_type": "IsDirectory", "negate": True}]},
                "action": {"type": "Rewrite", "url": "/index.html"}})
    v = Vars(files={"/srv/www/app.js"}, dirs={"/srv/www/assets"})
    assert run(rs, "/app.js", v=v).kind == "None"
    assert run(rs, "/assets", v=v).kind == "None"
    assert run(rs, "/users/42", v=v).path == "/index.html"
    assert not rs.varies


def test_rewrite_maps_with_default():
    rs = rules({"name": "moved", "match": {"url": ".*"},
                "conditions": {"entries": [{"input": "{Moved:{REQUEST_URI}}", "pattern": "(.+)"}]},
                "action": {"type": "Redirect", "url": "{C:1}", "append_query_string": False}},
               maps=[{"name": "Moved", "entries": [{"key": "/Old.aspx", "value": "/new"}]}])
    assert run(rs, "/old.aspx", v=Vars(REQUEST_URI="/old.aspx")).location == "/new"
    assert run(rs, "/other", v=Vars(REQUEST_URI="/other")).kind == "None"
    section, problems = effective({"rewrite": {"rules": [
        {"name": "x", "match": {"url": ".*"}, "action": {"type": "Rewrite", "url": "{Nope:{R:0}}"}}]}})
    with pytest.raises(RewriteConfigError):
        compile_section(section)


def test_absolute_rewrite_is_a_proxy_and_must_name_a_plain_host():
    rs = rules({"name": "api", "match": {"url": "^api/(.*)"},
                "action": {"type": "Rewrite", "url": "http://127.0.0.1:9000/{R:1}"}})
    r = run(rs, "/api/v1/users", "page=2")
    assert (r.kind, r.proxy) == ("Rewrite", "http://127.0.0.1:9000/v1/users?page=2")
    ssrf = rules({"name": "ssrf", "match": {"url": "^go/([^/]*)/(.*)"},
                  "action": {"type": "Rewrite", "url": "http://{R:1}/{R:2}"}})
    with pytest.raises(engine.UnsafeUrl):
        run(ssrf, "/go/user@internal/x")
    with pytest.raises(engine.UnsafeUrl):
        run(ssrf, "/go/a b/x")


# ---- attacks on redirects ----

def test_crlf_from_a_back_reference_never_reaches_the_location_raw():
    rs = rules({"name": "r", "match": {"url": "^go/([\\s\\S]*)"},
                "action": {"type": "Redirect", "url": "/to/{R:1}"}})
    loc = run(rs, "/go/x\r\nSet-Cookie: a=b").location
    assert "\r" not in loc and "\n" not in loc and " " not in loc
    assert loc == "/to/x%0D%0ASet-Cookie:%20a=b"


def test_a_relative_redirect_never_becomes_protocol_relative():
    rs = rules({"name": "r", "match": {"url": "^out(.*)"},
                "action": {"type": "Redirect", "url": "{R:1}"}})
    assert run(rs, "/out//evil.example/x").location == "/evil.example/x"
    assert run(rs, "/out/\\evil.example").location.startswith("/%5C") or \
        run(rs, "/out/\\evil.example").location == "/\\evil.example".replace("\\", "%5C")


def test_a_captured_host_cannot_smuggle_another_authority():
    rs = rules({"name": "canon", "match": {"url": "(.*)"},
                "conditions": {"entries": [{"input": "{HTTP_HOST}", "pattern": "^(.*)$"}]},
                "action": {"type": "Redirect", "url": "https://{C:1}/{R:1}"}})
    with pytest.raises(engine.UnsafeUrl):
        run(rs, "/x", v=Vars(HTTP_HOST="good.example@evil.example"))
    with pytest.raises(engine.UnsafeUrl):
        run(rs, "/x", v=Vars(HTTP_HOST="evil.example\\@good.example"))
    assert run(rs, "/x", v=Vars(HTTP_HOST="good.example:8443")).location == "https://good.example:8443/x"


# ---- the section's checks ----

def test_bad_patterns_and_templates_name_their_dotted_key():
    _s, problems = effective({"rewrite": {"rules": [
        {"name": "a", "match": {"url": "(?i)x"}, "action": {"type": "Rewrite", "url": "{NOPE}"}},
        {"name": "b", "match": {"url": "x"},
         "conditions": {"entries": [{"input": "{HTTP_HOST}", "pattern": "a**"}]},
         "action": {"type": "Redirect"}}]}})
    paths = [p for p, _m in problems]
    assert "rewrite.rules[0].match.url" in paths
    assert "rewrite.rules[0].action.url" in paths
    assert "rewrite.rules[1].conditions.entries[0].pattern" in paths
    assert "rewrite.rules[1].action.url" in paths   # a Redirect needs a url


def test_global_rules_only_at_the_server_level():
    rule = {"name": "g", "match": {"url": ".*"}, "action": {"type": "AbortRequest"}}
    _s, problems = effective({"rewrite": {"global_rules": [rule]}}, prefix="sites[0]")
    assert [p for p, _ in problems] == ["sites[0].rewrite.global_rules[0]"]
    section, problems = effective({"rewrite": {"global_rules": [rule]}})
    assert problems == [] and compile_global(section).rules[0].name == "g"


def test_outbound_rule_checks():
    _s, problems = effective({"rewrite": {"outbound_rules": [
        {"name": "a", "match": {"server_variable": "RESPONSE_Location", "filter_by_tags": "A",
                                "pattern": "x"}},
        {"name": "b", "match": {"filter_by_tags": "A, Blink", "pattern": "x"}},
        {"name": "c", "match": {"server_variable": "HTTP_HOST", "pattern": "x"}}]}})
    assert [p for p, _ in problems] == ["rewrite.outbound_rules[0].match",
                                        "rewrite.outbound_rules[1].match.filter_by_tags",
                                        "rewrite.outbound_rules[2].match.server_variable"]


# ---- outbound ----

def outbound(tables):
    section, problems = effective({"rewrite": tables})
    assert problems == []
    return compile_section(section)[1]


def test_outbound_header_rule_with_precondition():
    out = outbound({
        "preconditions": [{"name": "redirects", "entries": [
            {"input": "{RESPONSE_STATUS}", "pattern": "^30[1237]$"}]}],
        "outbound_rules": [{"name": "loc", "precondition": "redirects",
                            "match": {"server_variable": "RESPONSE_Location",
                                      "pattern": "^http://backend:8080/(.*)"},
                            "action": {"type": "Rewrite", "value": "https://{HTTP_HOST}/{R:1}"}}]})
    variables = {"HTTP_HOST": "www.example.com", "RESPONSE_STATUS": "302"}.get
    chosen = out.select(variables)
    assert [r.name for r in chosen] == ["loc"]
    assert out.rewrite_value(chosen, "http://backend:8080/a?b", variables) == "https://www.example.com/a?b"
    assert out.rewrite_value(chosen, "/elsewhere", variables) is None
    assert out.select({"RESPONSE_STATUS": "200"}.get) == []


def test_outbound_precondition_must_exist():
    section, problems = effective({"rewrite": {"outbound_rules": [
        {"name": "x", "precondition": "nope", "match": {"filter_by_tags": "A", "pattern": "."}}]}})
    with pytest.raises(RewriteConfigError, match="precondition"):
        compile_section(section)


def _html(rewrite=None, limit=None):
    def default(tag, attr, value):
        return value.replace("http://backend:8080", "") if value.startswith("http://backend") else None
    kwargs = {"limit": limit} if limit else {}
    return HtmlRewriter(rewrite or default, engine.TAG_ATTRIBUTES, **kwargs)


DOC = (b'<!doctype html><html><head><link rel=stylesheet href="http://backend:8080/s.css">'
       b'<title>a <a href="http://backend:8080/no"></title></head><body>'
       b'<!-- <a href="http://backend:8080/comment"> -->'
       b"<a class=x href='http://backend:8080/p?a=1&amp;b=2'>x</a>"
       b'<script>document.write("<img src=http://backend:8080/js>")</script>'
       b'<img alt="a > b" src=http://backend:8080/i.png><form action="http://backend:8080/f">'
       b'<p data-href="http://backend:8080/other">caf\xc3\xa9</p></body></html>')


def test_html_links_are_rewritten_in_the_right_places_only():
    out = _html().feed(DOC)
    assert b'href="/s.css"' in out
    assert b'href="/p?a=1&amp;b=2"' in out
    assert b'src="/i.png"' in out and b'alt="a > b"' in out
    assert b'action="/f"' in out
    assert b'<title>a <a href="http://backend:8080/no"></title>' in out       # raw text
    assert b'<!-- <a href="http://backend:8080/comment"> -->' in out           # comment
    assert b'<img src=http://backend:8080/js>' in out                          # script text
    assert b'data-href="http://backend:8080/other"' in out                     # not a URL attribute
    assert "café".encode() in out


@pytest.mark.parametrize("size", [1, 2, 3, 5, 17, 64])
def test_html_rewriting_is_the_same_whatever_the_chunk_boundaries(size):
    whole = _html().feed(DOC)
    h = _html()
    out = b"".join(h.feed(DOC[i:i + size]) for i in range(0, len(DOC), size)) + h.close()
    assert out == whole


def test_html_rewriter_holds_back_at_most_its_limit():
    h = _html(limit=64)
    out = h.feed(b'<a href="http://backend:8080/x' + b"y" * 200)   # a tag that never ends
    assert len(h.pending) <= 64 and out.startswith(b"<a href")
    assert h.close() == h.close() == b""
    h = _html(limit=64)
    chunk = h.feed(b"text <a href=\"http://backend:8080/")
    assert chunk == b"text " and h.close() == b'<a href="http://backend:8080/'


def test_a_rewritten_value_cannot_break_out_of_its_attribute():
    h = _html(rewrite=lambda tag, attr, value: '"><script>alert(1)</script>')
    out = h.feed(b'<a href="/x">')
    assert out == b'<a href="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;">'


# ---- the fast path (re without a timeout) for patterns that cannot backtrack badly ----

@pytest.mark.parametrize("source, fast, limit", [
    ("(.*)", True, engine.FAST_INPUT), ("^api/(.*)", True, engine.MAX_INPUT),
    ("^(blog/[^.]*[^/])$", True, engine.MAX_INPUT), (r"(\d{1,3}\.){3}\d{1,3}", True, engine.MAX_INPUT),
    ("^(a|aa)+$", False, -1), ("(x+x+)+y", False, -1), ("^([^/]+)/([^/]+)/?$", False, -1),
    ("(.*)(.*)x", False, -1), (r"(?<y>a)\k<y>", False, -1), ("(a{1,50}){1,50}", False, -1),
])
def test_which_patterns_run_without_a_timeout(source, fast, limit):
    p = Pattern(source)
    assert (p._fast is not None, p._fast_limit) == (fast, limit)


def test_the_fast_path_gives_what_the_regex_path_gives():
    import random
    rng = random.Random(7)
    sources = ["(.*)", "^api/(.*)", "^(blog/[^.]*[^/])$", "(.*[^/])$", r"^(\w+)\.example\.com$",
               "^OFF$", r"(\d{1,3}\.){3}\d{1,3}", "^p/([a-z]+)$", "x|y", "^(?:a|b)c{2,5}"]
    alphabet = "abcxyzAPI/._-0123456789"
    inputs = ["", "api/x", "API/Y", "blog/post", "blog/post/", "www.example.com", "OFF", "off",
              "10.1.2.3", "p/about", "accc"] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    for source in sources:
        for ignore_case in (True, False):
            fast = Pattern(source, ignore_case=ignore_case)
            assert fast._fast is not None, source
            slow = Pattern(source, ignore_case=ignore_case)
            slow._fast_limit = -1   # force the regex path
            for text in inputs:
                assert fast.match(text) == slow.match(text), (source, ignore_case, text)


def test_an_empty_input_on_a_timed_pattern():
    # Found by fuzz/rewrite.py: a pattern without the fast path must not take it for "".
    assert Pattern("*/*.html", "Wildcard").match("") is None
    assert Pattern("(a|aa)+").match("") is None


def test_an_unanchored_fast_pattern_over_its_limit_takes_the_timed_path():
    p = Pattern("(.*)x")
    assert p._fast_limit == engine.FAST_INPUT
    assert p.match("a" * (engine.FAST_INPUT + 10) + "x")[1] == "a" * (engine.FAST_INPUT + 10)


# ---- through the loader: what `wasp validate` says ----

def test_the_loader_names_the_key_and_line_of_a_bad_rule():
    import textwrap

    from wasp.config.load import load_text
    from wasp.errors import ConfigError
    text = textwrap.dedent('''
        [[pools]]
        name = "p"
        [[sites]]
        name = "s"
        id = 1
        bindings = ["http/*:8080:"]
        [[sites.applications]]
        path = "/"
        app = "m:app"
        [[sites.rewrite.rules]]
        name = "bad"
        match = { url = "(?i)^x$" }
        action = { type = "Rewrite", url = "/{NOT_A_VARIABLE}" }
        [[sites.rewrite.global_rules]]
        name = "misplaced"
        match = { url = ".*" }
    ''')
    with pytest.raises(ConfigError) as info:
        load_text(text)
    found = {p.path: (p.line, p.message) for p in info.value.problems}
    assert "sites[0].rewrite.rules[0].match.url" in found
    assert "inline flags" in found["sites[0].rewrite.rules[0].match.url"][1]
    assert "NOT_A_VARIABLE" in found["sites[0].rewrite.rules[0].action.url"][1]
    assert "server only" in found["sites[0].rewrite.global_rules[0]"][1]
    assert found["sites[0].rewrite.rules[0].match.url"][0] is not None   # with its line


def test_a_relative_redirect_target_is_relative_to_the_site_root():
    rs = rules({"name": "slash", "match": {"url": "(.*[^/])$"},
                "action": {"type": "Redirect", "url": "{R:1}/"}})
    assert run(rs, "/blog/post").location == "/blog/post/"


def test_the_loader_checks_the_merged_rules_of_each_application():
    import textwrap

    from wasp.config.load import load_text
    from wasp.errors import ConfigError
    text = textwrap.dedent('''
        [rewrite]
        rewrite_maps = [ { name = "Shared", entries = [ { key = "a", value = "b" } ] } ]
        global_rules = [ { name = "g", match = { url = ".*" }, action = { type = "Rewrite", url = "/{Gone:{R:0}}" } } ]
        [[pools]]
        name = "p"
        [[sites]]
        name = "s"
        id = 1
        bindings = ["http/*:8080:"]
        [[sites.applications]]
        path = "/"
        pool = "p"
        app = "m:app"
        [[sites.rewrite.rules]]
        name = "uses-a-server-map"
        match = { url = ".*" }
        action = { type = "Rewrite", url = "/{Shared:{R:0}}" }
        [[sites.rewrite.rules]]
        name = "uses-no-map"
        match = { url = ".*" }
        action = { type = "Rewrite", url = "/{Missing:{R:0}}" }
    ''')
    with pytest.raises(ConfigError) as info:
        load_text(text)
    found = {p.path: p.message for p in info.value.problems}
    assert "Missing" in found["sites[0].applications[0].rewrite"]
    assert "uses-no-map" in found["sites[0].applications[0].rewrite"]
    assert "Gone" in found["rewrite.global_rules"]
    assert len(found) == 2   # the server's map serves the site's rule


# ---- Failed Request Tracing: the same decision with a trace, and what the trace hears ----

_TRACED_CASES = [
    ("/a", ""), ("/home", ""), ("/api/x", ""), ("/x", "v=2"), ("/p/about", "lang=en")]


def _traced_rulesets():
    return [
        rules({"name": "one", "match": {"url": "^a$"}, "action": {"type": "Rewrite", "url": "/b"}},
              {"name": "two", "match": {"url": "^b$"}, "action": {"type": "Rewrite", "url": "/c"},
               "stop_processing": True},
              {"name": "three", "match": {"url": "^c$"}, "action": {"type": "Rewrite", "url": "/d"}}),
        rules({"name": "not-api", "match": {"url": "^api/", "negate": True},
               "action": {"type": "CustomResponse", "status_code": 403}}),
        rules({"name": "host", "match": {"url": "(.*)"},
               "conditions": {"logical_grouping": "MatchAny", "entries": [
                   {"input": "{QUERY_STRING}", "pattern": "^v=(\\d)$"},
                   {"input": "{URL}", "pattern": "^/p/"}]},
               "action": {"type": "Redirect", "url": "/{C:1}/{R:1}"}}),
        rules({"name": "proxy", "match": {"url": "^p/(.*)"},
               "action": {"type": "Rewrite", "url": "http://127.0.0.1:9000/{R:1}"}},
              {"name": "never", "match": {"url": ".*"}, "action": {"type": "AbortRequest"}}),
    ]


def test_a_traced_evaluation_decides_exactly_as_an_untraced_one():
    for ruleset in _traced_rulesets():
        for path, query in _TRACED_CASES:
            heard = []
            traced = ruleset.evaluate(path, query, Vars().get, Vars(),
                                      lambda op, data: heard.append((op, dict(data))))
            plain = run(ruleset, path, query)
            assert repr(traced) == repr(plain) and traced.variables == plain.variables
            assert heard[0][0] == "URL_REWRITE_START" and heard[-1][0] == "URL_REWRITE_END"
            starts = [d["RuleName"] for op, d in heard if op == "RULE_EVALUATION_START"]
            ends = [d["RuleName"] for op, d in heard if op == "RULE_EVALUATION_END"]
            assert starts == ends   # every rule evaluated is closed, in order


def test_a_trace_follows_the_url_through_a_chain_of_rewrites():
    ruleset = _traced_rulesets()[0]
    heard = []
    ruleset.evaluate("/a", "", Vars().get, Vars(), lambda op, data: heard.append((op, dict(data))))
    ends = [(d["RuleName"], d["RequestURL"], d["Succeeded"], d["StopProcessing"])
            for op, d in heard if op == "RULE_EVALUATION_END"]
    assert ends == [("one", "a", "true", "false"), ("two", "b", "true", "true")]
    assert heard[-1] == ("URL_REWRITE_END", {"RequestURL": "/c"})


def test_a_match_any_trace_stops_at_the_first_condition_that_holds():
    heard = []
    _traced_rulesets()[2].evaluate("/x", "v=2", Vars().get, Vars(),
                                   lambda op, data: heard.append((op, dict(data))))
    conditions = [d for op, d in heard if op == "CONDITION_EVALUATION"]
    assert [(c["Input"], c["ExpandedInput"], c["Succeeded"]) for c in conditions] == [
        ("{QUERY_STRING}", "v=2", "true")]
    assert ("CONDITIONS_EVALUATION_START", {"LogicalGrouping": "MatchAny"}) in heard


def test_a_trace_never_holds_a_credential_a_rule_reads():
    """A rule on {HTTP_COOKIE} (or Authorization) whose capture sets a server variable: the trace
    shows the templates and the decision, never the values, as FREB masks those headers in its
    header dumps."""
    section, problems = effective({"rewrite": {
        "allowed_server_variables": ["HTTP_X_SESSION"],
        "rules": [{"name": "by-session", "match": {"url": "^account$"},
                   "conditions": {"entries": [{"input": "{HTTP_COOKIE}", "pattern": "sid=(\\w+)"}]},
                   "server_variables": [{"name": "HTTP_X_SESSION", "value": "{C:1}"}],
                   "action": {"type": "Rewrite", "url": "/sessions/{C:1}"}}]}})
    assert problems == []
    ruleset = compile_section(section)[0]
    heard = []
    v = Vars(HTTP_COOKIE="sid=topsecret42")
    result = ruleset.evaluate("/account", "", v.get, v, lambda op, data: heard.append((op, dict(data))))
    assert result.path == "/sessions/topsecret42"     # the decision is unchanged
    # The URL the rule builds is the request's URL from then on (every later event shows it);
    # what the trace holds besides it never has the cookie.
    assert "topsecret42" not in repr([(op, d) for op, d in heard
                                      if op not in ("REWRITE_ACTION", "URL_REWRITE_END")])
    shown = {op: d for op, d in heard}
    assert shown["CONDITION_EVALUATION"]["Input"] == "{HTTP_COOKIE}"
    assert shown["CONDITION_EVALUATION"]["ExpandedInput"] == "[masked by wasp]"
    assert shown["REWRITE_ACTION"]["Substitution"] == "/sessions/{C:1}"
    assert shown["SET_SERVER_VARIABLE"]["VariableValue"] == "[masked by wasp]"
    # A rule that reads no credential shows its values.
    heard.clear()
    _traced_rulesets()[0].evaluate("/a", "", v.get, v, lambda op, data: heard.append((op, dict(data))))
    assert [d["RewriteURL"] for op, d in heard if op == "REWRITE_ACTION"] == ["/b", "/c"]
    heard.clear()
    _traced_rulesets()[2].evaluate("/x", "v=2", v.get, v, lambda op, data: heard.append((op, dict(data))))
    assert dict(heard)["CONDITION_EVALUATION"]["ExpandedInput"] == "v=2"
