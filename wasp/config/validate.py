"""Rules beyond types: the syntax of names, paths, bindings and app specs (checked on each value
as it is decoded, see FIELD_CHECKS), and rules across the whole config (`check_config`): unique
names, ids and bindings, applications naming pools that exist, every site having a root
application. IIS's own validators are the model (`reference/iis-behaviour.md` §1: applicationPoolName,
siteName, applicationPath).
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Callable

from wasp.config.bindings import binding_text, parse_binding
from wasp.config.acme import ACME
from wasp.config.model import (MAX_POOLS, MAX_SITES, UNIX_PREFIX, Application, CacheProfile,
                               CacheSettings, Config, Limits, Pool, Recycling, ServerSettings, Site,
                               SiteBinding, SiteLimits)
from wasp.wire import w3c

Add = Callable[[str, str], None]

_POOL_NAME_FORBIDDEN = set('|<>&"/[]+=;:,?*@')
_SITE_NAME_FORBIDDEN = set("/?")
_SCHEDULE = re.compile(r"(\d\d):(\d\d)(?::(\d\d))?")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_APP_SPEC = re.compile(rf"{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*(\(\))?")
_ENV_NAME = re.compile(r"[^=\x00]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_EXTENSION = re.compile(r"\.[^./\\\s?#*]+")


def check_pool_name(name: str, path: str, add: Add) -> None:
    if not name:
        add(path, "a pool name cannot be empty")
        return
    bad = sorted(set(name) & _POOL_NAME_FORBIDDEN)
    if bad:
        add(path, f"pool name \"{name}\" contains {' '.join(bad)}; IIS forbids |<>&\"/[]+=;:,?*@ in pool names")
    elif name != name.strip():
        add(path, f"pool name \"{name}\" has leading or trailing spaces")


def check_site_name(name: str, path: str, add: Add) -> None:
    if not name.strip():
        add(path, "a site name cannot be empty")
    elif set(name) & _SITE_NAME_FORBIDDEN:
        add(path, f"site name \"{name}\" contains \"/\" or \"?\", which IIS forbids in site names")


def check_application_path(value: str, path: str, add: Add) -> None:
    problem = application_path_problem(value)
    if problem:
        add(path, problem)


def application_path_problem(value: str) -> str | None:
    """IIS's applicationPath validator: "/" or "/a/b"; no trailing "/", no "." or ".." segment."""
    if not value.startswith("/"):
        return f"application path \"{value}\" must start with \"/\""
    if value == "/":
        return None
    if value.endswith("/"):
        return f"application path \"{value}\" must not end with \"/\" (only the root \"/\" does)"
    segments = value[1:].split("/")
    if any(s in ("", ".", "..") for s in segments):
        return f"application path \"{value}\" has an empty, \".\" or \"..\" segment"
    if any(c in value for c in "?#\\") or any(ord(c) < 32 for c in value):
        return f"application path \"{value}\" contains a character not allowed in a URL path"
    return None


def check_app_spec(value: str, path: str, add: Add) -> None:
    if value and not _APP_SPEC.fullmatch(value):
        add(path, f"\"{value}\" is not an app spec; expected \"module.path:attribute\" "
                  f"or \"module:factory()\", e.g. \"mysite.wsgi:application\"")


def check_schedule(entries: list[str], path: str, add: Add) -> None:
    seen: dict[int, int] = {}
    for i, entry in enumerate(entries):
        seconds = schedule_seconds(entry)
        if seconds is None:
            add(f"{path}[{i}]", f"\"{entry}\" is not a time of day; expected \"HH:MM\" or \"HH:MM:SS\" (00:00 to 23:59:59)")
        elif seconds in seen:
            add(f"{path}[{i}]", f"\"{entry}\" is listed twice (also {path}[{seen[seconds]}])")
        else:
            seen[seconds] = i


def schedule_seconds(entry: str) -> int | None:
    """Seconds after midnight of a recycling schedule entry, or None when it is not HH:MM[:SS]."""
    match = _SCHEDULE.fullmatch(entry)
    if not match:
        return None
    hours, minutes, seconds = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    return hours * 3600 + minutes * 60 + seconds


