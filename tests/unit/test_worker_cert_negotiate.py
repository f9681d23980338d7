"""Client-certificate mapping and Negotiate without a network: the mapping rules against real
certificates made here (attacker subjects included), the Negotiate header parsing and its refusals,
and `ctx.add_header` reaching every kind of response."""

from __future__ import annotations

import base64
import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wasp.wire import frames
from wasp.worker import modules  # noqa: F401  (registers the built-in modules)
from wasp.worker.authn import Unauthorized
from wasp.worker.modules import client_certificate_mapping_authentication as certmap
from wasp.worker.modules import windows_authentication as negotiate
from wasp.worker.registry import CONTINUE

from worker_fakes import make_app, make_ctx

_NOW = datetime.datetime.now(datetime.timezone.utc)
_CA_KEY = ec.generate_private_key(ec.SECP256R1())


def make_cert(subject: list[tuple], issuer: list[tuple] | None = None) -> str:
    def name(attrs):
        return x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name(subject))
            .issuer_name(name(issuer or [(NameOID.COMMON_NAME, "Test CA"), (NameOID.ORGANIZATION_NAME, "Contoso")]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - datetime.timedelta(days=1))
            .not_valid_after(_NOW + datetime.timedelta(days=1))
            .sign(_CA_KEY, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def der_of(pem: str) -> bytes:
    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)


ALICE = make_cert([(NameOID.COMMON_NAME, "alice"), (NameOID.ORGANIZATION_NAME, "Contoso")])
BOB = make_cert([(NameOID.COMMON_NAME, "bob"), (NameOID.ORGANIZATION_NAME, "Contoso"),
                 (NameOID.ORGANIZATIONAL_UNIT_NAME, "Sales"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "Staff")])
EVE = make_cert([(NameOID.COMMON_NAME, "eve"), (NameOID.ORGANIZATION_NAME, "Contoso"),
                 (NameOID.ORGANIZATIONAL_UNIT_NAME, "Contractors")])
# Imitations: the text of their subject reads like alice's or like an O=Contoso one.
FAKE_ALICE = make_cert([(NameOID.COMMON_NAME, "alice,O=Contoso"), (NameOID.ORGANIZATION_NAME, "Fabrikam")])
FAKE_ORG = make_cert([(NameOID.COMMON_NAME, "O=Contoso"), (NameOID.ORGANIZATION_NAME, "Contoso Ltd, O=Contoso")])
LOWER = make_cert([(NameOID.COMMON_NAME, "carol"), (NameOID.ORGANIZATION_NAME, "contoso")])


def section_tables(one=(), many=(), **keys):
    table = {"enabled": True, **keys}
    if one:
        table["one_to_one_mappings"] = list(one)
    if many:
        table["many_to_one_mappings"] = list(many)
    return {"server": {"client_certificate_mapping_authentication": table}}


def run(tables, pem: str | None):
    app = make_app(tables=tables)
    ctx = make_ctx(app)
    if pem is not None:
        ctx.head.tls = frames.TlsInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", 0x1301, client_cert=pem)
    module = certmap.ClientCertificateMappingAuthenticationModule()
    module.setup(app)
    assert module.authenticate_request(ctx) is CONTINUE
    return ctx


MANY = [
    {"name": "deny contractors", "permission_mode": "Deny",
     "rules": [{"certificate_sub_field": "OU", "match_criteria": "Contractors"}]},
    {"name": "staff", "user_name": "staff",
     "rules": [{"certificate_sub_field": "O", "match_criteria": "Contoso"},
               {"certificate_sub_field": "OU", "match_criteria": "*aff"},
               {"certificate_field": "Issuer", "certificate_sub_field": "CN", "match_criteria": "Test CA"}]},
    {"name": "contoso", "user_name": "contoso-user",
     "rules": [{"certificate_sub_field": "O", "match_criteria": "Contoso"}]},
]


@pytest.mark.parametrize("pem, user", [
    (ALICE, "contoso-user"),     # O=Contoso, no OU: the third mapping
    (BOB, "staff"),              # all three rules of the second, the second OU matching *aff
    (FAKE_ALICE, None),          # its CN's text holds "O=Contoso": it has no O attribute of it
    (FAKE_ORG, None),            # O is "Contoso Ltd, O=Contoso": a whole-value match only
    (LOWER, None),               # case-sensitive by default
])
def test_many_to_one_matches_attributes_not_text(pem, user):
    ctx = run(section_tables(many=MANY), pem)
    assert ctx.user == user and (ctx.auth_type == "SSL/PCT") == (user is not None)


def test_a_deny_mapping_refuses_with_403_12():
    with pytest.raises(certmap.MapperDenied) as raised:
        run(section_tables(many=MANY), EVE)
    assert (raised.value.status, raised.value.substatus) == (403, 12)


def test_case_insensitive_rules_and_disabled_mappings():
    rule = {"certificate_sub_field": "o", "match_criteria": "CONTOSO", "compare_case_sensitive": False}
    assert run(section_tables(many=[{"name": "m", "user_name": "u", "rules": [rule]}]), LOWER).user == "u"
    off = {"name": "m", "user_name": "u", "rules": [rule], "enabled": False}
    assert run(section_tables(many=[off]), LOWER).user is None
    assert run(section_tables(many=[{"name": "m", "user_name": "u", "rules": [rule]}],
                              many_to_one_certificate_mappings_enabled=False), LOWER).user is None
    assert run(section_tables(many=[{"name": "m", "user_name": "u"}]), LOWER).user is None  # no rules


@pytest.mark.parametrize("form", ["pem", "base64", "fingerprint", "fingerprint-colons"])
def test_one_to_one_by_der_in_every_form(tmp_path, form):
    der = der_of(ALICE)
    if form == "pem":
        (tmp_path / "alice.pem").write_text(ALICE)
        certificate = str(tmp_path / "alice.pem")
    elif form == "base64":
        certificate = base64.b64encode(der).decode()
    elif form == "fingerprint":
        certificate = hashlib.sha256(der).hexdigest().upper()
    else:
        certificate = ":".join(f"{b:02x}" for b in hashlib.sha256(der).digest())
    tables = section_tables(one=[{"certificate": certificate, "user_name": "alice"}], many=MANY)
    assert run(tables, ALICE).user == "alice"       # one-to-one comes before many-to-one
    assert run(tables, FAKE_ALICE).user is None     # same CN text, other DER
    assert run(tables, BOB).user == "staff"
    off = section_tables(one=[{"certificate": certificate, "user_name": "alice", "enabled": False}])
    assert run(off, ALICE).user is None


def test_no_certificate_or_disabled_section_gives_no_user():
    assert run(section_tables(many=MANY), None).user is None
    assert run({"server": {}}, ALICE).user is None


@pytest.mark.parametrize("certificate", ["/nonexistent/alice.pem", "not base64 at all!", "abcd"])
def test_a_bad_one_to_one_certificate_is_a_500(certificate):
    with pytest.raises(certmap.MappingError):
        run(section_tables(one=[{"certificate": certificate, "user_name": "x"}]), ALICE)


def test_an_unknown_sub_field_is_a_500():
    bad = {"name": "m", "user_name": "u", "rules": [{"certificate_sub_field": "XX", "match_criteria": "*"}]}
    with pytest.raises(certmap.MappingError):
        run(section_tables(many=[bad]), ALICE)


@pytest.mark.parametrize("criteria, value, hit", [
    ("*", "", True), ("a*c", "abc", True), ("a*c", "abcd", False), ("a.c", "abc", False),
    ("a?c", "abc", False), ("[a]", "a", False), ("[a]", "[a]", True), ("*ob*", "bob", True),
    ("Bob", "bob\n", False),
])
def test_match_criteria_has_only_the_star_wildcard(criteria, value, hit):
    assert bool(certmap.matcher(criteria, True)(value)) is hit


# ---- Negotiate --------------------------------------------------------------------------------

def negotiate_ctx(headers=(), **keys):
    tables = {"server": {"windows_authentication": {"enabled": True, **keys}}}
    app = make_app(tables=tables)
    module = negotiate.WindowsAuthenticationModule()
    module.setup(app)
    return module, make_ctx(app, headers=headers)


def test_no_header_offers_the_challenge():
    module, ctx = negotiate_ctx()
    assert module.authenticate_request(ctx) is CONTINUE
    assert ctx.challenges == [(10, "Negotiate")] and ctx.user is None


@pytest.mark.parametrize("value", ["Negotiate", "Negotiate ", "Negotiate !!!!", "negotiate YWJj=x",
                                   "Negotiate " + "A" * 100_000])
def test_bad_tokens_are_401_1_with_the_challenge(value):
    pytest.importorskip("gssapi")
    module, ctx = negotiate_ctx([("Authorization", value)])
    with pytest.raises(Unauthorized) as raised:
        module.authenticate_request(ctx)
    assert raised.value.substatus == 1
    assert raised.value.headers == [("WWW-Authenticate", "Negotiate")]


def test_a_missing_keytab_is_a_500_naming_it(tmp_path):
    pytest.importorskip("gssapi")
    keytab = str(tmp_path / "none.keytab")
    module, ctx = negotiate_ctx([("Authorization", "Negotiate YWJj")], keytab=keytab)
    with pytest.raises(negotiate.HttpError, match="none.keytab") as raised:
        module.authenticate_request(ctx)
    assert raised.value.status == 500


def test_other_schemes_are_left_alone():
    module, ctx = negotiate_ctx([("Authorization", "Basic YTpi")])
    assert module.authenticate_request(ctx) is CONTINUE and ctx.challenges == [(10, "Negotiate")]


def test_without_gssapi_the_module_names_the_extra(monkeypatch):
    monkeypatch.setattr(negotiate, "_gssapi", lambda: None)
    module, _ = negotiate_ctx()
    with pytest.raises(Exception, match=r"wasp-server\[kerberos\]"):
        module.validate()


@pytest.mark.parametrize("principal, user", [
    ("alice@WASP.TEST", "alice"), ("alice", "alice"), ("a\\@b@R", "a\\@b"), ("@R", "@R"),
    ("HTTP/host@R", "HTTP/host"),
])
def test_strip_realm(principal, user):
    assert negotiate._without_realm(principal) == user


# ---- ctx.add_header ---------------------------------------------------------------------------

def test_added_headers_reach_every_kind_of_response(tmp_path):
    for send in ("respond", "start_response", "send_file"):
        ctx = make_ctx(make_app())
        ctx.add_header("WWW-Authenticate", "Negotiate abc=")
        block = b"200 OK\r\nContent-Length: 2\r\n"
        if send == "send_file":
            ctx.send_file(block, str(tmp_path / "f"), 0, 2)
        else:
            getattr(ctx, send)(block)
        assert ctx.channel.response()[2]["www-authenticate"] == "Negotiate abc=", send


@pytest.mark.parametrize("name, value", [("X", "a\r\nSet-Cookie: x"), ("X\n", "v"), ("", "v"),
                                         ("A:B", "v"), ("A B", "v"), ("X", "a\x00")])
def test_add_header_refuses_injection(name, value):
    with pytest.raises(ValueError):
        make_ctx(make_app()).add_header(name, value)


# ---- wasp/wire/x509name.py against cryptography's parse ---------------------------------------

@pytest.mark.parametrize("pem", [ALICE, BOB, EVE, FAKE_ALICE, FAKE_ORG, LOWER,
                                 make_cert([(NameOID.COMMON_NAME, "zoë 漢字"), (NameOID.COUNTRY_NAME, "FR"),
                                            (NameOID.EMAIL_ADDRESS, "z@example.test"),
                                            (NameOID.DOMAIN_COMPONENT, "example")])])
def test_x509name_reads_what_cryptography_reads(pem):
    from wasp.wire import x509name
    cert = x509.load_pem_x509_certificate(pem.encode())

    def attrs(name):
        out = {}
        for a in name:
            out.setdefault(a.oid.dotted_string, []).append(a.value)
        return out
    assert x509name.names(der_of(pem)) == (attrs(cert.issuer), attrs(cert.subject))


def test_x509name_refuses_truncated_or_foreign_der():
    from wasp.wire import x509name
    der = der_of(ALICE)
    for bad in (b"", der[:10], der[:len(der) // 2], b"\x31" + der[1:], b"\x30\x85" + der[2:]):
        with pytest.raises(ValueError):
            x509name.names(bad)
