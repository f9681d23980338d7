"""The `wasp` command: run the server, check a config, and appcmd-style administration.

    wasp serve [-c FILE] [APP_SPEC] [--bind IP:PORT]
    wasp validate [-c FILE]
    wasp list sites|apps|pools|wp|requests [--json] [-c FILE | --run-dir DIR]
    wasp recycle|stop|start pool NAME [-c FILE | --run-dir DIR]
    wasp reload [-c FILE | --run-dir DIR]
    wasp events [--follow] [--since N] [--json] [-c FILE | --run-dir DIR]

Exit codes: 0 done; 1 an error (server not running, unknown pool, ...); 2 an invalid config or
bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from wasp.cli import output
from wasp.cli.client import AdminClient, AdminError, ServerNotRunning
from wasp.errors import ConfigError

DEFAULT_FILE = "wasp.toml"
LIST_OBJECTS = ("sites", "apps", "pools", "wp", "requests")
# appcmd's object names, singular and plural, for the same lists.
LIST_ALIASES = {"site": "sites", "app": "apps", "apppool": "pools", "apppools": "pools", "pool": "pools",
                "wps": "wp", "request": "requests"}
FOLLOW_INTERVAL = 1.0


class Usage(Exception):
    """Bad usage; exit 2."""


def _add_locate(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("-c", "--config", metavar="FILE",
                       help=f"the server's config file (its run_dir has the admin socket); default ./{DEFAULT_FILE}")
    group.add_argument("--run-dir", metavar="DIR", help="the server's run_dir")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wasp", description="wasp: a web application server for "
                                     "Python with the architecture of IIS.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("serve", help="run the server in the foreground")
    p.add_argument("-c", "--config", metavar="FILE",
                   help=f"config file (default: ./{DEFAULT_FILE} if it exists, else the embedded default site)")
    p.add_argument("app_spec", nargs="?", metavar="APP_SPEC",
                   help='serve one app, "module:attribute", with every other setting default')
    p.add_argument("--bind", metavar="IP:PORT", help="with APP_SPEC: where to listen (default 127.0.0.1:8000)")

    p = sub.add_parser("validate", help="check a config file and print every problem")
    p.add_argument("-c", "--config", metavar="FILE", help=f"config file (default ./{DEFAULT_FILE})")

    p = sub.add_parser("list", help="list sites, apps, pools, worker processes or requests")
    p.add_argument("object", metavar="OBJECT", help="sites | apps | pools | wp | requests")
    p.add_argument("--json", action="store_true", help="print the admin API's JSON")
    p.add_argument("--text", metavar="ATTR", help=(
        "like appcmd's /text: '*' prints every attribute of each object (a worker's state, "
        "uptime, requests served, RSS), a name prints just that attribute a line"))
    _add_locate(p)

    for verb in ("recycle", "stop", "start"):
        p = sub.add_parser(verb, help=f"{verb} an application pool")
        p.add_argument("object", metavar="pool", help='"pool" (or "apppool")')
        p.add_argument("name", metavar="NAME")
        _add_locate(p)

    p = sub.add_parser("reload", help="re-read the config file (like SIGHUP)")
    _add_locate(p)

    p = sub.add_parser("events", help="print the event log")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--since", type=int, default=0, metavar="N", help="only events after number N")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    _add_locate(p)
    return parser


# ---------------------------------------------------------------------- config and server lookup

def _print_problems(error: ConfigError, stream) -> None:
    for problem in error.problems:
        print(str(problem), file=stream)
    n = len(error.problems)
    print(f"the configuration is invalid ({n} problem{'s' if n != 1 else ''})", file=stream)


def _config_file(arg: str | None) -> str | None:
    if arg:
        return os.path.abspath(arg)
    if os.path.isfile(DEFAULT_FILE):
        return os.path.abspath(DEFAULT_FILE)
    return None


def locate_run_dir(args) -> str:
    """The run_dir of the server to talk to: --run-dir, else -c FILE's (or ./wasp.toml's), else
    the default one."""
    if getattr(args, "run_dir", None):
        return os.path.abspath(args.run_dir)
    path = _config_file(getattr(args, "config", None))
    if path is None:
        from wasp.config.defaults import default_run_dir
        return default_run_dir()
    from wasp.config.load import load
    return os.path.abspath(load(path).server.run_dir)


def _log_dir(args) -> str | None:
    path = _config_file(getattr(args, "config", None))
    if getattr(args, "run_dir", None) or path is None:
        return None
    from wasp.config.load import load
    return load(path).server.log_dir


# ---------------------------------------------------------------------- commands

def cmd_serve(args) -> int:
    from wasp.config import defaults
    from wasp.config.load import load

    if args.app_spec and args.config:
        raise Usage("give either -c FILE or APP_SPEC, not both")
    if args.bind and not args.app_spec:
        raise Usage("--bind goes with APP_SPEC (a config file names its own bindings)")
    config_file = None
    try:
        if args.app_spec:
            config = (defaults.single_app_config(args.app_spec, args.bind) if args.bind
                      else defaults.single_app_config(args.app_spec))
        else:
            config_file = _config_file(args.config)
            config = load(config_file) if config_file else defaults.default_config()
    except ConfigError as exc:
        _print_problems(exc, sys.stderr)
        return 2
    except ValueError as exc:
        print(f"wasp: {exc}", file=sys.stderr)
        return 2
    from wasp.manager.main import serve
    return serve(config, config_file)


def cmd_validate(args) -> int:
    from wasp.config import defaults
    from wasp.config.load import load

    path = _config_file(args.config)
    try:
        config = load(path) if path else defaults.default_config()
    except ConfigError as exc:
        _print_problems(exc, sys.stdout)
        return 2
    apps = sum(len(s.applications) for s in config.sites)
    print("configuration OK")
    print(f"{path or 'embedded default site'}: {len(config.sites)} site(s), {apps} application(s), "
          f"{len(config.pools)} pool(s)")
    return 0


def cmd_list(args) -> int:
    what = LIST_ALIASES.get(args.object.lower(), args.object.lower())
    if what not in LIST_OBJECTS:
        raise Usage(f"Object '{args.object.upper()}' is not supported. "
                    f"Use one of: {', '.join(LIST_OBJECTS)}.")
    rows = AdminClient(locate_run_dir(args)).get(what)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.text == "*":
        for row in rows:
            print(output.text_view(what, row))
    elif args.text:
        for row in rows:
            print(output.text_attribute(row, args.text))
    else:
        for row in rows:
            print(output.LINES[what](row))
    return 0


def cmd_pool(args) -> int:
    if args.object.lower() not in ("pool", "apppool", "pools", "apppools"):
        raise Usage(f"Command '{args.command.upper()}' is not supported on object '{args.object.upper()}'.")
    verb = args.command
    # A stop waits for the pool's workers to exit (up to its shutdown_time_limit), a recycle for
    # the new ones to be ready (up to its startup_time_limit).
    answer = AdminClient(locate_run_dir(args)).pool_command(
        verb, args.name, timeout=3600 if verb in ("stop", "recycle") else None)
    done = {"recycle": "recycled", "stop": "stopped", "start": "started"}[verb]
    print(answer.get("message") if isinstance(answer, dict) and answer.get("message")
          else output.command_done(args.name, done))
    return 0


def cmd_reload(args) -> int:
    try:
        AdminClient(locate_run_dir(args)).reload()
    except AdminError as exc:
        problems = exc.payload.get("problems", []) if isinstance(exc.payload, dict) else []
        for problem in problems:
            print(problem, file=sys.stderr)
        print(output.error(exc.message), file=sys.stderr)
        return 1
    print("configuration reloaded")
    return 0


def _print_event(record: dict, as_json: bool) -> None:
    print(json.dumps(record) if as_json else output.event_line(record), flush=True)


def cmd_events(args) -> int:
    client = AdminClient(locate_run_dir(args))
    since = args.since
    try:
        records = client.get("events", since=since)
    except ServerNotRunning:
        if args.follow:
            raise
        # Not running: the file still has the history, when we know where it is.
        log_dir = _log_dir(args)
        if log_dir is None:
            raise
        from wasp.manager.events import read_events
        records = read_events(os.path.join(log_dir, "events.jsonl"), since)
    for record in records:
        _print_event(record, args.json)
        since = max(since, int(record.get("seq", 0)))
    while args.follow:
        time.sleep(FOLLOW_INTERVAL)
        try:
            records = client.get("events", since=since)
        except ServerNotRunning:
            return 0  # the server stopped: nothing more will come
        for record in records:
            _print_event(record, args.json)
            since = max(since, int(record.get("seq", 0)))
    return 0


COMMANDS = {"serve": cmd_serve, "validate": cmd_validate, "list": cmd_list, "recycle": cmd_pool,
            "stop": cmd_pool, "start": cmd_pool, "reload": cmd_reload, "events": cmd_events}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except Usage as exc:
        parser.print_usage(sys.stderr)
        print(output.error(str(exc)), file=sys.stderr)
        return 2
    except ConfigError as exc:
        _print_problems(exc, sys.stderr)
        return 1
    except ServerNotRunning as exc:
        print(output.error(f"Cannot reach the wasp server: {exc}. Start it with \"wasp serve\"."),
              file=sys.stderr)
        return 1
    except AdminError as exc:
        print(output.error(exc.message), file=sys.stderr)
        return 1
    except (OSError, TimeoutError) as exc:
        print(output.error(f"Cannot talk to the wasp server: {exc}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
