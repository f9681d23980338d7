"""IIS system.webServer/security/authorization (URL Authorization, urlauthz.dll): who may request
a URL, by user, role and verb.

`rules` is IIS's collection of `<add accessType users roles verbs>` (key users+roles+verbs),
inherited down the levels with add/remove/clear. The default is IIS's install: one rule allowing
everyone. Evaluation (iis-behaviour.md §2.7) is IIS's, not ASP.NET's: every Deny rule first, then
the Allow rules, each group from the outermost level down; the first rule that matches decides,
and a request no rule allows is refused. Since a merged collection lists the outer levels' rules
before the inner ones, that is: any matching Deny refuses, else any matching Allow admits, else
refused, so a parent's Deny cannot be undone by a child's Allow.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Struct, field

from wasp.config.model import doc
from wasp.config.sections import Section, collection, section


class Rule(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<add>` rule."""

    access_type: Annotated[Literal["Allow", "Deny"], doc("Whether a matching request is let through or refused.")]
    users: Annotated[str, doc(
        "Comma-separated user names; \"*\" = everyone (anonymous included), \"?\" = the anonymous user."
    )] = ""
    roles: Annotated[str, doc(
        "Comma-separated roles (htgroup groups, system groups through PAM, LDAP groups)."
    )] = ""
    verbs: Annotated[str, doc("Comma-separated methods the rule applies to; \"\" = every method.")] = ""


@section("authorization", override_mode_default="Allow")
class Authorization(Section):
    """IIS system.webServer/security/authorization (URL Authorization). Evaluated in IIS's order:
    any matching Deny rule (from any level) refuses, else any matching Allow rule admits, else
    the request is refused; so a parent's Deny cannot be undone below. Refused: 401.2 with the
    authentication challenges for the anonymous user, 403 for a known one. Names, roles and
    verbs compare without case; tunnelled verbs (X-HTTP-Method-Override, `_method=`) must be
    allowed too (docs/worker.md, Modules)."""

    bypass_login_pages: Annotated[bool, doc(
        "IIS's bypassLoginPages (for ASP.NET forms login pages); kept for parity, no effect here."
    )] = True
    rules: Annotated[list[Rule], collection(key=("users", "roles", "verbs")), doc(
        "The rules: `rules = [ { access_type = \"Deny\", users = \"?\" } ]` (added after the inherited "
        "ones) or `{ clear, remove = [[users, roles, verbs], ...], add = [...] }`."
    )] = field(default_factory=lambda: [Rule(access_type="Allow", users="*")])
