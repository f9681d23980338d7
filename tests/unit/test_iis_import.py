"""wasp import-iis: the safe XML reader, the path mapping, the TOML writer and the mapping of
applicationHost.config / web.config shapes (tests/fixtures/iis/, written from IIS's schema)."""

from __future__ import annotations

import pathlib
import tomllib

import pytest

from wasp.config import iisimport, model, tomlwrite
from wasp.config.iisimport import ACTION, DROPPED, NOTE, Paths, convert, timespan
from wasp.config.iisxml import MAX_DEPTH, XmlRefused, parse
from wasp.config.load import load

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "iis"
ROOT = "/srv/iis"


def fixture(name: str):
    return parse((FIXTURES / name).read_bytes(), name)


def items(result, kind=None, text=""):
    return [i for i in result.report.items if (kind is None or i.kind == kind)
            and (text in i.what or text in i.reason)]


# ---- hostile XML ----

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<configuration><system.webServer><httpProtocol><customHeaders>
<add name="X" value="&lol3;" /></customHeaders></httpProtocol></system.webServer></configuration>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE configuration [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<configuration><appSettings><add key="a" value="&xxe;" /></appSettings></configuration>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE configuration SYSTEM "http://127.0.0.1:1/evil.dtd"><configuration/>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE configuration [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><configuration/>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, XXE, EXTERNAL_DTD, PARAMETER_ENTITY],
                         ids=["billion-laughs", "xxe", "external-dtd", "parameter-entity"])
def test_hostile_xml_is_refused(data):
    with pytest.raises(XmlRefused, match="refused"):
        parse(data, "evil.config")


def test_undefined_entity_malformed_and_deep_xml_are_refused():
    with pytest.raises(XmlRefused, match="not well-formed"):
        parse(b"<configuration>&nope;</configuration>")
    with pytest.raises(XmlRefused, match="not well-formed"):
        parse(b"<configuration><a></configuration>")
    with pytest.raises(XmlRefused, match="deeper"):
        parse(b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1))


def test_predefined_entities_and_char_refs_still_work():
    node = parse(b'<configuration a="x &amp; y &#x41;" />')
    assert node.attrs["a"] == "x & y A"
    assert node.line == 1


def test_utf8_bom_and_utf16_files_are_read():
    assert parse("\ufeff<configuration/>".encode("utf-8")).tag == "configuration"
    assert parse('<?xml version="1.0" encoding="UTF-16"?><configuration/>'.encode("utf-16")).tag == "configuration"


# ---- paths and values ----

def test_windows_paths_map_under_the_root():
    paths = Paths(ROOT)
    assert paths.to_linux(r"%SystemDrive%\inetpub\wwwroot") == "/srv/iis/c/inetpub/wwwroot"
    assert paths.to_linux(r"%windir%\System32\inetsrv") == "/srv/iis/c/Windows/System32/inetsrv"
    assert paths.to_linux(r"D:\Sites\A B\x") == "/srv/iis/d/Sites/A B/x"
    assert paths.to_linux("e:/mixed\\slashes/") == "/srv/iis/e/mixed/slashes"
    assert paths.to_linux(r"\\fs01\share\dir") == "/srv/iis/unc/fs01/share/dir"
    assert paths.to_linux(r"%INETPUB%\custerr") == "/srv/iis/c/inetpub/custerr"
    assert paths.to_linux(r"C:\a\..\b\.\c") == "/srv/iis/c/b/c"
    assert paths.to_linux("relative\\path") is None


def test_dot_dot_cannot_leave_the_root():
    report = iisimport.Report()
    paths = Paths(ROOT)
    assert paths.to_linux(r"C:\..\..\etc\passwd", report, "here") is None
    assert paths.to_linux(r"\\srv\..\..\..\etc", report, "here") is None
    assert len(report.of(DROPPED)) == 2


