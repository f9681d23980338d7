"""IIS system.webServer/httpErrors as a section (the Struct is model.HttpErrors, which the site
and application tables have always had; the front and the error pages read it there)."""

from wasp.config.model import HttpErrors
from wasp.config.sections import register

register("http_errors", HttpErrors, override_mode_default="Allow")
