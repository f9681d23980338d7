"""`wasp management token`: a new one-time login link for the management site (docs/management.md)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("management", help="the management site: print a new one-time login link")
    verbs = p.add_subparsers(dest="management_command", metavar="WHAT")
    verbs.required = True
    t = verbs.add_parser("token", help="make a new login token (the old one stops working) and print the links")
    t.add_argument("--json", action="store_true", help="print the token and links as JSON")
    from wasp.cli.main import _add_locate
    _add_locate(t)


def cmd_management(args: argparse.Namespace) -> int:
    import json

    from wasp.cli.client import AdminClient
    from wasp.cli.main import locate_run_dir
    answer = AdminClient(locate_run_dir(args)).request("POST", "/management/token")
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        for url in answer.get("urls") or []:
            print(url)
        if not answer.get("urls"):
            print(answer.get("token", ""))
    return 0


COMMANDS = {"management": cmd_management}