def test_env_overrides_and_unknown_variables():
    report = iisimport.Report()
    paths = Paths(ROOT, {"SystemDrive": "D:", "SITES": r"E:\web"})
    assert paths.to_linux(r"%SystemDrive%\inetpub") == "/srv/iis/d/inetpub"
    assert paths.to_linux(r"%sites%\a") == "/srv/iis/e/web/a"
    assert paths.expand(r"%NOPE%\x", report, "here") == r"%NOPE%\x"
    assert report.of(ACTION)[0].what == "%NOPE%"


def test_timespans_and_names():
    assert timespan("00:20:00") == 1200
    assert timespan("1.05:00:00") == 29 * 3600
    assert timespan("00:00:00.5") == 0.5
    assert timespan("90") == 90
    assert timespan("soon") is None
    assert iisimport.snake("applyToWebDAV") == "apply_to_web_dav"
    assert iisimport.snake("maxAllowedContentLength") == "max_allowed_content_length"
    assert iisimport._wsgi_handler_to_app("app.wsgi.application") == "app.wsgi:application"
    assert iisimport._wsgi_handler_to_app("django.core.wsgi.get_wsgi_application()") == \
        "django.core.wsgi:get_wsgi_application()"
    assert iisimport._wsgi_handler_to_app("os; rm -rf /") is None


def test_binding_information():
    assert iisimport._split_binding("*:80:") == ("*", 80, "")
    assert iisimport._split_binding(":8080:Example.TEST") == ("*", 8080, "example.test")
    assert iisimport._split_binding("[::1]:443:www") == ("[::1]", 443, "www")
    assert iisimport._split_binding("808:*")[1] is None
    assert iisimport._split_binding("*:70000:")[1] is None


# ---- the TOML writer ----

def test_writer_round_trips_and_escapes_control_characters():
    data = {"a": 'q"uo\\te', "b": "line\nbreak\x00\x1f\x7f", "n": 3, "f": 1.5, "t": True,
            "d": tomlwrite.Dur(1200), "e": {}, "sub": {"x": 1, "deep": {"y": [1, 2]}},
            "arr": [{"k": "v", tomlwrite.COMMENT: ["a comment"]}, {"k": "w\r\n[evil]"}],
            "mixed": ["s", {"binding": "https/*:443:", "certificate": "c.pem"}],
            "odd key": {"ä": "x"}}
    text = tomlwrite.dumps(data, ["header"])
    back = tomllib.loads(text)
    assert back["a"] == 'q"uo\\te'
    assert back["b"] == "line\nbreak\x00\x1f\x7f"
    assert back["d"] == "20m"
    assert back["arr"][1]["k"] == "w\r\n[evil]"
    assert back["mixed"][1]["certificate"] == "c.pem"
    assert back["odd key"]["ä"] == "x"
    assert back["sub"]["deep"]["y"] == [1, 2]
    assert "# a comment" in text and text.startswith("# header")
    assert set(back) == {"a", "b", "n", "f", "t", "d", "e", "sub", "arr", "mixed", "odd key"}


def test_durations_are_written_in_wasp_units():
    assert [tomlwrite.value(tomlwrite.Dur(s)) for s in (0, 90, 3600, 86400 * 7, 0.25)] == \
        ['"0s"', '"90s"', '"1h"', '"7d"', '"250ms"']


# ---- the default install ----

