"""Basic authentication against the system's users through PAM (a real local user the test
creates with useradd/chpasswd and a PAM service file it writes, both removed in teardown) and
against an LDAP directory (Debian's slapd, started here on an ephemeral port with a temporary
config and stopped by PID): bind as the user, roles from system groups and LDAP groups reaching
URL authorization."""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import signal
import subprocess

import pytest
import requests
from requests.auth import HTTPBasicAuth

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates a system user and a PAM service: needs root")

SUFFIX = "dc=wasp,dc=test"

CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"
[anonymous_authentication]
enabled = false

[[pools]]
name = "Stores"

[[sites]]
name = "Stores Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Stores"
physical_path = "www"

[[locations]]
path = "Stores Site/pam"
[locations.basic_authentication]
enabled = true
provider = "pam"
pam_service = "{service}"
max_failed_logons = 0

[[locations]]
path = "Stores Site/pam/group"
[locations.authorization]
rules = { clear = true, add = [ { access_type = "Allow", roles = "{group}" } ] }

[[locations]]
path = "Stores Site/ldap"
[locations.basic_authentication]
enabled = true
provider = "ldap"
max_failed_logons = 0
[locations.basic_authentication.ldap]
url = "ldap://127.0.0.1:{ldap_port}"
bind_dn = "cn=admin,dc=wasp,dc=test"
bind_password = "admin secret"
user_base_dn = "ou=people,dc=wasp,dc=test"
group_base_dn = "ou=groups,dc=wasp,dc=test"

[[locations]]
path = "Stores Site/ldap/admins"
[locations.authorization]
rules = { clear = true, add = [ { access_type = "Allow", roles = "admins" } ] }

[[locations]]
path = "Stores Site/ldap/staff"
[locations.authorization]
rules = { clear = true, add = [ { access_type = "Allow", roles = "ldapstaff" } ] }
"""

SLAPD_CONF = """
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
database mdb
suffix "dc=wasp,dc=test"
rootdn "cn=admin,dc=wasp,dc=test"
rootpw "admin secret"
directory {dir}/db
access to attrs=userPassword by anonymous auth by * none
access to * by * read
"""

LDIF = """dn: dc=wasp,dc=test
objectClass: dcObject
objectClass: organization
o: wasp
dc: wasp

dn: ou=people,dc=wasp,dc=test
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=wasp,dc=test
objectClass: organizationalUnit
ou: groups

dn: uid=lara,ou=people,dc=wasp,dc=test
objectClass: inetOrgPerson
uid: lara
cn: Lara
sn: Lara
userPassword: lara's p4ss

dn: uid=max,ou=people,dc=wasp,dc=test
objectClass: inetOrgPerson
uid: max
cn: Max
sn: Max
userPassword: max pass

dn: uid=evil*,ou=people,dc=wasp,dc=test
objectClass: inetOrgPerson
uid: evil*
cn: Evil
sn: Evil
userPassword: evil pass

dn: cn=ldapstaff,ou=groups,dc=wasp,dc=test
objectClass: posixGroup
cn: ldapstaff
gidNumber: 5000
memberUid: lara
memberUid: max

