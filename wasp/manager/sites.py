"""`wasp start|stop site NAME`: a site's runtime state over its `server_auto_start`. Pure.

As in IIS, stopping a site stops listening on its bindings (a port no started site binds closes:
connection refused; on a port another site shares, its host names no longer route: 400 Invalid
Hostname, or the request goes to a wildcard site of that port), and leaves the pools and their
workers alone. The state is not persisted: at the next start `server_auto_start` decides again.
It survives a config reload for a site of the same name.

The manager keeps `overrides` (site name -> started?) and hands `effective(config, overrides)`
to the listener plan and to the front, which already honour `server_auto_start`.
"""

from __future__ import annotations

import msgspec

from wasp.config.model import Config

STOPPED_ALREADY = "Command execution failed. The object has already been stopped."
STARTED_ALREADY = "Command execution failed. The object has already been started."


class SiteCommandError(Exception):
    """A site command that cannot be done; `status` is the admin API's, the message appcmd's."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def effective(config: Config, overrides: dict[str, bool]) -> Config:
    """`config` with each overridden site's server_auto_start set to its runtime state."""
    if not any(s.name in overrides and overrides[s.name] != s.server_auto_start for s in config.sites):
        return config
    sites = [msgspec.structs.replace(s, server_auto_start=overrides[s.name]) if s.name in overrides else s
             for s in config.sites]
    return msgspec.structs.replace(config, sites=sites)


def is_started(config: Config, overrides: dict[str, bool], name: str) -> bool:
    site = next(s for s in config.sites if s.name == name)
    return overrides.get(name, site.server_auto_start)


def command(config: Config, overrides: dict[str, bool], verb: str, name: str) -> dict[str, bool]:
    """The overrides after `verb` ("start" or "stop") of site `name`; SiteCommandError if there
    is no such site or it is in that state already."""
    if not any(s.name == name for s in config.sites):
        raise SiteCommandError(404, f'Cannot find SITE object with identifier "{name}".')
    started = is_started(config, overrides, name)
    if verb == "stop" and not started:
        raise SiteCommandError(409, STOPPED_ALREADY)
    if verb == "start" and started:
        raise SiteCommandError(409, STARTED_ALREADY)
    return dict(overrides, **{name: verb == "start"})


def forget_missing(config: Config, overrides: dict[str, bool]) -> dict[str, bool]:
    """After a reload: the overrides of sites that still exist."""
    names = {s.name for s in config.sites}
    return {n: v for n, v in overrides.items() if n in names}