def test_default_install_converts_to_almost_nothing(tmp_path):
    result = convert(fixture("default-install.applicationHost.config"), root=str(tmp_path))
    config = result.config
    assert config["pools"] == [{tomlwrite.COMMENT: config["pools"][0][tomlwrite.COMMENT], "name": "DefaultAppPool"}]
    site = config["sites"][0]
    assert site["name"] == "Default Web Site" and site["id"] == 1 and site["bindings"] == ["http/*:80:"]
    assert site["applications"][0]["physical_path"] == f"{tmp_path}/c/inetpub/wwwroot"
    assert config["server"]["log_dir"] == f"{tmp_path}/c/inetpub/logs/LogFiles"
    # IIS's install lists equal wasp's defaults: nothing is written for them.
    for name in ("default_document", "static_content", "request_filtering", "modules", "http_errors",
                 "anonymous_authentication", "caching", "directory_browse", "access"):
        assert name not in config, name
    assert [s["mime_type"] for s in config["http_compression"]["static_types"]] == ["image/svg+xml"]
    # What had no meaning is in the report, with a reason each.
    assert items(result, DROPPED, "managedRuntimeVersion")
    assert items(result, DROPPED, "system.webServer/asp")
    assert items(result, DROPPED, "module HttpLoggingModule")
    assert items(result, DROPPED, "TRACEVerbHandler")
    assert items(result, NOTE, "custerr")
    assert all(i.reason for i in result.report.items)
    assert items(result, NOTE, "hidden_segments") == [] and items(result, NOTE, "web.toml")


def _write_and_load(tmp_path, result) -> model.Config:
    (tmp_path / "c" / "inetpub" / "wwwroot").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "wasp.toml"
    path.write_text(tomlwrite.dumps(result.config))
    return load(str(path))


def test_default_install_loads(tmp_path):
    config = _write_and_load(tmp_path, convert(fixture("default-install.applicationHost.config"), root=str(tmp_path)))
    assert config.sites[0].applications[0].pool == "DefaultAppPool"


# ---- several sites and pools ----

@pytest.fixture(scope="module")
def several():
    return convert(fixture("several-sites.applicationHost.config"), root=ROOT)


def _pool(result, name):
    return next(p for p in result.config["pools"] if p["name"] == name)


def _site(result, name):
    return next(s for s in result.config["sites"] if s["name"] == name)


def test_pools_process_model_recycling_failure_cpu(several):
    intranet = _pool(several, "Intranet")
    assert intranet["queue_length"] == 2000 and intranet["start_mode"] == "always_running"
    assert intranet["max_processes"] == 2
    pm = intranet["process_model"]
    assert pm["idle_timeout"] == 0 and pm["ping_interval"] == 45 and pm["ping_response_time"] == 120
    rec = intranet["recycling"]
    assert rec["time"] == 29 * 3600 and rec["requests"] == 100000
    assert rec["memory"] == 1048576 * 1024 and rec["private_memory"] == 524288 * 1024  # IIS: KB
    assert rec["schedule"] == ["03:00", "15:30"] and rec["disallow_overlapping_rotation"] is True
    failure = intranet["failure"]
    assert failure["load_balancer_capabilities"] == "tcp_level"
    assert failure["rapid_fail_protection_max_crashes"] == 3
    assert failure["orphan_action_exe"] == r"C:\tools\dump.exe -p %1%"
    assert intranet["cpu"] == {"limit": 50000, "action": "throttle_under_load", "reset_interval": 60}
    assert intranet["environment_variables"] == {"APP_ENV": "production", "DATA_DIR": "/srv/iis/c/data/intranet"}
    assert _pool(several, "PyApps")["process_model"]["ping_interval"] == 0  # pingingEnabled false
    assert _pool(several, "PyApps")["auto_start"] is False
    assert several.config["pool_defaults"]["queue_length"] == 1500
    assert several.config["pool_defaults"]["recycling"]["time"] == 0
    assert items(several, ACTION, "identityType=\"SpecificUser\"")
    assert items(several, DROPPED, "managedPipelineMode=\"Classic\"")
    assert items(several, DROPPED, "idleTimeoutAction=\"Suspend\"")


def test_passwords_never_reach_the_output_or_the_report(several):
    text = tomlwrite.dumps(several.config)
    assert "enc:" not in text and "IISCngProvider" not in text
    assert not [i for i in several.report.items if "enc:" in i.what + i.reason]
    assert items(several, DROPPED, "password=(hidden)")


