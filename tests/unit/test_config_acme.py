"""certificate = "acme" bindings and the [acme] table: what loads, what is refused and where, and
which files the front serves for an acme binding (pure: no CA, no file but the config's own)."""

from __future__ import annotations

import textwrap

import pytest

from wasp.config.acme import acme_hosts, certificate_paths
from wasp.config.load import load, load_text
from wasp.errors import ConfigError
from wasp.front.tls import Cert, plan

POOL = '[[pools]]\nname = "DefaultAppPool"\n'
ACME = '[acme]\nagree_tos = true\ncontact = ["mailto:admin@example.test"]\n'


def site(bindings: str, name="s", id=1) -> str:
    return (f'\n[[sites]]\nname = "{name}"\nid = {id}\nbindings = {bindings}\n'
            '[[sites.applications]]\npath = "/"\napp = "m:app"\n')


def acme(host="www.example.test", port=443, extra="") -> str:
    return f'{{ binding = "https/*:{port}:{host}", certificate = "acme", ssl_flags = ["sni"]{extra} }}'


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_text(textwrap.dedent(text))
    return [(p.path, p.message) for p in info.value.problems]


def test_an_acme_binding_loads_and_the_front_serves_the_run_dirs_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_text(ACME + 'ca_bundle = "ca.pem"\n' + POOL
                       + site(f'["http/*:80:", {acme()}, {acme("api.example.test")}]'))
    entry = config.sites[0].bindings[1]
    assert entry.certificate == "acme" and entry.key == ""          # not made a path
    assert config.acme.ca_bundle == str(tmp_path / "ca.pem")
    assert config.acme.challenge == "http-01" and config.acme.renew_before == 0
    assert acme_hosts(config) == ["www.example.test", "api.example.test"]
    run_dir = config.server.run_dir
    port = plan(config)[443]
    assert port.hosts["www.example.test"] == Cert(*certificate_paths(run_dir, "www.example.test"))
    assert port.hosts["api.example.test"] == Cert(*certificate_paths(run_dir, "api.example.test"))
    assert certificate_paths(run_dir, "www.example.test") == (
        f"{run_dir}/acme/www.example.test/certificate.pem", f"{run_dir}/acme/www.example.test/key.pem")


def test_the_default_ca_is_lets_encrypt_and_needs_agree_tos():
    found = problems(POOL + site(f'["http/*:80:", {acme()}]'))
    assert found == [("acme.agree_tos", found[0][1])]
    assert "https://acme-v02.api.letsencrypt.org/directory" in found[0][1]
    assert "agree_tos = true" in found[0][1]


@pytest.mark.parametrize("bindings, extra, path, fragment", [
    (f'["http/*:80:", {{ binding = "https/*:443:", certificate = "acme" }}]', "",
     "sites[0].bindings[1].binding", "needs a host name"),
    ('["http/*:80:", ' + acme(extra=', key = "k.pem"') + ']', "", "sites[0].bindings[1].key", "names no key"),
    (f'["http/*:80:", {acme()}]', 'directory = "http://ca.example.test/dir"\n', "acme.directory", "https://"),
    (f'["http/*:80:", {acme()}]', 'contact = ["admin@example.test"]\n', "acme.contact[0]", "mailto:"),
    (f'["http/*:80:", {acme()}]', 'contact = ["mailto:a@example.test, b@example.test"]\n', "acme.contact[0]", "mailto:"),
    (f'[{acme()}]', "", "acme.challenge", "http-01 needs a plain http binding"),
    (f'["http/*:80:", {acme()}]', 'challenge = "dns-01"\n', "acme.challenge", "one of"),
    (f'["http/*:80:", {acme()}]', 'renew = "1d"\n', "acme.renew", "unknown key"),
    (f'["http/*:80:", {acme("*.example.test")}]', "", "sites[0].bindings[1].binding", "wildcard"),
])
def test_refused(bindings, extra, path, fragment):
    # [acme] keys come after the contact line so a test can replace it.
    text = "[acme]\nagree_tos = true\n" + (extra or 'contact = ["mailto:admin@example.test"]\n') + POOL + site(bindings)
    found = problems(text)
    assert any(p == path and fragment in m for p, m in found), found


def test_tls_alpn01_needs_no_http_binding():
    config = load_text(ACME + 'challenge = "tls-alpn-01"\n' + POOL + site(f'[{acme()}]'))
    assert config.acme.challenge == "tls-alpn-01"


def test_two_acme_hosts_without_sni_on_one_port_are_two_certificates():
    found = problems(ACME + POOL + site('["http/*:80:", { binding = "https/*:443:a.example.test", certificate = "acme" },'
                                        ' { binding = "https/*:443:b.example.test", certificate = "acme" }]'))
    assert any(p == "sites[0].bindings[2]" and "IP:port certificate" in m for p, m in found), found


def test_a_config_file_with_acme_bindings_checks_no_certificate_file(tmp_path):
    path = tmp_path / "wasp.toml"
    path.write_text(ACME + f'ca_bundle = "{tmp_path / "missing.pem"}"\n' + POOL + site(f'["http/*:80:", {acme()}]'))
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert [(p.path, "cannot read" in p.message) for p in info.value.problems] == [("acme.ca_bundle", True)]
    path.write_text(ACME + POOL + site(f'["http/*:80:", {acme()}]'))
    assert load(str(path)).sites[0].bindings[1].certificate == "acme"


def test_stopped_sites_get_no_certificate():
    text = ACME + POOL + site(f'["http/*:80:", {acme()}]').replace('id = 1\n', 'id = 1\nserver_auto_start = false\n')
    assert acme_hosts(load_text(text)) == []
