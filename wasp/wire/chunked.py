"""Limits on the framing of a chunked request body that llhttp does not bound. No I/O.

llhttp (through httptools) parses the body, but it hands wasp neither the declared chunk sizes nor
the chunk extensions, and httptools grows a trailer field by concatenation as its bytes arrive, so
an endless trailer or extension line costs memory and CPU without any callback telling the front.
`ChunkScanner` walks the same bytes just ahead of llhttp, without copying them, and raises the
HttpError HTTP.sys answers:

* a declared chunk size that takes the body over `max_allowed_content_length`: 413.1 at once,
  before the chunk's bytes arrive;
* a chunk-size line (size and extensions) over `max_field_length`: 400. RFC 9112 §7.1.1 asks for a
  cap; nginx only skips extensions and HTTP.sys documents none, so the line gets HTTP.sys's
  per-line limit (16 KiB by default, the cap Node.js adopted for CVE-2024-22019);
* a trailer line over `max_field_length`: 431 FieldLength; head plus trailers over
  `max_request_bytes`: 431 RequestLength (trailers are header fields to HTTP.sys).

Line ends are what llhttp accepts with the front's leniencies (LF, CRLF, and a lone CR after the
chunk size); anything llhttp refuses it refuses itself, in the same feed. One thing llhttp
accepts is refused here: a chunk-size line ending in LF LF (`AmbiguousChunkLine`, 400), which
llhttp reads as one line end and a bare-LF parser as a line end and a data byte.

`head_end` finds where a request head ends in a read, so that the front can start a scanner exactly
where llhttp starts the body.
"""

from __future__ import annotations

import re

from wasp.errors import BadRequest
from wasp.wire.http import EntityTooLarge, FieldTooLong, RequestTooLong


class ChunkExtensionTooLong(BadRequest):
    """A chunk-size line (size plus extensions) over max_field_length."""


class AmbiguousChunkLine(BadRequest):
    """A chunk-size line ended by a bare LF with another LF right after it. llhttp (with the
    front's leniencies) takes the second LF as the end of the line, as if the first were a CR; a
    parser that takes a bare LF as the line end takes it as the chunk's first byte. Two parsers
    that read a body differently are how requests are smuggled: refuse it."""


# The third form is a bare CR ending the head, which llhttp (lenient_optional_lf_after_cr) only
# takes once it sees the next byte; the front refuses it (connection.py), so it must be found.
_HEAD_END = re.compile(rb"\n\r?\n|\n\r(?=[^\n])")
_EOL = re.compile(rb"[\r\n]")
_HEX = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}

(SIZE, SIZE_CR, SIZE_LF, DATA, DATA_CR, DATA_LF, TRAILER_START, TRAILER, TRAILER_LF, TRAILER_CR,
 DONE) = range(11)


def head_end(data: bytes, start: int = 0, tail: bytes = b"") -> int:
    """The offset in `data` just past the first empty line at or after `start` (the end of a head
    that began before it), or -1. `tail` is the end of the previous read of the same head, so an
    empty line split across reads is found too."""
    if tail:
        tail = tail[-2:]
        joined = tail + data[:2]
        for i in range(len(tail)):
            match = _HEAD_END.match(joined, i)
            # (a bare CR that ended the previous read ends the head at 0, with the byte after it)
            if match is not None and (match.end() > len(tail) or match.group().endswith(b"\r")):
                return match.end() - len(tail)
    match = _HEAD_END.search(data, start)
    return -1 if match is None else match.end()


