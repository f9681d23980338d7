"""Questions modules ask of the raw configuration tables (`model.Config.sections`, which every
Application keeps as `app.tables`) when they set up, before any URL's effective section exists.
"""

from __future__ import annotations


def mentioned(tables, name: str) -> bool:
    """Whether section `name` is written anywhere in the config's tables (server, sites,
    applications, locations). For a section locked by default (override_mode_default "Deny":
    ip_security, dynamic_ip_security, windows_authentication,
    client_certificate_mapping_authentication) a web.toml can set it only under a location that
    names it, so a section nowhere in wasp.toml is at its default for every URL and its module
    can stay out of the compiled pipeline."""
    stack = [tables]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if name in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
