"""`wasp deploy pool NAME`: recycle a pool onto new code and say whether it took (docs/deploys.md).

The recycle is the overlapped one of `wasp recycle pool`: the new worker imports the new code and
answers the applications' initialization pages with 2xx before it takes traffic; until then (and
for good, when it fails) the old worker keeps serving. On success it prints the new worker PIDs;
on failure the load error and its traceback (from event 9009), exit code 1.
"""

from __future__ import annotations

import sys

from wasp.cli import output
from wasp.cli.client import AdminClient, AdminError


def register(sub, add_locate) -> None:
    p = sub.add_parser("deploy", help="recycle a pool onto new code; exit 1 with the traceback when "
                                      "the new workers fail (the old ones keep serving)")
    p.add_argument("object", metavar="pool", help='"pool" (or "apppool")')
    p.add_argument("name", metavar="NAME")
    add_locate(p)
    p.set_defaults(handler=cmd_deploy)


def cmd_deploy(args) -> int:
    if args.object.lower() not in ("pool", "apppool"):
        print(output.error(f"Command 'DEPLOY' is not supported on object '{args.object.upper()}'."),
              file=sys.stderr)
        return 2
    from wasp.cli.main import locate_run_dir  # main imports this module

    client = AdminClient(locate_run_dir(args))
    records = client.get("events", since=0)
    since = max((int(r.get("seq", 0)) for r in records), default=0)
    before = {row["pid"] for row in client.get("wp") if row.get("pool") == args.name}
    try:
        client.pool_command("recycle", args.name, timeout=3600)
    except AdminError as exc:
        print(output.error(f'deploy of pool "{args.name}" failed: {exc.message}'), file=sys.stderr)
        failures = [r for r in client.get("events", since=since)
                    if r.get("pool") == args.name and r.get("id") in (9009, 9008, 9012, 5009)]
        if failures:
            last = failures[-1]
            print(f"event {last['id']}: {last.get('message', '')}", file=sys.stderr)
            if last.get("traceback"):
                print(last["traceback"].rstrip("\n"), file=sys.stderr)
        serving = [row["pid"] for row in client.get("wp") if row.get("pool") == args.name
                   and row.get("pid") in before]
        if serving:
            print(f"the old worker{'s' if len(serving) > 1 else ''} "
                  f"({', '.join(map(str, serving))}) keep{'' if len(serving) > 1 else 's'} serving",
                  file=sys.stderr)
        return 1
    new = [row["pid"] for row in client.get("wp") if row.get("pool") == args.name
           and row.get("pid") not in before]
    print(f'APPPOOL object "{args.name}" deployed' + (f" (workers {', '.join(map(str, new))})" if new else ""))
    return 0