class ChunkScanner:
    __slots__ = ("state", "size", "in_ext", "line", "declared", "data_left", "trailer_budget",
                 "max_content", "max_line", "data_bytes")

    def __init__(self, max_content: int, max_line: int, trailer_budget: int):
        self.state = SIZE
        self.size = 0
        self.in_ext = False     # past the size's hex digits
        self.line = 0           # bytes of the current size or trailer line so far
        self.declared = 0       # sum of the declared chunk sizes
        self.data_left = 0
        self.trailer_budget = trailer_budget
        self.max_content = max_content
        self.max_line = max_line
        self.data_bytes = 0     # chunk data walked so far (llhttp's on_body total must agree)

    @property
    def done(self) -> bool:
        return self.state == DONE

    def feed(self, data: bytes, pos: int = 0) -> int:
        """Walk data[pos:]; return the offset just past the body's end, or len(data) if the body
        goes on. Raises the HttpError for a limit the bytes break."""
        n = len(data)
        state = self.state
        try:
            while pos < n and state != DONE:
                if state == DATA:
                    step = min(self.data_left, n - pos)
                    self.data_left -= step
                    self.data_bytes += step
                    pos += step
                    if not self.data_left:
                        state = DATA_CR
                elif state == SIZE:
                    pos, state = self._size(data, pos, n)
                elif state == SIZE_CR:
                    if data[pos] == 10:
                        pos += 1
                    state = self._after_size()
                elif state == SIZE_LF:
                    if data[pos] == 10:
                        raise AmbiguousChunkLine("chunk-size line ends in LF LF")
                    state = self._after_size()
                elif state == DATA_CR:
                    c = data[pos]
                    if c == 13:
                        pos += 1
                        state = DATA_LF
                    elif c == 10:
                        pos += 1
                        state = SIZE
                    else:
                        return n  # llhttp refuses it in this feed
                elif state == DATA_LF:
                    if data[pos] != 10:
                        return n
                    pos += 1
                    state = SIZE
                elif state == TRAILER_START:
                    c = data[pos]
                    if c == 10:
                        pos += 1
                        state = DONE
                    elif c == 13:
                        pos += 1
                        state = TRAILER_CR
                    else:
                        state = TRAILER
                elif state == TRAILER_LF:
                    if data[pos] != 10:
                        return n  # a bare CR in a field: llhttp refuses it in this feed
                    pos += 1
                    self.trailer_budget -= 1
                    state = TRAILER_START
                elif state == TRAILER_CR:
                    if data[pos] == 10:
                        pos += 1
                    state = DONE
                else:  # TRAILER
                    pos, state = self._trailer(data, pos, n)
        finally:
            self.state = state
        return pos

    def _size(self, data: bytes, pos: int, n: int) -> tuple[int, int]:
        # The hex digits first (a few bytes), then extensions up to the line end.
        start = pos
        if not self.in_ext:
            hexes = _HEX
            size = self.size
            while pos < n:
                digit = hexes.get(data[pos])
                if digit is None:
                    self.in_ext = True
                    break
                size = size * 16 + digit
                pos += 1
            self._check_size(size)
            self.size = size
        match = _EOL.search(data, pos)
        end = n if match is None else match.start()
        self.line += end - start
        if self.line > self.max_line:
            raise ChunkExtensionTooLong("chunk-size line over max_field_length")
        if match is None:
            return n, SIZE
        return end + 1, SIZE_CR if data[end] == 13 else SIZE_LF

    def _check_size(self, size: int) -> None:
        limit = self.max_content
        if limit and self.declared + size > limit:
            raise EntityTooLarge("chunked body over max_allowed_content_length")

    def _after_size(self) -> int:
        size = self.size
        self.declared += size
        self.size = 0
        self.line = 0
        self.in_ext = False
        if size == 0:
            return TRAILER_START
        self.data_left = size
        return DATA

    def _trailer(self, data: bytes, pos: int, n: int) -> tuple[int, int]:
        # A line in progress is held to max_field_length; whole lines count toward the total, as
        # the head's lines do (so the total is exact and never costs more than one line more).
        match = _EOL.search(data, pos)
        end = n if match is None else match.start()
        self.line += end - pos
        if self.line > self.max_line:
            raise FieldTooLong("trailer line over max_field_length")
        if match is None:
            return n, TRAILER
        self.trailer_budget -= self.line + 1
        self.line = 0
        if self.trailer_budget < 0:
            raise RequestTooLong("request head and trailers over max_request_bytes")
        if data[end] == 13:
            return end + 1, TRAILER_LF
        return end + 1, TRAILER_START