def test_bindings_http_https_ipv6_and_others(several):
    default = _site(several, "Default Web Site")
    assert default["bindings"] == ["http/*:80:", "http/[::1]:8080:"]
    assert items(several, DROPPED, "net.tcp binding")
    intranet = _site(several, "Intranet")
    https = intranet["bindings"][0]
    assert https == {"binding": "https/*:443:intranet.example.test",
                     "certificate": "certs/intranet.example.test_443.pem",
                     "key": "certs/intranet.example.test_443.key", "ssl_flags": ["sni"]}
    note = items(several, ACTION, "https binding")[0]
    assert "3F2A9C00D1E4B7A1C3A0B9F1E2D3C4B5A6978899" in note.reason and "WebHosting" in note.reason
    assert several.certificates[0]["thumbprint"] == "3F2A9C00D1E4B7A1C3A0B9F1E2D3C4B5A6978899"
    assert not any(s["name"] == "FtpOnly" for s in several.config["sites"])
    assert items(several, DROPPED, "site \"FtpOnly\"")


def test_applications_virtual_directories_logs_limits(several):
    default = _site(several, "Default Web Site")
    apps = {a["path"]: a for a in default["applications"]}
    assert apps["/"]["physical_path"] == "/srv/iis/c/inetpub/wwwroot"
    assert apps["/images"]["physical_path"] == "/srv/iis/d/Shared/Images" and apps["/images"]["pool"] == "DefaultAppPool"
    assert apps["/py"]["pool"] == "PyApps"
    assert apps["/py"]["initialization_pages"] == ["/warmup"]  # relative to the application, in both
    assert default["log"]["period"] == "hourly"
    assert default["log"]["custom_fields"][0]["source_type"] == "request_header"
    assert "Host" in default["log"]["log_ext_file_flags"]
    assert default["limits"] == {"max_connections": 500, "connection_timeout": 60}
    assert default["request_filtering"]["request_limits"]["max_url_segments"] == 64
    assert _site(several, "Intranet")["log"]["enabled"] is False
    assert items(several, DROPPED, "period=\"Weekly\"")  # siteDefaults, inherited by each site
    assert several.config["limits"] == {"connection_timeout": 90, "header_wait_timeout": 30,
                                        "min_bytes_per_second": 500}


def test_locations(several):
    locations = {loc["path"]: loc for loc in several.config["locations"]}
    site = locations["Default Web Site"]
    assert site["default_document"]["files"] == {"clear": True, "add": ["home.html", "index.html"]}
    assert site["static_content"]["client_cache"] == {"cache_control_mode": "UseMaxAge",
                                                      "cache_control_max_age": 7 * 86400, "set_e_tag": False}
    # X-Powered-By is IIS's own header: nothing to remove in wasp.
    assert site["http_protocol"]["custom_headers"] == [{"name": "X-Frame-Options", "value": "SAMEORIGIN"}]
    intranet = locations["Intranet"]
    assert intranet["override_mode"] == "Deny"
    assert intranet["access"]["ssl_flags"] == ["ssl", "ssl_negotiate_cert"]
    assert intranet["windows_authentication"] == {"enabled": False}  # needs a keytab first
    assert items(several, ACTION, "windowsAuthentication enabled")
    assert intranet["ip_security"]["entries"] == [{"ip_address": "10.0.0.0", "subnet_mask": "255.0.0.0", "allowed": True}]
    assert intranet["http_errors"]["errors"] == [{"status_code": 404, "path": "/errors/notfound.html",
                                                  "response_mode": "ExecuteURL"}]
    assert items(several, DROPPED, "<system.web> of location")
    assert items(several, NOTE, "wfastcgi")


def test_several_sites_load(tmp_path):
    result = convert(fixture("several-sites.applicationHost.config"), root=str(tmp_path))
    for sub in ("c/inetpub/wwwroot", "d/Shared/Images", "c/inetpub/PyApp", "c/Sites/Intranet"):
        (tmp_path / sub).mkdir(parents=True)
    result.config["sites"][1]["bindings"] = ["http/127.0.0.1:8443:intranet.example.test"]  # no cert here
    config = _write_and_load(tmp_path, result)
    assert [p.name for p in config.pools] == ["DefaultAppPool", "Intranet", "PyApps"]
    assert config.pools[1].recycling.memory == 1048576 * 1024


