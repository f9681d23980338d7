"""Credential stores for Basic authentication: an htpasswd file, the system's users through PAM,
an LDAP directory (bind as the user). Each answers `check(user, password)` and `roles(user)`;
both may block (bcrypt, a PAM conversation, two LDAP round trips), so the modules call them on a
thread (wasp/worker/auth/pending.py), never on the event loop.

`generation()` changes when what a store knows changed (its htpasswd or htgroup file was
rewritten); the token cache forgets entries of older generations. A PAM or LDAP store has no
such signal: its cached logons live for the token TTL, as IIS's cached tokens do.
"""

from __future__ import annotations

import grp
import logging
import math
import pwd

from wasp.worker.auth.files import HtgroupFile, HtpasswdFile

log = logging.getLogger("wasp.worker")


class Store:
    id = ""

    def __init__(self, group_file: str = ""):
        self.groups = HtgroupFile(group_file) if group_file else None

    def generation(self):
        if self.groups is not None:
            self.groups.file.get()
            return self.groups.generation
        return 0

    def check(self, user: str, password: str) -> bool:
        raise NotImplementedError

    def roles(self, user: str) -> frozenset[str]:
        return self.groups.roles(user) if self.groups is not None else frozenset()


class HtpasswdStore(Store):
    def __init__(self, user_file: str, group_file: str = ""):
        super().__init__(group_file)
        self.id = f"htpasswd:{user_file}:{group_file}"
        self.users = HtpasswdFile(user_file)

    def generation(self):
        self.users.file.get()
        return (self.users.generation, super().generation())

    def check(self, user: str, password: str) -> bool:
        return self.users.check(user, password)


class PamStore(Store):
    """The system's users: pam_authenticate and pam_acct_mgmt of `service` (an expired or locked
    account is refused). Roles are the user's system groups (primary included) unless an htgroup
    file is named. With pam_unix the worker must be able to read /etc/shadow (root, or a pool
    identity in group `shadow`), as for any PAM-checking server."""

    def __init__(self, service: str, group_file: str = ""):
        super().__init__(group_file)
        self.service = service
        self.id = f"pam:{service}:{group_file}"

    def check(self, user: str, password: str) -> bool:
        import pam  # python-pam, ctypes over libpam

        handle = pam.pam()
        ok = handle.authenticate(user, password, service=self.service)
        if not ok and handle.code not in (7, 10):  # PAM_AUTH_ERR, PAM_USER_UNKNOWN: plain failures
            log.warning("PAM service %s refused %r: %s (%s)", self.service, user, handle.reason, handle.code)
        return bool(ok)

    def roles(self, user: str) -> frozenset[str]:
        if self.groups is not None:
            return super().roles(user)
        names = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
        try:
            names.add(grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name)
        except KeyError:
            pass
        return frozenset(names)


class LdapStore(Store):
    """Search the user's entry with the service account, then bind as that entry with the
    user's password (the directory checks it; wasp never sees a hash). Roles: the
    `group_attribute` of the groups `group_filter` finds. A fresh connection per check keeps a
    bound user's rights from leaking into the next search."""

    def __init__(self, settings, group_file: str = ""):
        super().__init__(group_file)
        self.settings = settings
        self.id = f"ldap:{settings.url}:{settings.user_base_dn}:{settings.user_filter}:{group_file}"
        self._dns: dict[str, str] = {}

    def _connection(self, user: str = "", password: str = ""):
        import ldap3

        s = self.settings
        timeout = max(1, math.ceil(s.timeout))  # ldap3 packs them as socket options: ints
        server = ldap3.Server(s.url, connect_timeout=timeout, get_info=ldap3.NONE)
        return ldap3.Connection(server, user=user or None, password=password or None,
                                receive_timeout=timeout, raise_exceptions=False, read_only=True)

    def _find(self, user: str) -> str | None:
        from ldap3.utils.conv import escape_filter_chars

        s = self.settings
        conn = self._connection(s.bind_dn, s.bind_password)
        try:
            if not conn.bind():
                log.error("LDAP %s: the service bind as %r failed: %s", s.url, s.bind_dn,
                          conn.result.get("description"))
                return None
            query = s.user_filter.replace("{user}", escape_filter_chars(user))
            conn.search(s.user_base_dn, query, attributes=[], size_limit=2)
            entries = conn.response or []
            dns = [e["dn"] for e in entries if e.get("type") == "searchResEntry"]
            return dns[0] if len(dns) == 1 else None
        finally:
            conn.unbind()

    def check(self, user: str, password: str) -> bool:
        if not password:
            return False  # an empty password is an unauthenticated bind (RFC 4513 5.1.2): never a logon
        from ldap3.core.exceptions import LDAPException

        try:
            return self._check(user, password)
        except (LDAPException, OSError) as exc:
            # The directory is down or refuses us: nobody can log on (401.1), and the log says why.
            log.error("LDAP %s: cannot check %r: %s", self.settings.url, user, exc)
            return False

    def _check(self, user: str, password: str) -> bool:
        dn = self._find(user)
        if dn is None:
            return False
        conn = self._connection(dn, password)
        try:
            ok = conn.bind()
        finally:
            conn.unbind()
        if ok:
            self._dns[user] = dn
        return bool(ok)

    def roles(self, user: str) -> frozenset[str]:
        if self.groups is not None:
            return super().roles(user)
        if not self.settings.group_base_dn:
            return frozenset()
        from ldap3.core.exceptions import LDAPException

        try:
            return self._roles(user)
        except (LDAPException, OSError) as exc:
            log.error("LDAP %s: cannot read the groups of %r: %s", self.settings.url, user, exc)
            return frozenset()

    def _roles(self, user: str) -> frozenset[str]:
        s = self.settings
        from ldap3.utils.conv import escape_filter_chars

        dn = self._dns.pop(user, "") or self._find(user) or ""
        conn = self._connection(s.bind_dn, s.bind_password)
        try:
            if not conn.bind():
                return frozenset()
            query = s.group_filter.replace("{user}", escape_filter_chars(user)).replace(
                "{dn}", escape_filter_chars(dn))
            conn.search(s.group_base_dn, query, attributes=[s.group_attribute])
            names = set()
            for entry in conn.response or []:
                if entry.get("type") != "searchResEntry":
                    continue
                value = entry.get("attributes", {}).get(s.group_attribute)
                for name in value if isinstance(value, list) else [value]:
                    if isinstance(name, str) and name:
                        names.add(name)
            return frozenset(names)
        finally:
            conn.unbind()


def store_for(section) -> Store:
    if section.provider == "pam":
        return PamStore(section.pam_service, section.group_file)
    if section.provider == "ldap":
        return LdapStore(section.ldap, section.group_file)
    return HtpasswdStore(section.user_file, section.group_file)


def store_key(section) -> tuple:
    s = section.ldap
    return (section.provider, section.user_file, section.group_file, section.pam_service,
            s.url, s.bind_dn, s.bind_password, s.user_base_dn, s.user_filter, s.group_base_dn,
            s.group_filter, s.group_attribute, s.timeout)
