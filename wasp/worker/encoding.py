"""Content codings for static and dynamic compression: negotiation, type lists, streaming
encoders and IIS's CPU thresholds. No I/O here except the /proc/stat sampler at the bottom.

- `negotiate` reads Accept-Encoding (RFC 9110 §12.5.3): q-values, `*`, `identity;q=0`, and
  picks the scheme the client rates highest, ties going to the server's order (the
  `http_compression.schemes` list).
- `TypeList` answers whether a Content-Type is in `static_types` / `dynamic_types`, the most
  specific entry winning (`text/html` over `text/*` over `*/*`).
- `new_encoder` makes a streaming compressor with `compress`, `flush` (everything so far leaves:
  zlib's Z_SYNC_FLUSH, brotli's flush, zstd's block flush) and `finish`.
- `CpuGate` is the on/off state of one kind of compression under IIS's
  `*_compression_disable_cpu_usage` / `*_compression_enable_cpu_usage`: a two-state table.
"""

from __future__ import annotations

import enum
import threading
import zlib

#: The codings wasp can produce, by Content-Encoding token.
CODINGS = ("gzip", "br", "zstd")
#: What an ETag gets appended for a compressed representation ("abc" -> "abc-gzip").
ETAG_SUFFIX = {"gzip": "-gzip", "br": "-br", "zstd": "-zstd"}
#: Compressed-file suffixes in the cache directory.
FILE_SUFFIX = {"gzip": ".gz", "br": ".br", "zstd": ".zst"}


def parse_accept_encoding(values) -> dict[str, float]:
    """Accept-Encoding values (one or several header lines) -> {coding: q}. A malformed q
    makes that element unacceptable (q=0) rather than guessing."""
    found: dict[str, float] = {}
    for value in values:
        text = value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else value
        for element in text.split(","):
            coding, _, params = element.partition(";")
            coding = coding.strip().lower()
            if not coding:
                continue
            q = 1.0
            for param in params.split(";"):
                name, eq, arg = param.partition("=")
                if name.strip().lower() == "q" and eq:
                    try:
                        q = float(arg.strip())
                    except ValueError:
                        q = 0.0
                    if not 0.0 <= q <= 1.0 or q != q:
                        q = 0.0
            # A coding named twice: the first one counts (as nginx and Apache do).
            found.setdefault(coding, q)
    return found


#: (Accept-Encoding value, offered) -> coding: clients send a handful of distinct values, so a
#: request usually costs one dict lookup. Bounded: cleared when full (a flood of odd values).
_NEGOTIATED: dict = {}
_NEGOTIATED_MAX = 1024


def negotiate(values, offered) -> str | None:
    """The coding to send among `offered` (server order) for these Accept-Encoding values, or
    None for identity. No Accept-Encoding at all means identity here: RFC 9110 allows any coding
    then, but IIS (and every server) compresses only for clients that asked."""
    if not values:
        return None
    if len(values) == 1:
        key = (bytes(values[0]), offered)
        found = _NEGOTIATED.get(key, False)
        if found is False:
            found = _negotiate(values, offered)
            if len(_NEGOTIATED) >= _NEGOTIATED_MAX:
                _NEGOTIATED.clear()
            _NEGOTIATED[key] = found
        return found
    return _negotiate(values, offered)


def _negotiate(values, offered) -> str | None:
    accepted = parse_accept_encoding(values)
    star = accepted.get("*")
    best, best_q = None, 0.0
    for name in offered:
        q = accepted.get(name)
        if q is None and name == "gzip":
            q = accepted.get("x-gzip")  # RFC 9110 §8.4.1.3: x-gzip is gzip
        if q is None:
            q = star
        if q is not None and q > best_q:
            best, best_q = name, q
    return best


class TypeList:
    """A `static_types` / `dynamic_types` collection, compiled."""

    __slots__ = ("exact", "major", "any")

    def __init__(self, entries):
        self.exact: dict[str, bool] = {}
        self.major: dict[str, bool] = {}
        self.any = False
        for entry in entries:
            pattern = entry.mime_type.lower()
            major, _, minor = pattern.partition("/")
            if major == "*":
                self.any = entry.enabled
            elif minor == "*":
                self.major.setdefault(major, entry.enabled)
            else:
                self.exact.setdefault(pattern, entry.enabled)

    def allows(self, content_type: str | bytes | None) -> bool:
        if not content_type:
            return False
        if isinstance(content_type, (bytes, bytearray)):
            content_type = content_type.decode("latin-1")
        base = content_type.partition(";")[0].strip().lower()
        found = self.exact.get(base)
        if found is not None:
            return found
        found = self.major.get(base.partition("/")[0])
        if found is not None:
            return found
        return self.any


