"""SHA-256-crypt and SHA-512-crypt (`$5$` / `$6$`), Ulrich Drepper's published algorithm.

glibc's crypt(3) writes these in /etc/shadow and `htpasswd` does not, but `mkpasswd`, `openssl
passwd -5/-6` and many provisioning tools do, so an htpasswd file may hold them. Python's `crypt`
module is deprecated (gone in 3.13), hence this implementation, checked byte for byte against
`openssl passwd` in the unit tests. No I/O.
"""

from __future__ import annotations

import hashlib
import hmac

_ITOA64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

ROUNDS_DEFAULT = 5000
ROUNDS_MIN = 1000
ROUNDS_MAX = 999_999_999
SALT_MAX = 16

# The byte triples of the final digest, in the order the spec encodes them.
_ORDER = {
    "5": ([(0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14), (15, 25, 5),
           (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29)], (None, 31, 30), 3),
    "6": ([(0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26),
           (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32),
           (12, 33, 54), (34, 55, 13), (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38),
           (18, 39, 60), (40, 61, 19), (62, 20, 41)], (None, None, 63), 2),
}


class MalformedHash(ValueError):
    """Not a `$5$` / `$6$` hash this module can check."""


def _encode(digest: bytes, variant: str) -> bytes:
    triples, (a, b, c), tail = _ORDER[variant]
    out = bytearray()
    for x, y, z in triples:
        w = (digest[x] << 16) | (digest[y] << 8) | digest[z]
        for _ in range(4):
            out.append(_ITOA64[w & 0x3F])
            w >>= 6
    w = ((digest[a] << 16) if a is not None else 0) | ((digest[b] << 8) if b is not None else 0) | digest[c]
    for _ in range(tail):
        out.append(_ITOA64[w & 0x3F])
        w >>= 6
    return bytes(out)


def _repeat(digest: bytes, length: int) -> bytes:
    return (digest * (length // len(digest) + 1))[:length]


def digest(password: bytes, salt: bytes, rounds: int, variant: str) -> bytes:
    """The encoded hash part (after the last `$`) for `password`."""
    h = hashlib.sha256 if variant == "5" else hashlib.sha512
    size = h().digest_size
    b = h(password + salt + password).digest()
    a = h(password + salt)
    n = len(password)
    while n > size:
        a.update(b)
        n -= size
    a.update(b[:n])
    n = len(password)
    while n:
        a.update(b if n & 1 else password)
        n >>= 1
    c = a.digest()
    p_seq = _repeat(h(password * len(password)).digest(), len(password))
    s_seq = _repeat(h(salt * (16 + c[0])).digest(), len(salt))
    for i in range(rounds):
        step = h(p_seq if i & 1 else c)
        if i % 3:
            step.update(s_seq)
        if i % 7:
            step.update(p_seq)
        step.update(c if i & 1 else p_seq)
        c = step.digest()
    return _encode(c, variant)


def parse(hashed: bytes) -> tuple[str, int, bool, bytes, bytes]:
    """`$6$[rounds=N$]salt$hash` -> (variant, rounds, rounds written, salt, hash)."""
    if hashed[:3] not in (b"$5$", b"$6$"):
        raise MalformedHash("not a SHA-crypt hash")
    variant = chr(hashed[1])
    rest = hashed[3:]
    rounds, explicit = ROUNDS_DEFAULT, False
    if rest.startswith(b"rounds="):
        spec, sep, rest = rest[7:].partition(b"$")
        if not sep or not spec.isdigit():
            raise MalformedHash("bad rounds= field")
        rounds, explicit = min(max(int(spec), ROUNDS_MIN), ROUNDS_MAX), True
    salt, sep, encoded = rest.rpartition(b"$")
    if not sep:
        raise MalformedHash("no hash after the salt")
    salt = salt[:SALT_MAX]
    want = 43 if variant == "5" else 86
    if len(encoded) != want or any(ch not in _ITOA64 for ch in encoded):
        raise MalformedHash("hash part has the wrong length or alphabet")
    return variant, rounds, explicit, salt, encoded


def hash_password(password: bytes, salt: bytes, variant: str = "6", rounds: int | None = None) -> bytes:
    """A full `$6$...` string (tests and `wasp` tooling make hashes with it)."""
    salt = salt[:SALT_MAX]
    prefix = b"$" + variant.encode() + b"$"
    if rounds is not None:
        rounds = min(max(rounds, ROUNDS_MIN), ROUNDS_MAX)
        prefix += b"rounds=%d$" % rounds
    return prefix + salt + b"$" + digest(password, salt, rounds or ROUNDS_DEFAULT, variant)


def verify(password: bytes, hashed: bytes) -> bool:
    """Whether `password` matches `hashed`; the comparison is constant-time."""
    variant, rounds, _explicit, salt, encoded = parse(hashed)
    return hmac.compare_digest(digest(password, salt, rounds, variant), encoded)