# ---- ARR ----

def test_arr_global_rules_maps_outbound_and_farms():
    result = convert(fixture("arr.applicationHost.config"), root=ROOT)
    rewrite = result.config["rewrite"]
    assert rewrite["allowed_server_variables"] == ["HTTP_X_FORWARDED_PROTO", "RESPONSE_Server"]
    rules = rewrite["global_rules"]
    assert [r["name"] for r in rules] == ["Force HTTPS", "ARR_backend_loadbalance"]
    assert rules[1]["action"] == {"type": "Rewrite", "url": "http://backend/{R:0}"}
    assert rules[1]["pattern_syntax"] == "Wildcard"
    assert rules[1]["server_variables"] == [{"name": "HTTP_X_FORWARDED_PROTO", "value": "https"}]
    assert rewrite["rewrite_maps"] == [{"name": "Legacy", "default_value": "", "entries": [{"key": "/old", "value": "/new"}]}]
    assert rewrite["outbound_rules"][0]["precondition"] == "IsHtml"
    assert rewrite["preconditions"][0]["name"] == "IsHtml"
    assert result.config["sites"][0]["bindings"][1]["ssl_flags"] == ["sni", "disable_http2"]
    fields = {f.name for f in __import__("msgspec").structs.fields(model.Config)}
    if "web_farms" in fields:  # the arr branch's model
        farm = result.config["web_farms"][0]
        assert farm["servers"][0] == {"address": "10.1.0.11", "enabled": True, "http_port": 8080, "weight": 200}
    else:
        assert items(result, DROPPED, "webFarms") and "arr branch" in items(result, DROPPED, "webFarms")[0].reason


# ---- shared configuration ----

def test_shared_configuration_unc_paths_and_encrypted_credentials():
    result = convert(fixture("shared.applicationHost.config"), root=ROOT)
    app = result.config["sites"][0]["applications"][0]
    assert app["physical_path"] == "/srv/iis/unc/fs01/content/shop"
    assert items(result, ACTION, "network share")
    assert result.config["server"]["log_dir"] == "/srv/iis/unc/fs01/logs"
    assert items(result, DROPPED, "per-site log folder")
    assert items(result, DROPPED, "configProtectedData")
    assert result.config["basic_authentication"] == {"enabled": True, "realm": "Shop", "provider": "pam"}
    assert result.config["http_compression"]["schemes"]["add"] == [{"name": "gzip", "static_compression_level": 9}]
    assert "enc:" not in tomlwrite.dumps(result.config)


def test_redirection_config_points_at_the_shared_file():
    result = convert(fixture("redirection.config"), root=ROOT)
    assert "sites" not in result.config
    assert "\\\\fs01\\iisconfig" in items(result, ACTION, "configurationRedirection")[0].reason


# ---- web.config ----

@pytest.fixture(scope="module")
def with_web_config():
    folder = f"{ROOT}/c/inetpub/PyApp"
    web = parse((FIXTURES / "content" / "PyApp" / "web.config").read_bytes(), "PyApp/web.config")
    return convert(fixture("several-sites.applicationHost.config"), {folder: ("PyApp/web.config", web)},
                   root=ROOT, file_extensions={folder: {".py", ".aspx", ".txt"}}), folder