def check_bindings(bindings: list[str | SiteBinding], path: str, add: Add) -> None:
    for i, entry in enumerate(bindings):
        try:
            binding = parse_binding(entry)
        except ValueError as exc:
            add(f"{path}[{i}]" + (".binding" if isinstance(entry, SiteBinding) else ""), str(exc))
            continue
        if binding.protocol == "https" and not isinstance(entry, SiteBinding):
            add(f"{path}[{i}]", f"https binding \"{entry}\" needs a certificate: write it as a table, "
                                f"{{ binding = \"{entry}\", certificate = \"cert.pem\", key = \"key.pem\" }}")
        elif isinstance(entry, SiteBinding):
            _check_tls_binding(entry, binding, f"{path}[{i}]", add)


def _check_tls_binding(entry: SiteBinding, binding, path: str, add: Add) -> None:
    if binding.protocol != "https":
        for name in ("certificate", "key", "client_ca"):
            if getattr(entry, name):
                add(f"{path}.{name}", f"only an https binding has a {name}; \"{entry.binding}\" is {binding.protocol}")
        if set(entry.ssl_flags) - {"disable_http2"}:
            add(f"{path}.ssl_flags", f"an http binding takes only ssl_flags = [\"disable_http2\"]; "
                                     f"\"{entry.binding}\" is {binding.protocol}")
        return
    if not entry.certificate:
        add(f"{path}.certificate", "an https binding needs a certificate (a PEM file, or \"acme\")")
    elif entry.certificate == ACME:
        if not binding.host:
            add(f"{path}.binding", f"a certificate = \"acme\" binding needs a host name, the name the CA "
                                   f"certifies: \"{entry.binding}\" answers any host")
        if entry.key:
            add(f"{path}.key", "a certificate = \"acme\" binding names no key: wasp makes the key it "
                               "has certified")
    if "sni" in entry.ssl_flags and not binding.host:
        add(f"{path}.ssl_flags", "\"sni\" needs a host name in the binding (SNI selects the certificate by host)")


def check_environment(env: dict[str, str], path: str, add: Add) -> None:
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            add(f"{path}.{name}", f"\"{name}\" is not an environment variable name (empty, or has \"=\" or NUL)")
        elif "\x00" in value:
            add(f"{path}.{name}", "an environment variable cannot contain a NUL character")


def check_initialization_pages(pages: list[str], path: str, add: Add) -> None:
    for i, page in enumerate(pages):
        if not page.startswith("/"):
            add(f"{path}[{i}]", f"\"{page}\" must be a URL path starting with \"/\" (relative to the application)")


def check_default_documents(names: list[str], path: str, add: Add) -> None:
    for i, name in enumerate(names):
        if not name or "/" in name or name in (".", ".."):
            add(f"{path}[{i}]", f"\"{name}\" is not a file name")


def check_cache_extension(value: str, path: str, add: Add) -> None:
    if value != "*" and not _EXTENSION.fullmatch(value):
        add(path, f"\"{value}\" is not a URL extension; expected \".html\" (a dot and a name) or \"*\"")


def check_header_names(names: list[str], path: str, add: Add) -> None:
    for i, name in enumerate(names):
        if not _HEADER_NAME.fullmatch(name):
            add(f"{path}[{i}]", f"\"{name}\" is not an HTTP header name")


def check_scavenger_period(value: float, path: str, add: Add) -> None:
    if value < 1:
        add(path, "the scavenger period must be at least 1s")


def check_bandwidth(value: int, path: str, add: Add) -> None:
    if 0 < value < 1024:
        add(path, f"{value} bytes/s is below IIS's minimum of 1024; use 0 for unlimited")


def check_trusted_proxies(entries: list[str], path: str, add: Add) -> None:
    for i, entry in enumerate(entries):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            add(f"{path}[{i}]", f"\"{entry}\" is not an IP address or CIDR network "
                                "(\"10.0.0.1\", \"10.0.0.0/8\", \"::1\", \"fd00::/8\")")


FIELD_CHECKS = {
    (CacheProfile, "extension"): check_cache_extension,
    (CacheProfile, "vary_by_headers"): check_header_names,
    (CacheSettings, "scavenger_period"): check_scavenger_period,
    (ServerSettings, "trusted_proxies"): check_trusted_proxies,
    (Limits, "max_global_bandwidth"): check_bandwidth,
    (SiteLimits, "max_bandwidth"): check_bandwidth,
    (Pool, "name"): check_pool_name,
    (Pool, "environment_variables"): check_environment,
    (Recycling, "schedule"): check_schedule,
    (Site, "name"): check_site_name,
    (Site, "bindings"): check_bindings,
    (Application, "path"): check_application_path,
    (Application, "app"): check_app_spec,
    (Application, "initialization_pages"): check_initialization_pages,
    (Application, "default_documents"): check_default_documents,
}


