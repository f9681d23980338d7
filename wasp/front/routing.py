"""From a connection's local address, its Host header and a cooked path to a site and application.

HTTP.sys picks the site by binding: for a request to local IP `ip` with host `h`,
`ip:port:h` beats `*:port:h` beats `ip:port:` beats `*:port:` (an exact host beats an exact IP,
which beats neither). Host compares case-insensitively without its port. Then IIS picks the
application whose path is the longest segment prefix of the path ("/api" takes "/api" and "/api/x",
not "/apix"), case-insensitively.

Everything is precomputed when the config arrives: per local (ip, port) one dict of host -> site
plus a default, and per site its applications, longest path first. Per request that is one dict
lookup (cached by the raw Host value) and a short loop.
"""

from __future__ import annotations

import ipaddress

from wasp.config.bindings import parse_binding
from wasp.config.model import UNIX_PREFIX, Config
from wasp.front.logformat import compile_format
from wasp.wire.http import InvalidHostname, NoApplication, host_key

_HOST_CACHE_LIMIT = 4096


#: security/access sslFlags as bits (IIS's values): checked by the front for each request.
ACCESS_SSL, ACCESS_NEGOTIATE_CERT, ACCESS_REQUIRE_CERT = 8, 32, 64
_ACCESS_BITS = {"ssl": ACCESS_SSL, "ssl_negotiate_cert": ACCESS_NEGOTIATE_CERT,
                "ssl_require_cert": ACCESS_REQUIRE_CERT}


def access_bits(flags: list[str]) -> int:
    bits = 0
    for flag in flags:
        bits |= _ACCESS_BITS[flag]
    return bits


class AppEntry:
    __slots__ = ("key", "path", "prefix", "pool", "site", "queue", "access", "cache", "health",
                 "health_pools")

    def __init__(self, key: str, path: str, pool: str, site: "SiteEntry", access: int = 0):
        self.key = key          # "<site id><app path>", how the worker names the application
        self.path = path
        self.prefix = path.lower().encode("utf-8")
        self.pool = pool
        self.site = site
        self.queue = None       # the pool's PoolQueue, set by whoever owns the queues
        self.access = access    # ACCESS_* bits; 0 = no check
        self.cache = False      # its responses may be cached (caching.enabled and enable_kernel_cache)
        self.health = None      # the site's health_url, lowered, when it falls in this application
        self.health_pools: tuple[str, ...] = ()  # the pools whose state it reports


class SiteEntry:
    __slots__ = ("id", "name", "log_enabled", "log_period", "log_format", "apps", "root", "single",
                 "max_connections", "max_bandwidth", "connection_timeout")

    def __init__(self, site_id: int, name: str, log_enabled: bool, log_period: str):
        self.id = site_id
        self.max_connections = 0      # site limits (0 = unlimited / the server's)
        self.max_bandwidth = 0
        self.connection_timeout = 0.0
        self.name = name
        self.log_enabled = log_enabled
        self.log_period = log_period
        self.log_format = None          # logformat.LogFormat; None = IIS's default fields
        self.apps: list[AppEntry] = []     # longest path first, root excluded
        self.root: AppEntry | None = None
        self.single = False                 # only a root application: no path to look at

    def app_for(self, path: bytes) -> AppEntry | None:
        if self.single:
            return self.root
        lower = path.lower()
        n = len(lower)
        for app in self.apps:
            prefix = app.prefix
            k = len(prefix)
            if lower.startswith(prefix) and (n == k or lower[k] == 0x2F):
                return app
        return self.root


class LocalTable:
    """The sites reachable through one local (ip, port)."""

    __slots__ = ("hosts", "default", "_cache", "only", "http2")

    def __init__(self, hosts: dict[bytes, SiteEntry], default: SiteEntry | None, http2: bool = True):
        self.hosts = hosts
        self.default = default
        self.http2 = http2      # HTTP/2 (h2c, ALPN h2) accepted on this address
        self._cache: dict[bytes | None, SiteEntry | None] = {}
        # The one site every request here reaches, if there is one: counted at accept.
        sites = set(hosts.values())
        if default is not None:
            sites.add(default)
        self.only = sites.pop() if len(sites) == 1 and default is not None else None

    def site_for(self, host: bytes | None) -> SiteEntry | None:
        """The site for a raw Host header value (None: no Host). Raises InvalidHostname for a
        malformed value; returns None when no binding takes it."""
        cache = self._cache
        try:
            return cache[host]
        except KeyError:
            pass
        site = self.default if host is None else self.hosts.get(host_key(host), self.default)
        if len(cache) >= _HOST_CACHE_LIMIT:
            cache.clear()
        cache[host] = site
        return site

    def route(self, host: bytes | None, path: bytes) -> tuple[SiteEntry, AppEntry]:
        """The site and application of a request (a raw Host value, a cooked path). Raises
        InvalidHostname (400) when no binding takes the host, NoApplication (404) when no
        application of the site holds the path."""
        site = self.site_for(host)
        if site is None:
            raise InvalidHostname("no binding matches the host")
        app = site.app_for(path)
        if app is None:
            raise NoApplication("no application for the path")
        return site, app


