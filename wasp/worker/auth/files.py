"""Apache's credential files: htpasswd (user:hash), htdigest (user:realm:HA1), htgroup
(group: user user ...). Each is read on first use and again whenever its stat signature changes,
so an admin's `htpasswd -B file user` takes effect on the next request, without a restart.

Password checks are constant-time (bcrypt's own, hmac.compare_digest for SHA-crypt and digests),
and an unknown user is checked against a real entry's hash and refused, so "no such user" costs
what "wrong password" costs and the two cannot be told apart by timing.

Hashes accepted in an htpasswd file: bcrypt (`$2y$`, `$2b$`, `$2a$`, what `htpasswd -B` writes)
and SHA-256/SHA-512 crypt (`$5$`, `$6$`). Apache's older `$apr1$` (MD5), `{SHA}` (unsalted SHA-1),
DES crypt and plain text are refused on purpose: such an entry never logs on, and the file's
problems are logged once per reload.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading

from wasp.worker.auth import shacrypt

log = logging.getLogger("wasp.worker")

#: bcrypt uses the first 72 bytes of a password; Apache's htpasswd -B truncates the same way.
BCRYPT_MAX = 72


def signature(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class WatchedFile:
    """A file parsed by `parse(text) -> (value, problems)` when first asked and again when it
    changed. `generation` grows at each reload, so caches built on it know when to forget."""

    def __init__(self, path: str, parse, empty):
        self.path = path
        self._parse = parse
        self._empty = empty
        self._lock = threading.Lock()
        self._signature: object = ()  # never a real signature: the first get() reads the file
        self._value = empty
        self.generation = 0

    def get(self):
        sig = signature(self.path)
        if sig == self._signature:
            return self._value
        with self._lock:
            if sig != self._signature:
                self._value = self._load(sig)
                self._signature = sig
                self.generation += 1
        return self._value

    def _load(self, sig):
        if sig is None:
            log.warning("credential file %s is missing: nobody can log on with it", self.path)
            return self._empty
        try:
            with open(self.path, "rb") as f:
                text = f.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("credential file %s cannot be read (%s): nobody can log on with it",
                        self.path, exc)
            return self._empty
        value, problems = self._parse(text)
        for line, message in problems[:20]:
            log.warning("%s:%d: %s", self.path, line, message)
        return value


def _lines(text: str):
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield number, line


# ---- htpasswd ----

def hash_kind(hashed: bytes) -> str | None:
    if hashed[:4] in (b"$2y$", b"$2b$", b"$2a$"):
        return "bcrypt"
    if hashed[:3] in (b"$5$", b"$6$"):
        return "sha-crypt"
    return None


def check_hash(password: bytes, hashed: bytes) -> bool:
    kind = hash_kind(hashed)
    try:
        if kind == "bcrypt":
            import bcrypt  # only a worker whose URLs check bcrypt hashes loads it

            return bcrypt.checkpw(password[:BCRYPT_MAX], hashed)
        if kind == "sha-crypt":
            return shacrypt.verify(password, hashed)
    except ValueError:  # a malformed hash: it matches nothing
        return False
    return False


def parse_htpasswd(text: str) -> tuple[dict[str, bytes], list]:
    users: dict[str, bytes] = {}
    problems = []
    for number, line in _lines(text):
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed:
            problems.append((number, "expected user:hash"))
            continue
        encoded = hashed.encode("ascii", "replace")
        kind = hash_kind(encoded)
        if kind is None:
            problems.append((number, f"user {user!r}: unsupported hash (use bcrypt, htpasswd -B, or "
                                     "SHA-crypt $5$/$6$); this user cannot log on"))
            continue
        if kind == "sha-crypt":
            try:
                shacrypt.parse(encoded)
            except shacrypt.MalformedHash as exc:
                problems.append((number, f"user {user!r}: {exc}"))
                continue
        if user in users:
            problems.append((number, f"user {user!r} is listed twice; the first entry counts"))
            continue
        users[user] = encoded
    return users, problems


class HtpasswdFile:
    """`check(user, password)` against an htpasswd file."""

    def __init__(self, path: str):
        self.file = WatchedFile(path, parse_htpasswd, {})
        self._dummy: bytes | None = None

    @property
    def generation(self) -> int:
        return self.file.generation

    def check(self, user: str, password: str) -> bool:
        users = self.file.get()
        hashed = users.get(user)
        secret = password.encode("utf-8")
        if hashed is None:
            # Pay what a real entry costs, then refuse.
            check_hash(secret, self._dummy_for(users))
            return False
        return check_hash(secret, hashed)

    def _dummy_for(self, users: dict[str, bytes]) -> bytes:
        for hashed in users.values():
            return hashed
        if self._dummy is None:
            import bcrypt

            self._dummy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(10))
        return self._dummy


# ---- htdigest ----

def parse_htdigest(text: str) -> tuple[dict[tuple[str, str, int], str], list]:
    """(user, realm, digest length in hex chars) -> HA1 hex. 32 chars: MD5 (what `htdigest`
    writes); 64: SHA-256 (the same line format, HA1 = SHA-256(user:realm:password))."""
    entries: dict[tuple[str, str, int], str] = {}
    problems = []
    for number, line in _lines(text):
        user, sep, rest = line.partition(":")
        realm, sep2, ha1 = rest.rpartition(":")
        ha1 = ha1.lower()
        if not (sep and sep2 and user) or len(ha1) not in (32, 64) or \
                any(c not in "0123456789abcdef" for c in ha1):
            problems.append((number, "expected user:realm:HA1 (32 hex digits for MD5, 64 for SHA-256)"))
            continue
        entries.setdefault((user, realm, len(ha1)), ha1)
    return entries, problems


class HtdigestFile:
    def __init__(self, path: str):
        self.file = WatchedFile(path, parse_htdigest, {})

    @property
    def generation(self) -> int:
        return self.file.generation

    def ha1(self, user: str, realm: str, size: int) -> str | None:
        return self.file.get().get((user, realm, size))


# ---- htgroup ----

def parse_htgroup(text: str) -> tuple[dict[str, frozenset[str]], list]:
    """-> user -> the groups naming it."""
    groups: dict[str, set[str]] = {}
    problems = []
    for number, line in _lines(text):
        group, sep, members = line.partition(":")
        group = group.strip()
        if not sep or not group:
            problems.append((number, "expected group: user user ..."))
            continue
        for user in members.split():
            groups.setdefault(user, set()).add(group)
    return {user: frozenset(names) for user, names in groups.items()}, problems


class HtgroupFile:
    def __init__(self, path: str):
        self.file = WatchedFile(path, parse_htgroup, {})

    @property
    def generation(self) -> int:
        return self.file.generation

    def roles(self, user: str) -> frozenset[str]:
        return self.file.get().get(user, frozenset())


def same(a: str, b: str) -> bool:
    """Constant-time string equality (UTF-8 bytes)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))