def check_config(config: Config, add: Add, pool_names: set[str]) -> None:
    """Rules across the config. Entries that failed to decode are None and skipped; `pool_names`
    includes the names of such pools so an application naming one is not blamed as well."""
    _unique(((f"pools[{i}].name", p.name) for i, p in enumerate(config.pools) if p), "pool name", add)
    _unique(((f"sites[{i}].name", s.name) for i, s in enumerate(config.sites) if s), "site name", add)
    for i, pool in enumerate(config.pools):
        if pool is not None and pool.python and pool.virtualenv:
            add(f"pools[{i}].virtualenv", "set either python (another interpreter) or virtualenv "
                                          "(the server's interpreter with the venv's packages), not both")
    _unique(((f"sites[{i}].id", s.id) for i, s in enumerate(config.sites) if s), "site id", add)
    if len(config.pools) > MAX_POOLS:
        add("pools", f"{len(config.pools)} pools; a server runs at most {MAX_POOLS}")
    if len(config.sites) > MAX_SITES:
        add("sites", f"{len(config.sites)} sites; a server runs at most {MAX_SITES}")
    if not config.sites:
        # An empty or truncated file decodes to all defaults: it would serve nothing at all.
        add("sites", "no site is defined: add a [[sites]] entry with bindings and a root application")
    bindings: dict[tuple, str] = {}
    for i, site in enumerate(config.sites):
        if site is None:
            continue
        if not site.bindings:
            add(f"sites[{i}].bindings", f"site \"{site.name}\" has no binding; "
                                        "add one such as \"http/*:80:\"")
        for j, text in enumerate(site.bindings):
            try:
                binding = parse_binding(text)
            except ValueError:
                continue  # reported where the value was decoded
            key = (binding.protocol, binding.ip, binding.port, binding.host)
            path = f"sites[{i}].bindings[{j}]"
            if key in bindings:
                add(path, f"binding \"{binding}\" is already used by {bindings[key]}")
            else:
                bindings[key] = f"{path} (site \"{site.name}\")"
        _check_applications(site, f"sites[{i}]", add, pool_names)
        if site.health_url:
            _check_health_url(site, f"sites[{i}].health_url", add)
        _check_custom_fields(site.log.custom_fields, f"sites[{i}].log.custom_fields", add)
    _check_tls_ports(config, add)
    _check_access(config, add)
    _check_proxy_protocol(config, add)
    _check_acme(config, add)


_LOG_FIELD_NAME = re.compile(r"[A-Za-z0-9_()\-]{1,64}")
_STANDARD_FIELDS = {name.lower() for _, name in w3c.FLAG_FIELDS}


def _check_custom_fields(fields, path: str, add: Add) -> None:
    """IIS 8.5 custom log fields: a column name of its own, a header name or a known server variable."""
    seen: set[str] = set()
    for k, entry in enumerate(fields):
        if entry is None:
            continue  # reported where it was decoded
        at = f"{path}[{k}]"
        name = entry.log_field_name
        if not _LOG_FIELD_NAME.fullmatch(name):
            add(f"{at}.log_field_name", f"\"{name}\" is not a log field name: 1 to 64 letters, digits, "
                                        "'-', '_', '(' or ')'")
        elif name.lower() in _STANDARD_FIELDS:
            add(f"{at}.log_field_name", f"\"{name}\" is a standard field: choose it in log_ext_file_flags")
        elif name.lower() in seen:
            add(f"{at}.log_field_name", f"custom field \"{name}\" is already defined")
        seen.add(name.lower())
        source = entry.source_name
        if entry.source_type == "server_variable":
            if source.upper() not in w3c.SERVER_VARIABLES:
                add(f"{at}.source_name", f"\"{source}\" is not a server variable wasp logs; known: "
                                         + ", ".join(sorted(w3c.SERVER_VARIABLES)))
        elif not _HEADER_NAME.fullmatch(source):
            add(f"{at}.source_name", f"\"{source}\" is not an HTTP header name")


