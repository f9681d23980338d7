"""https bindings in the config (tables with certificate, key, ssl_flags, client_ca), the access
section, the rules across a port, and the front's certificate choice by SNI (pure: made-up paths,
no file is opened)."""

from __future__ import annotations

import textwrap

import pytest

from wasp.config.bindings import binding_text
from wasp.config.load import load_text
from wasp.config.model import SiteBinding
from wasp.errors import ConfigError
from wasp.front.routing import ACCESS_NEGOTIATE_CERT, ACCESS_REQUIRE_CERT, ACCESS_SSL, Router
from wasp.front.tls import Cert, plan, select

POOL = '[[pools]]\nname = "DefaultAppPool"\n'


def site(bindings: str, name="s", id=1, extra="") -> str:
    return f'\n[[sites]]\nname = "{name}"\nid = {id}\nbindings = {bindings}\n{extra}\n[[sites.applications]]\npath = "/"\napp = "m:app"\n'


def tls(host="", port=443, cert="c.pem", key="k.pem", flags='["sni"]', ca="") -> str:
    flags = flags if host else "[]"
    return (f'{{ binding = "https/*:{port}:{host}", certificate = "{cert}", key = "{key}", '
            f'ssl_flags = {flags}, client_ca = "{ca}" }}')


def problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        load_text(textwrap.dedent(text))
    return [(p.path, p.line, p.message) for p in info.value.problems]


def test_table_binding_loads_with_paths_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_text(POOL + site(f'["http/*:80:", {tls("www.example.test", ca="ca.pem")}]'))
    plain, table = config.sites[0].bindings
    assert plain == "http/*:80:"
    assert isinstance(table, SiteBinding)
    assert table.certificate == str(tmp_path / "c.pem") and table.key == str(tmp_path / "k.pem")
    assert table.client_ca == str(tmp_path / "ca.pem") and table.ssl_flags == ["sni"]
    assert [binding_text(b) for b in config.sites[0].bindings] == ["http/*:80:", "https/*:443:www.example.test"]


def test_array_of_tables_form():
    config = load_text(POOL + '[[sites]]\nname = "s"\nid = 1\n[[sites.bindings]]\nbinding = "https/*:443:"\n'
                       'certificate = "c.pem"\n[[sites.applications]]\npath = "/"\napp = "m:app"\n')
    assert config.sites[0].bindings[0].certificate.endswith("/c.pem")


@pytest.mark.parametrize("bindings, path, fragment", [
    ('["https/*:443:"]', "sites[0].bindings[0]", "needs a certificate: write it as a table"),
    ('[{ binding = "https/*:443:" }]', "sites[0].bindings[0].certificate", "needs a certificate"),
    ('[{ binding = "http/*:80:", certificate = "c.pem" }]', "sites[0].bindings[0].certificate", "only an https binding"),
    ('[{ binding = "https/*:443:", certificate = "c.pem", ssl_flags = ["sni"] }]', "sites[0].bindings[0].ssl_flags", "needs a host name"),
    ('[{ binding = "https/*:443:", certificate = "c.pem", ssl_flags = ["ocsp"] }]', "sites[0].bindings[0].ssl_flags[0]", "not allowed"),
    ('[{ binding = "https/*:443:", certificate = "c.pem", certficate = "x" }]', "sites[0].bindings[0].certficate", "unknown key"),
    ('[{ binding = "https/*:0:", certificate = "c.pem" }]', "sites[0].bindings[0].binding", "1-65535"),
    ('[42]', "sites[0].bindings[0]", "expected a string or a table"),
])
def test_bad_table_bindings(bindings, path, fragment):
    found = problems(POOL + site(bindings))
    assert [p for p, _, _ in found] == [path], found
    assert fragment in found[0][2]
    assert found[0][1] == 7  # the bindings line


def test_a_port_is_http_or_https():
    found = problems(POOL + site(f'["http/*:443:a.test", {tls("b.test")}]'))
    assert [(p, m.split(";")[0]) for p, _, m in found] == [
        ("sites[0].bindings[1]", "port 443 is http in sites[0].bindings[0]")]


def test_one_ip_port_certificate_per_port():
    found = problems(POOL + site(f'[{tls("a.test", flags="[]")}, {tls("b.test", cert="other.pem", flags="[]")}]'))
    assert [p for p, _, _ in found] == ["sites[0].bindings[1]"]
    assert "already has an IP:port certificate" in found[0][2] and 'ssl_flags = ["sni"]' in found[0][2]