def test_web_config_becomes_web_toml(with_web_config):
    result, folder = with_web_config
    web = result.web_tomls[folder]
    rules = web["rewrite"]["rules"]
    assert rules["clear"] is True
    old = rules["add"][0]
    # IIS matched relative to the web.config's folder; wasp from the site root.
    assert old["match"]["url"] == "^py(?:/|$)manual/(.*)$"
    assert old["action"] == {"type": "Redirect", "url": "/py/docs/{R:1}", "redirect_type": "Found"}
    assert rules["add"][1]["action"]["status_code"] == 403
    assert web["http_errors"]["errors"] == [{"status_code": 404, "path": "notfound.html", "response_mode": "File"}]
    assert web["url_compression"] == {"do_static_compression": True, "do_dynamic_compression": False}
    mime = web["static_content"]["mime_map"]
    assert mime["remove"] == [".json"]
    assert {m["file_extension"] for m in mime["add"]} == {".json", ".log"}
    assert web["default_document"]["files"] == ["start.txt"]
    assert "handlers" not in web and "modules" not in web


def test_web_config_app_settings_locks_and_report(with_web_config):
    result, folder = with_web_config
    app = next(a for a in _site(result, "Default Web Site")["applications"] if a["path"] == "/py")
    assert app["app"] == "hello:app" and app["python_path"] == [folder]
    assert _pool(result, "PyApps")["environment_variables"] == {"GREETING": "hello from web.config"}
    locations = {loc["path"]: loc for loc in result.config["locations"]}
    assert locations["Default Web Site/py"]["modules"] == {"run_all_managed_modules_for_all_requests": False}
    assert locations["Default Web Site/py/docs"]["directory_browse"] == {"enabled": True, "show_flags": ["Date", "Size"]}
    assert items(result, DROPPED, "SessionAuth")
    assert items(result, DROPPED, "System.Web.UI.PageHandlerFactory")
    assert items(result, DROPPED, "<system.web>")
    assert items(result, ACTION, ".aspx")


def test_web_config_outside_every_application_is_reported():
    web = parse(b"<configuration><system.webServer><directoryBrowse enabled='true'/></system.webServer></configuration>")
    result = convert(fixture("default-install.applicationHost.config"), {"/elsewhere": ("x/web.config", web)}, root=ROOT)
    assert result.web_tomls == {}
    assert items(result, DROPPED, "web.config")


def test_header_injection_from_xml_is_kept_as_one_value(tmp_path):
    evil = parse(b"<configuration><system.webServer><httpProtocol><customHeaders>"
                 b"<add name='X-A' value='a&#13;&#10;Set-Cookie: pwned=1' />"
                 b"</customHeaders></httpProtocol></system.webServer></configuration>")
    result = convert(fixture("default-install.applicationHost.config"),
                     {f"{tmp_path}/c/inetpub/wwwroot": ("web.config", evil)}, root=str(tmp_path))
    text = tomlwrite.dumps(result.web_tomls[f"{tmp_path}/c/inetpub/wwwroot"])
    back = tomllib.loads(text)
    assert back["http_protocol"]["custom_headers"] == [{"name": "X-A", "value": "a\r\nSet-Cookie: pwned=1"}]
    # ... which wasp's own section checks then refuse (no response splitting).
    from wasp.config import sections
    from wasp.config.decode import Decoder
    decoder = Decoder(sections.SECTION_CHECKS)
    sections.decode_delta(decoder, back["http_protocol"], sections.info("http_protocol").cls, "http_protocol")
    assert any("custom_headers" in path for path, _ in decoder.problems), decoder.problems


# ---- the command ----

def _cli(*args):
    from wasp.cli.main import main
    return main(["import-iis", *args])


def test_cli_writes_refuses_overwrite_and_symlinks(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "c" / "inetpub" / "wwwroot").mkdir(parents=True)
    out = tmp_path / "wasp.toml"
    apphost = str(FIXTURES / "default-install.applicationHost.config")
    assert _cli(apphost, "--root", str(root), "-o", str(out)) == 0
    assert tomllib.loads(out.read_text())["sites"][0]["name"] == "Default Web Site"
    assert (tmp_path / "wasp.toml.import-report.txt").read_text().startswith("wasp import-iis report")
    assert _cli(apphost, "--root", str(root), "-o", str(out)) == 1
    assert "--force" in capsys.readouterr().err
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "link.toml"
    link.symlink_to(victim)
    assert _cli(apphost, "--root", str(root), "-o", str(link), "--force") == 1
    assert victim.read_text() == "keep"
    assert _cli(apphost, "--root", str(root), "-o", str(out), "--env", "nonsense") == 2


