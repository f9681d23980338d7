"""The management site as config: `[management]` turned into a built-in pool and site.

IIS runs IIS Manager's remote end (the Web Management Service, WMSvc) as a service of its own on
port 8172. wasp serves it as a site of its own in a pool of its own, so it is supervised, logged
and recycled like any other, and it changes the server only through the admin API
(docs/management.md). `install` adds both to a decoded config before the rules across the config
run (so its bindings are checked against the sites'); `finish` gives the pool the settings its
app reads, once paths are absolute.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
from typing import Callable

import wasp
from wasp.config.bindings import parse_binding
from wasp.config.model import (DEFAULT_LOG_FLAGS, UNIX_PREFIX, Application, Config, Identity, Pool,
                               ProcessModel, Site, SiteBinding, SiteLog)

Add = Callable[[str, str], None]

POOL_NAME = "WMSvc"
SITE_NAME = "Management Service"
APP_SPEC = "wasp.management.app:application"
#: The environment variable that carries the app's settings (JSON) to the pool's workers.
ENV = "WASP_MANAGEMENT"
TOKEN_FILE = "management.token"
KEY_FILE = "management.key"


def is_loopback(ip: str) -> bool:
    if ip.startswith(UNIX_PREFIX):
        return True
    if ip in ("*", ""):
        return False
    try:
        return ipaddress.ip_address(ip.strip("[]")).is_loopback
    except ValueError:
        return False


def install(config: Config, add: Add) -> None:
    """Add the management pool and site to `config` when `[management] enabled`; problems of
    the `[management]` table are reported under its dotted path."""
    settings = config.management
    if settings is None or not settings.enabled:
        return
    ok = True
    for j, entry in enumerate(settings.bindings):
        at = f"management.bindings[{j}]"
        try:
            binding = parse_binding(entry)
        except ValueError as exc:
            add(at, str(exc))
            ok = False
            continue
        if binding.protocol != "https" and not is_loopback(binding.ip):
            add(at, f"binding \"{binding}\" is not a loopback address: the management site's login "
                    "and session cookie would cross the network in clear; bind 127.0.0.1 or use an "
                    "https binding with a certificate")
            ok = False
        elif binding.protocol == "https" and not (isinstance(entry, SiteBinding) and entry.certificate):
            add(at, "an https binding of the management site needs a certificate "
                    "({ binding = \"https/...\", certificate = \"mgmt.pem\", key = \"mgmt.key\" })")
            ok = False
    if not settings.bindings:
        add("management.bindings", "the management site needs a binding such as \"http/127.0.0.1:8172:\"")
        ok = False
    if any(p is not None and p.name == POOL_NAME for p in config.pools):
        add("management", f"pool name \"{POOL_NAME}\" is the management site's; rename that [[pools]] entry")
        ok = False
    for i, site in enumerate(config.sites):
        if site is None:
            continue
        if site.id == settings.site_id:
            add("management.site_id", f"site id {settings.site_id} is used by sites[{i}] "
                                      f"(\"{site.name}\"); choose another management.site_id")
            ok = False
        if site.name == SITE_NAME:
            add("management", f"site name \"{SITE_NAME}\" is the management site's; rename sites[{i}]")
            ok = False
    if not ok:
        return
    config.pools.append(Pool(
        name=POOL_NAME, threads=8, identity=Identity(user=_own_user()),
        # A login must not wait for a worker to start, nor a session for an idle one.
        start_mode="always_running", process_model=ProcessModel(idle_timeout=0)))
    wasp_parent = os.path.dirname(os.path.dirname(os.path.abspath(wasp.__file__)))
    # The login link's query is the token: the site's access log leaves the query out.
    log = SiteLog(log_ext_file_flags=[f for f in DEFAULT_LOG_FLAGS if f != "UriQuery"])
    config.sites.append(Site(
        name=SITE_NAME, id=settings.site_id, bindings=list(settings.bindings), log=log,
        applications=[Application(path="/", pool=POOL_NAME, app=APP_SPEC, interface="wsgi",
                                  python_path=[wasp_parent])]))


def finish(config: Config) -> None:
    """Hand the pool's workers what the app needs (paths are absolute by now)."""
    settings = config.management
    pool = next((p for p in config.pools if p.name == POOL_NAME), None)
    if pool is None or not settings.enabled:
        return
    tls = any(parse_binding(b).protocol == "https" for b in settings.bindings)
    hosts = sorted({parse_binding(b).host for b in settings.bindings} - {""})
    basic = (config.sections.get("server") or {}).get("basic_authentication") or {}
    pool.environment_variables[ENV] = json.dumps({
        "run_dir": config.server.run_dir, "log_dir": config.server.log_dir,
        "session_timeout": float(settings.session_timeout), "group": settings.group,
        "tls": tls, "hosts": hosts, "basic_authentication": basic, "site_id": settings.site_id,
    }, sort_keys=True, default=str)


def _own_user() -> str:
    """The management pool runs as the manager's own account: the admin socket (mode 0600) is
    open to that account only. A manager that is not root runs every worker as itself anyway."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return ""
