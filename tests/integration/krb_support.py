"""A real MIT Kerberos realm for the Negotiate tests: a KDC database in a temp folder, principals
added with kadmin.local, service keys exported to a keytab, krb5kdc on an ephemeral 127.0.0.1
port (stopped by PID), and client tickets from kinit in a private ccache. Nothing touches the
system's /etc/krb5.conf or keytab: every command gets KRB5_CONFIG / KRB5_KDC_PROFILE /
KRB5CCNAME of its own."""

from __future__ import annotations

import base64
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

REALM = "WASP.TEST"

_SPNEGO = "1.3.6.1.5.5.2"


def available() -> str:
    """"" when the KDC tools and gssapi are there, else what is missing (a skip reason)."""
    missing = [tool for tool in ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")
               if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}")]
    try:
        import gssapi  # noqa: F401
    except ImportError:
        missing.append("the gssapi package")
    return ", ".join(missing)


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class Realm:
    def __init__(self, folder: pathlib.Path, port: int):
        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.krb5_conf = self.folder / "krb5.conf"
        self.kdc_conf = self.folder / "kdc.conf"
        self.proc: subprocess.Popen | None = None
        self.krb5_conf.write_text(f"""[libdefaults]
 default_realm = {REALM}
 dns_lookup_kdc = false
 dns_lookup_realm = false
 rdns = false
 udp_preference_limit = 1
[realms]
 {REALM} = {{
  kdc = 127.0.0.1:{port}
 }}
""")
        self.kdc_conf.write_text(f"""[kdcdefaults]
 kdc_listen = 127.0.0.1:{port}
 kdc_tcp_listen = 127.0.0.1:{port}
[realms]
 {REALM} = {{
  database_name = {self.folder}/principal
  key_stash_file = {self.folder}/stash
  acl_file = {self.folder}/kadm5.acl
 }}
[logging]
 kdc = FILE:{self.folder}/kdc.log
""")

    @property
    def env(self) -> dict[str, str]:
        return {"KRB5_CONFIG": str(self.krb5_conf), "KRB5_KDC_PROFILE": str(self.kdc_conf),
                "KRB5RCACHEDIR": str(self.folder)}

    def _run(self, *args: str, input: str | None = None, env: dict | None = None) -> str:
        done = subprocess.run(args, input=input, capture_output=True, text=True, timeout=60,
                              env={**os.environ, **self.env, **(env or {})})
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def create(self) -> "Realm":
        self._run(_tool("kdb5_util"), "create", "-s", "-r", REALM, "-P", "master-password")
        return self

    def kadmin(self, query: str) -> str:
        return self._run(_tool("kadmin.local"), "-r", REALM, "-q", query)

    def add_user(self, name: str, password: str) -> None:
        self.kadmin(f"addprinc -pw {password} {name}")

    def add_service(self, principal: str, keytab: pathlib.Path | None = None) -> None:
        self.kadmin(f"addprinc -randkey {principal}")
        if keytab is not None:
            self.kadmin(f"ktadd -k {keytab} {principal}")

    def start(self) -> "Realm":
        log = open(self.folder / "krb5kdc.out", "ab")
        self.proc = subprocess.Popen([_tool("krb5kdc"), "-n", "-r", REALM], stdout=log,
                                     stderr=subprocess.STDOUT, env=dict(os.environ, **self.env),
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"krb5kdc did not start: {self.kdc_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)

    def kdc_log(self) -> str:
        path = self.folder / "kdc.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kinit(self, user: str, password: str, ccache: pathlib.Path) -> dict[str, str]:
        """A ticket-granting ticket for `user` in `ccache`; -> the env a client needs."""
        env = dict(self.env, KRB5CCNAME=f"FILE:{ccache}")
        self._run("kinit", f"{user}@{REALM}", input=password + "\n", env=env)
        return env


def negotiate_token(client_env: dict[str, str], service: str = "HTTP@localhost"):
    """(the base64 SPNEGO token for `service`, the initiating context) from the ccache in
    `client_env`, made by GSSAPI as a browser would. The process's environment is set for the
    call (GSSAPI reads KRB5_CONFIG / KRB5CCNAME from it) and put back."""
    import gssapi

    saved = {k: os.environ.get(k) for k in client_env}
    os.environ.update(client_env)
    try:
        kind = gssapi.NameType.kerberos_principal if "/" in service else gssapi.NameType.hostbased_service
        context = gssapi.SecurityContext(
            name=gssapi.Name(service, kind), usage="initiate", mech=gssapi.OID.from_int_seq(_SPNEGO),
            flags=gssapi.RequirementFlag.mutual_authentication | gssapi.RequirementFlag.out_of_sequence_detection)
        token = context.step()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return base64.b64encode(token).decode(), context
