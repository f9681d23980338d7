"""IIS system.webServer/caching as a section (model.Caching; `profiles` is IIS's collection keyed
by extension). The front reads the application's effective caching from the model."""

from wasp.config.model import Caching
from wasp.config.sections import register

register("caching", Caching, override_mode_default="Allow")