def _check_acme(config: Config, add: Add) -> None:
    """The [acme] table, when some binding has certificate = "acme"."""
    acme_at = ""
    http = False
    for i, site in enumerate(config.sites):
        for j, entry in enumerate(site.bindings if site is not None else ()):
            if isinstance(entry, SiteBinding) and entry.certificate == ACME:
                acme_at = acme_at or f"sites[{i}].bindings[{j}]"
            try:
                binding = parse_binding(entry)
            except ValueError:
                continue
            http = http or (binding.protocol == "http" and binding.port != 0)
    if not acme_at:
        return
    settings = config.acme
    if not settings.agree_tos:
        add("acme.agree_tos", f"{acme_at} gets its certificate from the ACME CA {settings.directory}: "
                              "read its terms of service and set agree_tos = true")
    if not settings.directory.startswith("https://"):
        add("acme.directory", f"the ACME directory must be an https:// URL, not \"{settings.directory}\"")
    for k, contact in enumerate(settings.contact):
        if not contact.startswith("mailto:") or len(contact) <= len("mailto:") or any(c in contact for c in ",; \t\r\n"):
            add(f"acme.contact[{k}]", f"\"{contact}\" is not a contact URL: write \"mailto:admin@example.test\"")
    if settings.challenge == "http-01" and not http:
        add("acme.challenge", "http-01 needs a plain http binding (the CA fetches the challenge over http, "
                              "on port 80); add one such as \"http/*:80:\", or use challenge = \"tls-alpn-01\"")


def _check_access(config: Config, add: Add) -> None:
    """Client certificate flags on a site none of whose https ports asks for a certificate would
    refuse (ssl_require_cert) every request: say so instead."""
    ca_ports = set()
    site_ports: list[set[int]] = []
    for site in config.sites:
        ports = set()
        for entry in (site.bindings if site is not None else ()):
            try:
                binding = parse_binding(entry)
            except ValueError:
                continue
            if binding.protocol == "https":
                ports.add(binding.port)
                if isinstance(entry, SiteBinding) and entry.client_ca:
                    ca_ports.add(binding.port)
        site_ports.append(ports)
    for i, site in enumerate(config.sites):
        if site is None or site_ports[i] & ca_ports:
            continue
        sections = [(f"sites[{i}].access", site.access)]
        sections += [(f"sites[{i}].applications[{j}].access", app.access)
                     for j, app in enumerate(site.applications) if app is not None and app.access is not None]
        for path, access in sections:
            if {"ssl_require_cert", "ssl_negotiate_cert"} & set(access.ssl_flags):
                add(f"{path}.ssl_flags", "client certificates are never asked for: no https binding on this "
                                         "site's ports has a client_ca")


def _check_tls_ports(config: Config, add: Add) -> None:
    """A port is plain or TLS (its one socket serves every address); its certificates are chosen
    by SNI host alone: one certificate per (port, SNI host), one IP:port certificate per port."""
    protocols: dict[int, tuple[str, str]] = {}
    chosen: dict[tuple[int, str], tuple[tuple, str]] = {}
    client_cas: dict[int, tuple[str, str]] = {}
    for i, site in enumerate(config.sites):
        if site is None:
            continue
        for j, entry in enumerate(site.bindings):
            try:
                binding = parse_binding(entry)
            except ValueError:
                continue
            path = f"sites[{i}].bindings[{j}]"
            first = protocols.setdefault(binding.port, (binding.protocol, path))
            if first[0] != binding.protocol:
                add(path, f"port {binding.port} is {first[0]} in {first[1]}; one port cannot serve both http and https")
                continue
            if binding.protocol != "https" or not isinstance(entry, SiteBinding):
                continue
            if entry.client_ca:
                ca = client_cas.setdefault(binding.port, (entry.client_ca, path))
                if ca[0] != entry.client_ca:
                    # The handshake asks for a client certificate before the host is known.
                    add(f"{path}.client_ca", f"port {binding.port} already verifies client certificates "
                                             f"against {ca[0]} ({ca[1]}); a port has one client_ca")
            sni = binding.host if "sni" in entry.ssl_flags else ""
            # Each host of an acme binding has its own certificate files.
            files = (entry.certificate, binding.host if entry.certificate == ACME else entry.key)
            seen = chosen.setdefault((binding.port, sni), (files, path))
            if seen[0] != files:
                if sni:
                    add(path, f"SNI host \"{sni}\" on port {binding.port} already has another certificate "
                              f"in {seen[1]}")
                else:
                    add(path, f"port {binding.port} already has an IP:port certificate (a binding without "
                              f"ssl_flags = [\"sni\"]) in {seen[1]}; give this binding ssl_flags = [\"sni\"] "
                              f"or the same certificate and key")


