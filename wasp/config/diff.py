"""What a config reload changes, pool by pool: the manager recycles the pools whose workers would
now run differently (their own settings, or any application they host, the bindings of a site
they serve, a system.webServer section of the server, site or application, or [tracing]), starts added pools
and stops removed ones.
"""

from __future__ import annotations

import msgspec

from wasp.config.bindings import parse_binding
from wasp.config.model import Config, Pool


def added_pools(old: Config, new: Config) -> set[str]:
    return _names(new) - _names(old)


def removed_pools(old: Config, new: Config) -> set[str]:
    return _names(old) - _names(new)


def changed_pools(old: Config, new: Config) -> set[str]:
    """Pools in both configs whose settings or hosted applications differ."""
    old_pools, new_pools = _by_name(old), _by_name(new)
    old_apps, new_apps = _hosted(old), _hosted(new)
    tracing = old.tracing != new.tracing  # every worker traces (or not) by [tracing]
    return {name for name in old_pools.keys() & new_pools.keys()
            if tracing or old_pools[name] != new_pools[name] or old_apps.get(name, []) != new_apps.get(name, [])}


def _names(config: Config) -> set[str]:
    return {pool.name for pool in config.pools}


def _by_name(config: Config) -> dict[str, Pool]:
    return {pool.name: pool for pool in config.pools}


def _hosted(config: Config) -> dict[str, list[bytes]]:
    """Per pool, a sorted fingerprint of each application it runs with its site id and bindings."""
    hosted: dict[str, list[bytes]] = {}
    tables = config.sections or {}
    server = tables.get("server") or {}
    for site in config.sites:
        bindings = sorted(_normal(b) for b in site.bindings)
        site_tables = (tables.get("sites") or {}).get(str(site.id)) or {}
        for app in site.applications:
            # The section tables of its levels too: a worker merges them itself.
            app_tables = (tables.get("applications") or {}).get(f"{site.id}{app.path}") or {}
            fingerprint = msgspec.msgpack.encode([site.id, bindings, app, server, site_tables, app_tables],
                                                 enc_hook=_builtin)
            hosted.setdefault(app.pool, []).append(fingerprint)
    for fingerprints in hosted.values():
        fingerprints.sort()
    return hosted


def _builtin(value):
    # Duration and Size are float and int subclasses msgspec leaves to a hook.
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    raise NotImplementedError(type(value))


def _normal(text: str) -> str:
    try:
        return str(parse_binding(text))
    except ValueError:
        return text
