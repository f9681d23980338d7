"""`wasp upgrade`: start a new manager from the installed wasp on the same sockets, then drain the
old generation (docs/upgrade.md). Exit 0 with both PIDs; 1 with the reason when the new manager
failed (the running one keeps serving), also when an upgrade is already under way."""

from __future__ import annotations

import sys

from wasp.cli import output
from wasp.cli.client import AdminClient, AdminError


def register(sub, add_locate) -> None:
    p = sub.add_parser("upgrade", help="start a new manager from the installed wasp on the same "
                                       "listening sockets and drain this one (no request dropped)")
    add_locate(p)
    p.set_defaults(handler=cmd_upgrade)


def cmd_upgrade(args) -> int:
    from wasp.cli.main import locate_run_dir  # main imports this module

    client = AdminClient(locate_run_dir(args))
    try:
        answer = client.request("POST", "/upgrade", timeout=3600)
    except AdminError as exc:
        print(output.error(exc.message), file=sys.stderr)
        payload = exc.payload if isinstance(exc.payload, dict) else {}
        for line in payload.get("log") or []:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"upgraded: manager {answer['old_pid']} -> {answer['new_pid']} "
          f"(the old generation drains and exits)")
    return 0