def library_level(name: str, level: int) -> int:
    """IIS's scheme level (0..10, br 0..11) as the library's level."""
    if name == "gzip":
        return max(1, min(9, level))
    if name == "br":
        return max(0, min(11, level))
    return max(1, min(22, level))


class _Gzip:
    __slots__ = ("obj",)

    def __init__(self, level: int):
        self.obj = zlib.compressobj(level, zlib.DEFLATED, 31, 8)  # wbits 31: gzip container

    def compress(self, data) -> bytes:
        return self.obj.compress(data)

    def flush(self) -> bytes:
        return self.obj.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self.obj.flush(zlib.Z_FINISH)


class _Brotli:
    __slots__ = ("obj",)

    def __init__(self, level: int):
        import brotli

        # A 4 MiB window for the static copies' high levels; 256 KiB for the fast levels of
        # dynamic responses, of which many may stream at once.
        self.obj = brotli.Compressor(quality=level, lgwin=22 if level >= 5 else 18)

    def compress(self, data) -> bytes:
        return self.obj.process(bytes(data) if not isinstance(data, bytes) else data)

    def flush(self) -> bytes:
        return self.obj.flush()

    def finish(self) -> bytes:
        return self.obj.finish()


class _Zstd:
    __slots__ = ("obj", "_block")

    def __init__(self, level: int):
        import zstandard

        self.obj = zstandard.ZstdCompressor(level=level).compressobj()
        self._block = zstandard.COMPRESSOBJ_FLUSH_BLOCK

    def compress(self, data) -> bytes:
        return self.obj.compress(data)

    def flush(self) -> bytes:
        return self.obj.flush(self._block)

    def finish(self) -> bytes:
        return self.obj.flush()


_ENCODERS = {"gzip": _Gzip, "br": _Brotli, "zstd": _Zstd}


def new_encoder(name: str, level: int):
    """A streaming compressor for `name` at IIS level `level`."""
    return _ENCODERS[name](library_level(name, level))


def compress_all(name: str, level: int, data) -> bytes:
    encoder = new_encoder(name, level)
    return encoder.compress(data) + encoder.finish()


def variant_etag(etag: str, coding: str) -> str:
    """The ETag of the `coding` representation of a resource whose identity ETag is `etag`:
    the suffix goes inside the quotes (`"abc"` -> `"abc-gzip"`, `W/"abc"` -> `W/"abc-gzip"`),
    so a validator of one representation never matches the other."""
    etag = etag.strip()
    if etag.endswith('"') and len(etag) >= 2:
        return etag[:-1] + ETAG_SUFFIX[coding] + '"'
    return etag


# ---- CPU thresholds ----

class Gate(enum.Enum):
    ON = "on"      # compressing
    OFF = "off"    # CPU went above the disable threshold: not until it is below the enable one


#: (state, CPU above disable, CPU below enable) -> next state.
_GATE_MOVES = {
    (Gate.ON, True, False): Gate.OFF, (Gate.ON, True, True): Gate.OFF,
    (Gate.ON, False, True): Gate.ON, (Gate.ON, False, False): Gate.ON,
    (Gate.OFF, False, True): Gate.ON, (Gate.OFF, True, True): Gate.ON,
    (Gate.OFF, False, False): Gate.OFF, (Gate.OFF, True, False): Gate.OFF,
}


class CpuGate:
    """IIS's *_compression_disable_cpu_usage / *_compression_enable_cpu_usage for one kind of
    compression. `update(percent)` takes each CPU average; `on` says whether to compress.
    A disable threshold of 100 never disables (CPU use cannot be above 100 %)."""

    __slots__ = ("disable", "enable", "state")

    def __init__(self, disable: int, enable: int):
        self.disable = disable
        self.enable = enable
        self.state = Gate.ON

    @property
    def on(self) -> bool:
        return self.state is Gate.ON

    def update(self, percent: float) -> Gate:
        above = percent > self.disable
        below = percent < self.enable
        self.state = _GATE_MOVES[(self.state, above, below)]
        return self.state


