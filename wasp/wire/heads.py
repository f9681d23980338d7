"""Limits on the raw bytes of a request head, whatever reads they arrive in. No I/O.

httptools hands the front each header's name and value, without the whitespace around the value,
and only once the line is complete: until then llhttp holds the bytes. `HeadScanner` walks the
head's raw bytes just ahead of llhttp, as `ChunkScanner` does a chunked body's, and finds the
first byte that breaks a limit, so that the front gives the same answer for the same bytes
however the client (or TCP) splits them:

* a header line over max_field_length (counted raw, whitespace included, its CR too: a line may
  hold max_field_length bytes before its CRLF): 431 FieldLength;
* a head (request line, header lines, line ends) over max_request_bytes + max_field_length:
  431 RequestLength. The exact max_request_bytes check stays on the complete lines the parser
  reports; this bound only keeps what llhttp may hold for an unfinished head in proportion.

The request line is bounded by max_url (checked as llhttp reports the target) and the total.
"""

from __future__ import annotations

from wasp.errors import HttpError
from wasp.wire.http import FieldTooLong, RequestTooLong


class HeadScanner:
    __slots__ = ("max_line", "max_total", "line", "total", "first")

    def __init__(self, max_line: int, max_total: int):
        self.max_line = max_line + 1   # the line's CR, if it has one, is counted
        self.max_total = max_total
        self.reset()

    def reset(self) -> None:
        """A new head begins."""
        self.line = 0       # bytes of the current line so far (no LF yet)
        self.total = 0
        self.first = True   # still in the request line

    def feed(self, data: bytes, pos: int, end: int) -> tuple[int, HttpError | None]:
        """Walk data[pos:end], all of it head. -> (-1, None), or the offset of the first byte
        over a limit and the error it breaks (the bytes before it are still the parser's)."""
        at = -1
        error = None
        room = self.max_total - self.total
        if end - pos > room:
            at, error = pos + room, RequestTooLong("request head over max_request_bytes")
            end = at
        self.total += end - pos
        last = data.rfind(b"\n", pos, end)
        max_line = self.max_line
        if self.line + (end - pos) <= max_line:
            # The common case, a head in one or few reads: no line can be over.
            if last >= 0:
                if self.first:
                    self.first = self.line <= 1 and self._only_empty_lines(data, pos, last)
                self.line = end - last - 1
            else:
                self.line += end - pos
            return at, error
        i = pos
        line = self.line
        first = self.first
        while True:
            lf = data.find(b"\n", i, end)
            stop = end if lf < 0 else lf
            if not first and line + (stop - i) > max_line:
                self.line = line + (stop - i)
                return i + (max_line - line), FieldTooLong("header line over max_field_length")
            if lf < 0:
                self.line = line + (stop - i)
                self.first = first
                return at, error
            if first:
                first = line + (stop - i) <= 1 and self._only_empty_lines(data, i, lf)
            line = 0
            i = lf + 1

    @staticmethod
    def _only_empty_lines(data: bytes, pos: int, last: int) -> bool:
        """data[pos:last] holds nothing but line ends: the empty lines llhttp skips before a
        request line (the request line is still to come)."""
        return data.count(b"\n", pos, last) + data.count(b"\r", pos, last) == last - pos