def test_cli_refuses_hostile_and_empty_files(tmp_path, capsys):
    bomb = tmp_path / "a.config"
    bomb.write_bytes(XXE)
    assert _cli(str(bomb), "-o", str(tmp_path / "o.toml")) == 1
    assert "DOCTYPE refused" in capsys.readouterr().err
    assert _cli(str(FIXTURES / "redirection.config"), "-o", str(tmp_path / "o.toml")) == 1
    assert not (tmp_path / "o.toml").exists()


# ---- sections of the fcgi and dav branches: converted once registered, reported until then ----

def test_php_fastcgi():
    from wasp.config import sections
    result = convert(fixture("php-fastcgi.applicationHost.config"), root=ROOT)
    if sections.info("fast_cgi") is None:
        assert "fcgi branch" in items(result, DROPPED, "fast_cgi")[0].reason
        assert items(result, DROPPED, "PHP_via_FastCGI")
        return
    app = result.config["fast_cgi"]["applications"][0]
    assert app["full_path"] == "/srv/iis/c/PHP/php-cgi.exe" and app["max_instances"] == 4
    assert app["environment_variables"] == [{"name": "PHP_FCGI_MAX_REQUESTS", "value": "10000"}]
    entry = result.config["handlers"]["entries"][0]
    assert entry["modules"] == "fast_cgi" and entry["path"] == "*.php"
    assert "/usr/bin/php-cgi" in items(result, ACTION, "php-cgi.exe")[0].reason


def test_webdav():
    from wasp.config import sections
    result = convert(fixture("webdav.applicationHost.config"), root=ROOT)
    if sections.info("web_dav_authoring") is None:
        assert "dav branch" in items(result, DROPPED, "web_dav_authoring")[0].reason
        assert "dav branch" in items(result, DROPPED, "web_dav_authoring_rules")[0].reason
        return
    location = result.config["locations"][0]
    assert location["web_dav_authoring"]["locks"] == {"enabled": True, "lock_store": "webdav_simple_lock"}
    assert location["web_dav_authoring_rules"]["rules"] == [{"users": "*", "path": "*", "access": ["Read", "Write"]}]


def test_shared_bindings_and_locations_of_dropped_sites():
    xml = b"""<configuration><system.applicationHost><applicationPools><add name="P"/></applicationPools><sites>
      <site name="A" id="1"><application path="/" applicationPool="P"><virtualDirectory path="/" physicalPath="C:\\a"/>
        </application><bindings><binding protocol="http" bindingInformation="*:80:x.test"/></bindings></site>
      <site name="B" id="2" serverAutoStart="false"><application path="/" applicationPool="P">
        <virtualDirectory path="/" physicalPath="C:\\b"/></application>
        <bindings><binding protocol="http" bindingInformation="*:80:X.test"/></bindings></site>
      <site name="F" id="3"><application path="/" applicationPool="P"><virtualDirectory path="/" physicalPath="C:\\f"/>
        </application><bindings><binding protocol="ftp" bindingInformation="*:21:"/></bindings></site>
    </sites></system.applicationHost>
    <location path="F"><system.webServer><directoryBrowse enabled="true"/></system.webServer></location>
    <location path="A/sub"><system.webServer><directoryBrowse enabled="true"/></system.webServer></location>
    </configuration>"""
    result = convert(parse(xml), root=ROOT)
    assert [s["name"] for s in result.config["sites"]] == ["A"]
    assert [loc["path"] for loc in result.config["locations"]] == ["A/sub"]
    assert items(result, DROPPED, "binding http/*:80:x.test")
    assert items(result, DROPPED, "location \"F\"")