def test_sni_host_with_two_certificates_on_one_port():
    text = POOL + site(f'[{tls("a.test")}]') + site(f'[{{ binding = "https/127.0.0.1:443:a.test", certificate = "x.pem", ssl_flags = ["sni"] }}]', name="t", id=2)
    found = problems(text)
    assert [p for p, _, _ in found] == ["sites[1].bindings[0]"]
    assert "SNI host \"a.test\" on port 443 already has another certificate" in found[0][2]


def test_one_client_ca_per_port():
    found = problems(POOL + site(f'[{tls("a.test", ca="one.pem")}, {tls("b.test", ca="two.pem")}]'))
    assert [p for p, _, _ in found] == ["sites[0].bindings[1].client_ca"]


def test_access_flags_site_and_application():
    config = load_text(POOL + site(f'["http/*:80:", {tls("a.test", ca="ca.pem")}]', extra='access = { ssl_flags = ["ssl"] }')
                       + '[[sites.applications]]\npath = "/api"\napp = "m:app"\naccess = { ssl_flags = ["ssl_require_cert", "ssl_negotiate_cert"] }\n'
                       + '[[sites.applications]]\npath = "/open"\napp = "m:app"\naccess = { ssl_flags = [] }\n')
    apps = Router(config).apps
    assert apps["1/"].access == ACCESS_SSL
    assert apps["1/api"].access == ACCESS_REQUIRE_CERT | ACCESS_NEGOTIATE_CERT
    assert apps["1/open"].access == 0


def test_client_certificate_flags_need_a_client_ca_on_the_sites_ports():
    found = problems(POOL + site(f'[{tls("a.test")}]', extra='access = { ssl_flags = ["ssl_require_cert"] }')
                     + '[[sites.applications]]\npath = "/x"\napp = "m:app"\naccess = { ssl_flags = ["ssl_negotiate_cert"] }\n')
    assert [p for p, _, _ in found] == ["sites[0].access.ssl_flags", "sites[0].applications[1].access.ssl_flags"]
    assert "no https binding on this site's ports has a client_ca" in found[0][2]
    load_text(POOL + site(f'[{tls("a.test", ca="ca.pem")}]', extra='access = { ssl_flags = ["ssl_require_cert"] }'))


def test_bad_access_flag():
    found = problems(POOL + site('["http/*:80:"]', extra='access = { ssl_flags = ["Ssl128"] }'))
    assert [(p, m) for p, _, m in found] == [
        ("sites[0].access.ssl_flags[0]", '"Ssl128" is not allowed; expected one of "ssl", "ssl_negotiate_cert", "ssl_require_cert"')]


# ---- the certificate a handshake gets ----

def _plan(text: str):
    return plan(load_text(POOL + text))


def test_sni_hosts_and_the_ip_port_default():
    plans = _plan(site(f'[{tls("a.test", cert="a.pem")}, {tls(cert="d.pem")}]')
                  + site(f'[{tls("b.test", cert="b.pem")}]', name="t", id=2))
    port = plans[443]
    assert select(port, "a.test").certificate.endswith("/a.pem")
    assert select(port, "B.TEST.").certificate.endswith("/b.pem")   # case and trailing dot
    assert select(port, None).certificate.endswith("/d.pem")        # no SNI
    assert select(port, "c.test").certificate.endswith("/d.pem")    # unknown name (IIS: default)


def test_without_an_ip_port_binding_the_first_binding_of_the_port_is_the_default():
    port = _plan(site(f'[{tls("b.test", cert="b.pem")}, {tls("a.test", cert="a.pem")}]'))[443]
    assert select(port, None).certificate.endswith("/b.pem")
    assert select(port, "a.test").certificate.endswith("/a.pem")


def test_a_host_binding_without_sni_is_the_ip_port_certificate():
    port = _plan(site(f'[{tls("a.test", cert="a.pem", flags="[]")}, {tls("b.test", cert="b.pem")}]'))[443]
    assert port.hosts.keys() == {"b.test"}
    assert select(port, "a.test").certificate.endswith("/a.pem") and select(port, None) == port.default


def test_stopped_sites_and_http_ports_have_no_certificates():
    plans = _plan(site('["http/*:80:"]') + site(f'[{tls("b.test", port=8443)}]', name="t", id=2,
                                                extra="server_auto_start = false"))
    assert plans == {}


def test_client_ca_is_the_ports():
    port = _plan(site(f'[{tls("a.test", ca="ca.pem")}, {tls("b.test", cert="b.pem")}]'))[443]
    assert port.client_ca.endswith("/ca.pem")
    assert isinstance(port.default, Cert)
