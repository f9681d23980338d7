"""The issuer and subject names of a DER X.509 certificate, attribute by attribute (no I/O).

The worker maps client certificates by their name attributes (client-certificate mapping) but
does not import `cryptography`: a pool's own interpreter may lack it or pin another version
(manager/spawn.py SERVER_ONLY_IMPORTS). The front's OpenSSL has already parsed and verified the
certificate, so this reads only the two Names of RFC 5280 TBSCertificate, strictly: any length or
tag that does not fit raises ValueError rather than guessing.
"""

from __future__ import annotations

_SEQUENCE, _SET, _OID, _INTEGER = 0x30, 0x31, 0x06, 0x02

#: Directory string types -> how their bytes decode.
_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1A: "ascii",
            0x1E: "utf-16-be", 0x1C: "utf-32-be", 0x12: "ascii"}


def _read(der: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """-> (tag, start of content, end of content) of the element at `pos`."""
    if pos + 2 > end:
        raise ValueError("truncated DER element")
    tag = der[pos]
    length = der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise ValueError("bad DER length")
        length = int.from_bytes(der[pos:pos + count], "big")
        pos += count
    if pos + length > end:
        raise ValueError("DER element longer than its container")
    return tag, pos, pos + length


def _oid(data: bytes) -> str:
    if not data:
        raise ValueError("empty OID")
    first = data[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for i, byte in enumerate(data[1:], 1):
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
        elif i == len(data) - 1:
            raise ValueError("truncated OID")
    return ".".join(map(str, parts))


def _name(der: bytes, start: int, end: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    pos = start
    while pos < end:
        tag, s, e = _read(der, pos, end)
        if tag != _SET:
            raise ValueError("a Name holds SETs")
        inner = s
        while inner < e:
            tag, a, b = _read(der, inner, e)
            if tag != _SEQUENCE:
                raise ValueError("an attribute is a SEQUENCE")
            tag, os_, oe = _read(der, a, b)
            if tag != _OID:
                raise ValueError("an attribute starts with its OID")
            vtag, vs, ve = _read(der, oe, b)
            encoding = _STRINGS.get(vtag)
            raw = der[vs:ve]
            value = raw.decode(encoding) if encoding else raw.hex()
            out.setdefault(_oid(der[os_:oe]), []).append(value)
            inner = b
        pos = e
    return out


def names(der: bytes) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """-> (issuer, subject): attribute OID (dotted) -> its values, in the certificate's order."""
    tag, s, e = _read(der, 0, len(der))
    if tag != _SEQUENCE:
        raise ValueError("not a certificate")
    tag, s, e = _read(der, s, e)  # TBSCertificate
    if tag != _SEQUENCE:
        raise ValueError("not a TBSCertificate")
    pos = s
    tag, _, after = _read(der, pos, e)
    if tag == 0xA0:                 # [0] version
        pos = after
        tag, _, after = _read(der, pos, e)
    if tag != _INTEGER:
        raise ValueError("no serial number")
    pos = after
    tag, _, pos = _read(der, pos, e)   # signature AlgorithmIdentifier
    tag, is_, ie = _read(der, pos, e)  # issuer
    if tag != _SEQUENCE:
        raise ValueError("no issuer")
    tag, _, pos = _read(der, ie, e)    # validity
    tag, ss, se = _read(der, pos, e)   # subject
    if tag != _SEQUENCE:
        raise ValueError("no subject")
    return _name(der, is_, ie), _name(der, ss, se)