def test_server_default_documents_keep_iis_order():
    def docs(*names):
        adds = "".join(f'<add value="{n}"/>' for n in names)
        xml = ("<configuration><system.webServer><defaultDocument><files>" + adds +
               "</files></defaultDocument></system.webServer></configuration>").encode()
        return convert(parse(xml), root=ROOT).config.get("default_document")
    assert docs("Default.htm", "Default.asp", "index.htm", "index.html", "iisstart.htm") is None
    assert docs("index.html", "Default.htm") == {"files": {"clear": True, "add": ["index.html", "Default.htm"]}}


def test_site_hsts_becomes_a_custom_header():
    result = convert(fixture("arr.applicationHost.config"), root=ROOT)
    site = result.config["sites"][0]
    assert site["http_protocol"]["custom_headers"] == [
        {"name": "Strict-Transport-Security", "value": "max-age=31536000; includeSubDomains"}]
    assert items(result, ACTION, "redirectHttpToHttps")


def test_wildcard_host_binding_becomes_any_host():
    xml = b"""<configuration><system.applicationHost><applicationPools><add name="P"/></applicationPools><sites>
      <site name="A" id="1"><application path="/" applicationPool="P"><virtualDirectory path="/" physicalPath="C:\\w"/>
      </application><bindings><binding protocol="http" bindingInformation="*:8125:*.example.test"/></bindings></site>
    </sites></system.applicationHost></configuration>"""
    result = convert(parse(xml), root=ROOT)
    assert result.config["sites"][0]["bindings"] == ["http/*:8125:"]
    assert items(result, NOTE, "*.example.test")


def test_web_config_keys_only_wasp_toml_may_set_go_to_a_location(tmp_path):
    web = parse(b"""<configuration><system.webServer>
      <httpErrors errorMode="Custom" defaultPath="C:\\errors\\default.htm" />
      <staticContent enableDocFooter="true" isDocFooterFileName="true" defaultDocFooter="C:\\footer.htm" />
      <directoryBrowse enabled="true" />
    </system.webServer></configuration>""")
    folder = f"{tmp_path}/c/inetpub/wwwroot"
    result = convert(fixture("default-install.applicationHost.config"), {folder: ("web.config", web)},
                     root=str(tmp_path))
    assert result.web_tomls[folder]["directory_browse"] == {"enabled": True}
    assert "http_errors" not in result.web_tomls[folder] and "static_content" not in result.web_tomls[folder]
    location = result.config["locations"][0]
    assert location["path"] == "Default Web Site"
    assert location["http_errors"]["default_path"] == f"{tmp_path}/c/errors/default.htm"
    assert location["static_content"]["is_doc_footer_file_name"] is True


def test_cli_web_config_folders(tmp_path, capsys):
    root = tmp_path / "root"
    www = root / "c" / "inetpub" / "wwwroot"
    (www / "sub").mkdir(parents=True)
    (www / "sub" / "web.config").write_text(
        "<configuration><system.webServer><directoryBrowse enabled='true'/></system.webServer></configuration>")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "web.config").write_text("<configuration/>")
    (www / "bad").mkdir()
    (www / "bad" / "web.config").write_bytes(XXE)
    out = tmp_path / "wasp.toml"
    code = _cli(str(FIXTURES / "default-install.applicationHost.config"), "--root", str(root), "-o", str(out),
                "--web-config", str(elsewhere))
    assert code == 0
    assert tomllib.loads((www / "sub" / "web.toml").read_text()) == {"directory_browse": {"enabled": True}}
    report = (tmp_path / "wasp.toml.import-report.txt").read_text()
    assert "not inside the physical path of any application" in report
    assert "DOCTYPE refused" in report and not (www / "bad" / "web.toml").exists()
    assert _cli(str(FIXTURES / "default-install.applicationHost.config"), "--web-config", str(tmp_path / "nope"),
                "-o", str(tmp_path / "x.toml")) == 2
