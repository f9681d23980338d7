"""Authentication's building blocks: credential files and stores, Basic and Digest parsing, the
token cache and the failed-logon limiter. The modules using them are in wasp/worker/modules/."""

ROLES = "auth.roles"  # ctx.items key: the authenticated user's roles (a frozenset)


def set_roles(ctx, roles) -> None:
    items = ctx.items
    if items is None:
        items = ctx.items = {}
    items[ROLES] = roles


def roles_of(ctx) -> frozenset:
    items = ctx.items
    return items.get(ROLES, frozenset()) if items is not None else frozenset()


def host_of(ctx) -> str:
    """The request's host name (the realm IIS uses when none is configured)."""
    for name, value in ctx.head.headers:
        if name.lower() == b"host":
            # It goes into a WWW-Authenticate header: keep only what a host name may hold.
            host = "".join(c for c in value.decode("latin-1") if c.isalnum() or c in ".-_:[]")
            return host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return ctx.head.server[0]
