"""How the harnesses cut one byte stream into reads, so that a split-invariant property can be
checked: the same bytes in one piece and in pieces must give the same outcome."""

from __future__ import annotations


def pieces(data: bytes, cuts: bytes) -> list[bytes]:
    """`data` cut into pieces whose lengths come from `cuts` (cycled), each 1..64 bytes, or the
    whole of `data` when there are no cuts."""
    out = []
    pos = 0
    i = 0
    while pos < len(data):
        n = (cuts[i % len(cuts)] % 64) + 1 if cuts else len(data)
        out.append(data[pos:pos + n])
        pos += n
        i += 1
    return out
