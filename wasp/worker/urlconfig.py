"""The effective configuration of a URL, resolved once per (application, directory): IIS's
UriCacheModule.

An application with no `[[locations]]` below it and no web.toml to read (no physical_path, or its
pool's `enable_configuration_override = false`) has one effective configuration, `app.sections`,
and no UrlConfig at all: a request reads `app.sections`. Otherwise a request's context asks
`lookup(path)`: one slice and one dict lookup on a hit. A miss merges the application's levels
with the locations down to the URL's directory and the web.toml files on the way
(wasp/config/hierarchy.py), and caches the result under the directory (or under the URL itself
when a location names that file).

A web.toml that does not decode, or sets a section locked above it, makes that directory's entry
a fault: its requests get 500.19 with IIS's detailed error text (`IIS Web Core`, BeginRequest),
and the rest of the application keeps serving. The worker polls the web.toml files its entries
read (and the ones they looked for and did not find) every WEB_TOML_POLL seconds and drops the
whole cache when one changed, appeared or went: the next request reads the files again, without
a restart. The cache is cleared when it holds CACHE_LIMIT directories, so random URLs cannot grow it.
"""

from __future__ import annotations

import logging
import os
import re

from wasp.config import hierarchy, sections
from wasp.config.sections import EffectiveConfig
from wasp.errors import HttpError

_SLASHES = re.compile(rb"//+")
log = logging.getLogger("wasp.worker")

WEB_TOML_POLL = 1.0
CACHE_LIMIT = 4096


class ConfigurationInvalid(HttpError):
    """HTTP 500.19: the configuration data for the page is invalid."""

    status = 500
    substatus = 19
    reason = "Internal"

    def __init__(self, message: str, file: str, line: int | None, error_code: str):
        super().__init__(message)
        self.detail_rows = [("Error Code", error_code), ("Config Error", message),
                            ("Config File", file + (f", line {line}" if line else ""))]


class UrlConfig:
    def __init__(self, app, tables: dict, web_toml: bool):
        self.app = app
        self.levels = hierarchy.AppLevels(tables, app.site, app.config, app.config.default_documents)
        physical = app.config.physical_path
        self.root = os.path.realpath(physical) if physical else None
        self.web = web_toml and self.root is not None
        self.sub_dirs = app.config.allow_sub_dir_config
        self.prefix_len = app.prefix_len
        #: URLs (app-relative, lower case) that a location names exactly: a file's own entry.
        self.exact = {rel.encode("utf-8") for rel in self.levels.below}
        self.cache: dict[bytes, EffectiveConfig] = {}
        self.files: dict[str, tuple | None] = {}  # web.toml path -> its stat signature (None: absent)

    @property
    def needed(self) -> bool:
        return self.web or not self.levels.flat

    def lookup(self, path: bytes) -> EffectiveConfig:
        rel = path[self.prefix_len:]
        if b"//" in rel:
            # Empty segments name no folder: static_file maps "//deny/f" to deny/f, so a location
            # for /deny must apply to it too (else "//deny/f" slips past an ip_security deny).
            rel = _SLASHES.sub(b"/", rel)
        key = rel[:rel.rfind(b"/") + 1]
        if self.exact and rel.lower() in self.exact:
            key = rel
        found = self.cache.get(key)
        if found is None:
            found = self.resolve(key)
        return found

    def resolve(self, key: bytes) -> EffectiveConfig:
        if len(self.cache) >= CACHE_LIMIT:
            self.cache.clear()
            self.files.clear()
        value, fault = hierarchy.resolve_url(self.levels, self.root if self.web else None,
                                             key.decode("utf-8", "replace"), self.sub_dirs, self.files)
        if fault is None and self.app.pipeline is not None:
            try:
                known = len(sections.registered())
                self.app.bind(value)  # this directory's `modules`: its own pipeline
                if len(sections.registered()) != known:
                    # A module only a web.toml names registered its section: decode it now.
                    value, fault = hierarchy.resolve_url(
                        self.levels, self.root if self.web else None,
                        key.decode("utf-8", "replace"), self.sub_dirs, self.files)
                    if fault is None:
                        self.app.bind(value)
            except Exception as exc:  # a module a web.toml names fails to load
                log.error("application %s: the modules of %s cannot load: %s", self.app.key,
                          key.decode("utf-8", "replace") or "/", exc)
                fault = hierarchy.Fault(f"modules: {exc}", self._web_file(key), None,
                                        hierarchy.INVALID_DATA)
        if fault is not None:
            value = EffectiveConfig(dict(self.app.sections.__dict__))
            value.fault = ConfigurationInvalid(fault.message, fault.file, fault.line, fault.code)
        self.cache[key] = value
        return value

    def _web_file(self, key: bytes) -> str:
        """The deepest web.toml read for `key` (where a module it names was set), or wasp.toml."""
        found = [f for f, sig in self.files.items() if sig is not None]
        return max(found, key=len) if found else "wasp.toml"

    def changed(self) -> bool:
        """Whether a web.toml an entry depends on changed; if so the cache is dropped."""
        for file, signature in self.files.items():
            if hierarchy.stat_signature(file) != signature:
                self.cache.clear()
                self.files.clear()
                return True
        return False