def _check_proxy_protocol(config: Config, add: Add) -> None:
    """The PROXY header comes before the request, so before Host names a site: every site on one
    port (or Unix socket) must agree on proxy_protocol (a "*:port" listener takes every address)."""
    first: dict[tuple, tuple[bool, str]] = {}
    for i, site in enumerate(config.sites):
        if site is None:
            continue
        for text in site.bindings:
            try:
                binding = parse_binding(text)
            except ValueError:
                continue
            if site.proxy_protocol and binding.protocol == "https":
                add(f"sites[{i}].proxy_protocol", f"site \"{site.name}\" has an https binding: the PROXY "
                                                  "protocol is supported on http bindings only (terminate "
                                                  "TLS at the proxy, or send the PROXY header to a plain port)")
                break
            key = binding.ip if binding.ip.startswith(UNIX_PREFIX) else binding.port
            seen = first.setdefault(key, (site.proxy_protocol, site.name))
            if seen[0] != site.proxy_protocol:
                add(f"sites[{i}].proxy_protocol",
                    f"site \"{site.name}\" has proxy_protocol = {str(site.proxy_protocol).lower()} but "
                    f"shares {'its socket' if isinstance(key, str) else f'port {key}'} with site \"{seen[1]}\", which has "
                    f"{str(seen[0]).lower()}: the PROXY header comes before the Host that picks the site")
                break


def _check_applications(site: Site, path: str, add: Add, pool_names: set[str]) -> None:
    seen: dict[str, str] = {}
    for j, app in enumerate(site.applications):
        if app is None:
            continue
        app_path = f"{path}.applications[{j}]"
        if not app.app and not app.physical_path:
            add(app_path, f"application \"{app.path}\" has neither app (a Python app spec) nor "
                          "physical_path (a folder of static files): it would serve nothing")
        if app.pool not in pool_names:
            add(f"{app_path}.pool", f"no pool is named \"{app.pool}\"" + _known(pool_names))
        # IIS matches URLs case-insensitively, so "/API" and "/api" would be the same application.
        key = app.path.lower()
        if key in seen:
            add(f"{app_path}.path", f"application path \"{app.path}\" is already used by {seen[key]}")
        else:
            seen[key] = f"{app_path}"
    if "/" not in seen and None not in site.applications:
        add(f"{path}.applications", f"site \"{site.name}\" has no root application (path = \"/\")")


def check_paths(config: Config, add: Add) -> None:
    """Rules on the file system, after relative paths were resolved against the config file."""
    for i, site in enumerate(config.sites):
        for j, app in enumerate(site.applications):
            if app.physical_path and not os.path.isdir(app.physical_path):
                what = "is not a folder" if os.path.exists(app.physical_path) else "does not exist"
                add(f"sites[{i}].applications[{j}].physical_path",
                    f"physical_path {app.physical_path} {what}")


def _known(pool_names: set[str]) -> str:
    if not pool_names:
        return "; no pools are defined"
    return "; pools: " + ", ".join(f"\"{n}\"" for n in sorted(pool_names))


def _unique(items, what: str, add: Add) -> None:
    first: dict = {}
    for path, value in items:
        if value in first:
            shown = f"\"{value}\"" if isinstance(value, str) else value
            add(path, f"duplicate {what} {shown}; already used by {first[value]}")
        else:
            first[value] = path


def _check_health_url(site, at: str, add) -> None:
    """A plain absolute path: what the front compares the cooked request path with, so it must be
    its own cooked form. (Every site has a root application, so the path falls in one.)"""
    url = site.health_url
    segments = url.split("/")[1:]
    if not url.startswith("/") or any(c in url for c in "?#%\\") or \
            any(ord(c) <= 0x20 or c == "\x7f" for c in url) or \
            any(s in (".", "..") for s in segments) or "//" in url:
        add(at, f"{url!r} is not a plain path (\"/healthz\"): no query, escape, dot segment, "
                "backslash, space or empty segment")