def read_proc_stat(path: str = "/proc/stat") -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, or None where /proc/stat is missing."""
    try:
        with open(path, "rb") as f:
            line = f.readline()
    except OSError:
        return None
    parts = line.split()
    if not parts or parts[0] != b"cpu":
        return None
    try:
        values = [int(v) for v in parts[1:]]
    except ValueError:
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already in user/nice
    return total - idle, total


class CpuMonitor:
    """The machine's CPU use averaged over `window` seconds (IIS averages every 30 s), sampled
    every `interval` seconds on a daemon thread, never on a request. Gates registered with
    `watch` are updated after each sample. `sampler` returns (busy, total) counters; tests pass
    their own and call `sample_once`."""

    def __init__(self, sampler=read_proc_stat, interval: float = 5.0, window: float = 30.0):
        self.sampler = sampler
        self.interval = interval
        self.keep = max(1, int(round(window / interval)))
        self.samples: list[tuple[int, int]] = []
        self.gates: list[CpuGate] = []
        self.percent = 0.0
        self._thread = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def watch(self, gate: CpuGate) -> None:
        with self._lock:
            if gate not in self.gates:
                self.gates.append(gate)
        if gate.disable < 100:
            self.start()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="wasp-cpu-sampler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_once()

    def sample_once(self) -> float | None:
        sample = self.sampler()
        if sample is None:
            return None
        self.samples.append(sample)
        if len(self.samples) > self.keep + 1:
            del self.samples[0]
        if len(self.samples) < 2:
            return None
        busy0, total0 = self.samples[0]
        busy1, total1 = self.samples[-1]
        if total1 <= total0:
            return None
        self.percent = 100.0 * (busy1 - busy0) / (total1 - total0)
        with self._lock:
            gates = list(self.gates)
        for gate in gates:
            gate.update(self.percent)
        return self.percent


_monitor: CpuMonitor | None = None
_monitor_lock = threading.Lock()


def cpu_monitor() -> CpuMonitor:
    """The worker's one CPU monitor (both compression modules of every application share it)."""
    global _monitor
    with _monitor_lock:
        if _monitor is None:
            _monitor = CpuMonitor()
        return _monitor


__all__ = ["CODINGS", "parse_accept_encoding", "negotiate", "TypeList", "new_encoder",
           "compress_all", "variant_etag", "CpuGate", "Gate", "CpuMonitor", "cpu_monitor",
           "read_proc_stat", "library_level", "FILE_SUFFIX"]


def not_for_bits(settings) -> int:
    """CacheHint.not_for of a compressed response under these http_compression settings."""
    from wasp.wire.frames import NOT_FOR_HTTP_10, NOT_FOR_PROXIES

    return (NOT_FOR_HTTP_10 if settings.no_compression_for_http_10 else 0) | \
        (NOT_FOR_PROXIES if settings.no_compression_for_proxies else 0)


def request_coding(head, settings, offered) -> str | None:
    """The coding a request gets among `offered` under `http_compression` `settings`, or None:
    no Accept-Encoding naming one, an HTTP/1.0 request (no_compression_for_http_10), a request
    through a proxy, i.e. with a Via header (no_compression_for_proxies), a Range request
    (no_compression_for_range). "" when only such a rule refused a client that accepts a coding:
    its identity response must not be front-cached (the front's key has no version or Via, so it
    would answer clients that may have the compressed one)."""
    if not offered:
        return None
    values = []
    via = ranged = False
    for name, value in head.headers:
        size = len(name)
        if size == 15 and name.lower() == b"accept-encoding":
            values.append(value)
        elif size == 3 and name.lower() == b"via":
            via = True
        elif size == 5 and name.lower() == b"range":
            ranged = True
    if not values:
        return None
    coding = negotiate(values, offered)
    if coding is not None and (
            (settings.no_compression_for_http_10 and head.version == "1.0")
            or (via and settings.no_compression_for_proxies)
            or (ranged and settings.no_compression_for_range)):
        return ""
    return coding