def _norm_ip(ip: str) -> str:
    """An address as both bindings and sockets spell it; "*" for any address."""
    if ip in ("*", "", "0.0.0.0", "::"):
        return "*"
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped) if mapped else address.compressed


def _host_bytes(host: str) -> bytes:
    if not host:
        return b""
    return host.encode("ascii") if host.isascii() else host.encode("idna")


class Router:
    """Sites and applications of one config, ready for lookups."""

    def __init__(self, config: Config):
        # port -> ip ("*" = any) -> host (b"" = any) -> site
        self._bindings: dict[int, dict[str, dict[bytes, SiteEntry]]] = {}
        self._tables: dict[tuple[str, int], LocalTable] = {}
        self._no_h2c: set[tuple[str, int]] = set()   # (ip, port) of http bindings with disable_http2
        self.sites: dict[int, SiteEntry] = {}
        self.apps: dict[str, AppEntry] = {}
        #: Ports (and Unix socket "unix:/path"s) whose connections start with a PROXY header.
        self.proxy_keys: set = set()
        for site in config.sites:
            if not site.server_auto_start:
                continue
            entry = SiteEntry(site.id, site.name, site.log.enabled, site.log.period)
            entry.log_format = compile_format(site.log, site.id)
            entry.max_connections = int(site.limits.max_connections)
            entry.max_bandwidth = int(site.limits.max_bandwidth)
            entry.connection_timeout = float(site.limits.connection_timeout)
            self.sites[site.id] = entry
            for app in site.applications:
                path = app.path.rstrip("/") or "/"
                if not path.startswith("/"):
                    path = "/" + path
                access = app.access if app.access is not None else site.access
                ae = AppEntry(f"{site.id}{path}", path, app.pool, entry, access_bits(access.ssl_flags))
                ae.cache = app.caching.enabled and app.caching.enable_kernel_cache
                self.apps[ae.key] = ae
                if path == "/":
                    entry.root = ae
                else:
                    entry.apps.append(ae)
            entry.apps.sort(key=lambda a: len(a.prefix), reverse=True)
            entry.single = not entry.apps
            if site.health_url:
                health = site.health_url.lower().encode("utf-8")
                owner = entry.app_for(health)
                if owner is not None:
                    owner.health = health
                    owner.health_pools = tuple(dict.fromkeys(a.pool for a in site.applications))
            for text in site.bindings:
                binding = parse_binding(text)
                if site.proxy_protocol:
                    self.proxy_keys.add(binding.ip if binding.ip.startswith(UNIX_PREFIX) else binding.port)
                if binding.protocol == "http" and "disable_http2" in getattr(text, "ssl_flags", ()):
                    self._no_h2c.add((_norm_ip(binding.ip), binding.port))
                hosts = self._bindings.setdefault(binding.port, {}).setdefault(_norm_ip(binding.ip), {})
                hosts.setdefault(_host_bytes(binding.host), entry)

    def table(self, local_ip: str, port: int) -> LocalTable:
        """The table for connections accepted on local address (ip, port)."""
        ip = _norm_ip(local_ip)
        key = (ip, port)
        table = self._tables.get(key)
        if table is None:
            by_ip = self._bindings.get(port, {})
            exact = by_ip.get(ip, {}) if ip != "*" else {}
            wild = by_ip.get("*", {})
            hosts = {h: s for h, s in wild.items() if h}
            hosts.update((h, s) for h, s in exact.items() if h)
            default = exact.get(b"") or wild.get(b"")
            # h2c is refused on an address where any plain http binding says disable_http2: the
            # protocol is chosen before the Host header that picks the binding.
            h2c = key not in self._no_h2c and ("*", port) not in self._no_h2c
            table = self._tables[key] = LocalTable(hosts, default, h2c)
        return table

    def route(self, local_ip: str, port: int, host: bytes | None, path: bytes) -> AppEntry | None:
        """Site then application; InvalidHostname when no site takes the request. None when the
        site has no application for the path."""
        site = self.table(local_ip, port).site_for(host)
        if site is None:
            raise InvalidHostname("no binding matches")
        return site.app_for(path)