dn: cn=admins,ou=groups,dc=wasp,dc=test
objectClass: groupOfNames
cn: admins
member: uid=lara,ou=people,dc=wasp,dc=test
"""


@pytest.fixture(scope="module")
def pam_user():
    if shutil.which("useradd") is None:
        pytest.skip("no useradd")
    tag = secrets.token_hex(3)
    user, group, service = f"wasptest{tag}", f"waspgrp{tag}", f"wasp-test-{tag}"
    password = "Pam pass " + tag
    service_file = pathlib.Path("/etc/pam.d") / service
    service_file.write_text("auth required pam_unix.so\naccount required pam_unix.so\n")
    subprocess.run(["groupadd", group], check=True)
    subprocess.run(["useradd", "-M", "-N", "-G", group, user], check=True)
    subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True)
    try:
        yield {"user": user, "group": group, "service": service, "password": password}
    finally:
        subprocess.run(["userdel", user], check=False)
        subprocess.run(["groupdel", group], check=False)
        service_file.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def slapd(tmp_path_factory, wasp_module_server):
    if shutil.which("slapd") is None and not os.path.exists("/usr/sbin/slapd"):
        pytest.skip("slapd is not installed (.ci/apt-packages)")
    d = tmp_path_factory.mktemp("slapd")
    (d / "db").mkdir()
    (d / "slapd.conf").write_text(SLAPD_CONF.replace("{dir}", str(d)))
    port = wasp_module_server.free_port()
    proc = subprocess.Popen(["/usr/sbin/slapd", "-d", "0", "-f", str(d / "slapd.conf"),
                             "-h", f"ldap://127.0.0.1:{port}/"],
                            stdout=subprocess.DEVNULL, stderr=open(d / "slapd.log", "wb"))
    try:
        def up():
            return subprocess.run(["ldapsearch", "-x", "-H", f"ldap://127.0.0.1:{port}", "-b", "",
                                   "-s", "base"], capture_output=True).returncode == 0
        wasp_module_server.wait_until(up, what="slapd answering")
        (d / "data.ldif").write_text(LDIF)
        subprocess.run(["ldapadd", "-x", "-H", f"ldap://127.0.0.1:{port}", "-D",
                        "cn=admin,dc=wasp,dc=test", "-w", "admin secret", "-f", str(d / "data.ldif")],
                       check=True, capture_output=True)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def server(wasp_module_server, pam_user, slapd):
    d = wasp_module_server.dir
    for folder in ("pam", "pam/group", "ldap", "ldap/admins", "ldap/staff"):
        (d / "www" / folder).mkdir(parents=True, exist_ok=True)
        (d / "www" / folder / "index.html").write_text(f"{folder} page")
    text = (CONFIG.replace("{service}", pam_user["service"]).replace("{group}", pam_user["group"])
            .replace("{ldap_port}", str(slapd)))
    return wasp_module_server(text)


def get(server, path, user=None, password=None):
    return requests.get(server.url + path, timeout=30,
                        auth=HTTPBasicAuth(user.encode(), password.encode()) if user else None)


def test_pam_logs_a_system_user_on(server, pam_user):
    r = get(server, "/pam/index.html", pam_user["user"], pam_user["password"])
    assert (r.status_code, r.text) == (200, "pam page")
    assert get(server, "/pam/index.html", pam_user["user"], "wrong").status_code == 401
    assert get(server, "/pam/index.html", "root", "wrong").status_code == 401
    assert get(server, "/pam/index.html", "no-such-user-here", "x").status_code == 401


def test_pam_system_groups_are_roles(server, pam_user):
    assert get(server, "/pam/group/index.html", pam_user["user"], pam_user["password"]).status_code == 200


@pytest.mark.parametrize("user, password, expected", [
    ("lara", "lara's p4ss", 200), ("max", "max pass", 200), ("lara", "wrong", 401),
    ("lara", "", 401),              # an empty password would be an unauthenticated bind
    ("nobody", "x", 401), ("*", "lara's p4ss", 401), ("lara)(uid=*", "lara's p4ss", 401),
    ("evil*", "evil pass", 200),    # filter characters are escaped: only the entry named so
    ("evil*", "lara's p4ss", 401),
])
def test_ldap_binds_as_the_user(server, user, password, expected):
    assert get(server, "/ldap/index.html", user, password).status_code == expected


@pytest.mark.parametrize("path, user, password, expected", [
    ("/ldap/admins/index.html", "lara", "lara's p4ss", 200),   # groupOfNames member
    ("/ldap/admins/index.html", "max", "max pass", 403),
    ("/ldap/staff/index.html", "max", "max pass", 200),        # posixGroup memberUid
])
def test_ldap_groups_are_roles(server, path, user, password, expected):
    assert get(server, path, user, password).status_code == expected
