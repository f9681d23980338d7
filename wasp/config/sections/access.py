"""IIS system.webServer/security/access as a section (model.Access; the front checks it).
IIS locks it (overrideModeDefault Deny): it can be set in wasp.toml at every level, but not in a
web.toml unless a location unlocks it."""

from wasp.config.model import Access
from wasp.config.sections import register

register("access", Access, override_mode_default="Deny")
