"""The `wasp` command: run the server, check a config, and appcmd-style administration.

    wasp serve [-c FILE | APP_SPEC [-b ADDRESS]... [--workers N] [--threads N]] [--run-dir DIR]
    wasp validate [-c FILE]
    wasp list sites|apps|pools|wp|requests|cache|traces [--site S] [--json | --text ATTR] [-c FILE | --run-dir DIR]
    wasp cache flush [SITE [URL]] [-c FILE | --run-dir DIR]
    wasp recycle|stop|start pool NAME [-c FILE | --run-dir DIR]     (recycle pool '*': every started pool)
    wasp deploy pool NAME [-c FILE | --run-dir DIR]                 (recycle onto new code; exit 1 with the traceback)
    wasp stop|start site NAME [-c FILE | --run-dir DIR]
    wasp reload [-c FILE | --run-dir DIR]
    wasp events [--follow] [--since N|DURATION] [--json] [-c FILE | --run-dir DIR]
    wasp install-service [-c FILE] [--socket] [--user USER] [--print] ...   (docs/systemd.md)
    wasp add|set|delete site|app|vdir|pool|binding ID [params]   wasp set config PATH --section S
    wasp lock|unlock config PATH --section S   wasp list config PATH [--section S] [--effective]
    wasp config history|restore N   wasp backup add|list|restore|delete NAME   (configcmd.py)
    wasp --version

The admin commands find the server from -c FILE (reading only its server.run_dir, so they work
while the file is invalid), --run-dir DIR, ./wasp.toml, or else the `wasp serve APP_SPEC` server
running from this directory (wasp/cli/locate.py).

Exit codes: 0 done; 1 an error (server not running, unknown pool, ...); 2 an invalid config or
bad usage.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from importlib import metadata

from wasp.cli import management as management_cli
from wasp.cli import configcmd, importiis, output, service
from wasp.cli.binds import BindError, parse_bind
from wasp.cli.client import AdminClient, AdminError, ServerNotRunning
from wasp.cli.locate import LocateError, dirs_from_file, fallback_run_dir
from wasp.cli import deploy  # wasp deploy pool (cli/deploy.py)
from wasp.cli import upgrade as upgrade_cli  # wasp upgrade (cli/upgrade.py)
from wasp.errors import ConfigError

DEFAULT_FILE = "wasp.toml"
LIST_OBJECTS = ("sites", "apps", "pools", "wp", "requests", "cache", "traces")
# appcmd's object names, singular and plural, for the same lists.
LIST_ALIASES = {"site": "sites", "app": "apps", "apppool": "pools", "apppools": "pools", "pool": "pools",
                "wps": "wp", "request": "requests", "trace": "traces"}
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
    parser.add_argument("--version", action="version", version=f"wasp {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("serve", help="run the server in the foreground")
    p.add_argument("-c", "--config", metavar="FILE",
                   help=f"config file (default: ./{DEFAULT_FILE} if it exists, else the embedded default site)")
    p.add_argument("app_spec", nargs="?", metavar="APP_SPEC",
                   help='serve one app, "module:attribute", with every other setting default')
    p.add_argument("-b", "--bind", metavar="ADDRESS", action="append", help=(
        "with APP_SPEC: where to listen, HOST:PORT, :PORT (every address), PORT (127.0.0.1) or "
        "[IPv6]:PORT; repeat for several (default 127.0.0.1:8000)"))
    p.add_argument("--workers", type=int, metavar="N", help="with APP_SPEC: worker processes (the pool's max_processes)")
    p.add_argument("--threads", type=int, metavar="N", help="with APP_SPEC: threads per worker")
    p.add_argument("--reload", action="store_true", help=(
        "developer mode: recycle a pool (overlapped) when the Python files of its applications "
        "change"))
    p.add_argument("--run-dir", metavar="DIR", help=(
        "where the admin socket and pid file go (default: the config's server.run_dir, or one "
        "derived from this directory, the app and its bindings)"))

    p = sub.add_parser("validate", help="check a config file and print every problem")
    p.add_argument("-c", "--config", metavar="FILE", help=f"config file (default ./{DEFAULT_FILE})")

    p = sub.add_parser("list", help="list sites, apps, pools, worker processes or requests")
    p.add_argument("object", metavar="OBJECT", help="sites | apps | pools | wp | requests | cache | traces")
    p.add_argument("--site", metavar="SITE", help="traces: only this site's (name or id)")
    p.add_argument("--json", action="store_true", help="print the admin API's JSON")
    p.add_argument("--text", metavar="ATTR", help=(
        "like appcmd's /text: '*' prints every attribute of each object (a worker's state, "
        "uptime, requests served, RSS), a name prints just that attribute a line"))
    _add_locate(p)

    for verb in ("recycle", "stop", "start"):
        p = sub.add_parser(verb, help=f"{verb} an application pool" + ("" if verb == "recycle" else " or a site"))
        p.add_argument("object", metavar="pool" if verb == "recycle" else "pool|site",
                       help='"pool" (or "apppool")' + ("" if verb == "recycle" else ', or "site"'))
        p.add_argument("name", metavar="NAME")
        _add_locate(p)

    deploy.register(sub, _add_locate)
    upgrade_cli.register(sub, _add_locate)

    p = sub.add_parser("cache", help="empty the front's response cache")
    p.add_argument("action", metavar="flush", choices=["flush"], help="flush")
    p.add_argument("site", nargs="?", default="", metavar="SITE", help="only this site (name or id)")
    p.add_argument("url", nargs="?", default="", metavar="URL", help="only this path of the site, e.g. /index.html")
    _add_locate(p)

    p = sub.add_parser("status", help="a one-screen summary: pools, workers, queues, cache, "
                                      "the last events (like systemctl status)")
    p.add_argument("--json", action="store_true", help="print the admin API's JSON")
    _add_locate(p)

    p = sub.add_parser("reload", help="re-read the config file (like SIGHUP)")
    _add_locate(p)

    p = sub.add_parser("events", help="print the event log")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--since", default="0", metavar="N|DURATION",
                   help="only events after sequence number N, or of the last DURATION (30s, 10m, 1h, 2d)")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    _add_locate(p)
    importiis.register(sub)
    service.register(sub)
    management_cli.register(sub)
    configcmd.register(sub)  # add|set|delete, lock|unlock, list config, config, backup
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


def _version() -> str:
    try:
        return metadata.version("wasp")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        import wasp
        return wasp.__version__


def locate_run_dir(args) -> str:
    """The run_dir of the server to talk to: --run-dir, else -c FILE's (or ./wasp.toml's) read
    without validating the file, else the `wasp serve APP_SPEC` server of this directory."""
    if getattr(args, "run_dir", None):
        return os.path.abspath(args.run_dir)
    path = _config_file(getattr(args, "config", None))
    if path is None:
        return fallback_run_dir(os.getcwd())
    return dirs_from_file(path)[0]


def _log_dir(args) -> str | None:
    path = _config_file(getattr(args, "config", None))
    if getattr(args, "run_dir", None) or path is None:
        return None
    return dirs_from_file(path)[1]


# ---------------------------------------------------------------------- commands

def cmd_serve(args) -> int:
    from wasp.config import defaults
    from wasp.config.load import load

    from wasp.manager import upgrade as upgrade_child
    upgrade_child.child()  # started by `wasp upgrade`: its stderr also goes to the old manager
    if args.app_spec and args.config:
        raise Usage("give either -c FILE or APP_SPEC, not both")
    for flag, value in (("-b/--bind", args.bind), ("--workers", args.workers), ("--threads", args.threads)):
        if value is not None and not args.app_spec:
            raise Usage(f"{flag} goes with APP_SPEC (a config file names its own)")
    config_file = None
    try:
        if args.app_spec:
            binds = [parse_bind(b) for b in args.bind] if args.bind else ["127.0.0.1:8000"]
            config = defaults.single_app_config(args.app_spec, binds, workers=args.workers,
                                                threads=args.threads, run_dir=args.run_dir)
        else:
            config_file = _config_file(args.config)
            config = load(config_file) if config_file else defaults.default_config()
            if args.run_dir:
                config.server.run_dir = os.path.abspath(args.run_dir)
                if not config_file:
                    config.server.log_dir = os.path.join(config.server.run_dir, "logs")
        _check_environment(config, identities=os.geteuid() == 0)
    except BindError as exc:
        raise Usage(str(exc)) from None
    except ConfigError as exc:
        _print_problems(exc, sys.stderr)
        return 2
    except ValueError as exc:
        print(f"wasp: {exc}", file=sys.stderr)
        return 2
    from wasp.manager.main import serve
    return serve(config, config_file, reload_code=args.reload)


def _check_environment(config, identities: bool = True) -> None:
    """Raise ConfigError for what the config names that this machine lacks (python, virtualenv,
    identity.user: wasp.manager.environment)."""
    from wasp.manager import environment

    problems = environment.check(config, identities)
    if problems:
        raise ConfigError(problems)


def cmd_validate(args) -> int:
    from wasp.config import defaults, hierarchy
    from wasp.config.load import load

    path = _config_file(args.config)
    try:
        config = load(path) if path else defaults.default_config()
        _check_environment(config)
        distributed = hierarchy.check_distributed(config)
        if distributed:
            raise ConfigError(distributed)
        if path:  # Python modules' own sections, decoded by importing them (in child processes)
            from wasp.manager import environment

            modules = environment.module_problems(config, path)
            if modules:
                raise ConfigError(modules)
    except ConfigError as exc:
        _print_problems(exc, sys.stdout)
        return 2
    apps = sum(len(s.applications) for s in config.sites)
    print("configuration OK")
    print(f"{path or 'embedded default site'}: {len(config.sites)} site(s), {apps} application(s), "
          f"{len(config.pools)} pool(s)")
    return 0


def cmd_list(args) -> int:
    if args.object.lower() == "config":
        return configcmd.list_config(args)
    if getattr(args, "identifier", None) or getattr(args, "section", None) or getattr(args, "effective", False):
        raise Usage("PATH, --section and --effective go with `wasp list config`")
    what = LIST_ALIASES.get(args.object.lower(), args.object.lower())
    if what not in LIST_OBJECTS:
        raise Usage(f"Object '{args.object.upper()}' is not supported. "
                    f"Use one of: {', '.join(LIST_OBJECTS)}.")
    if args.site and what != "traces":
        raise Usage("--site goes with list traces")
    rows = AdminClient(locate_run_dir(args)).get(what, **({"site": args.site} if args.site else {}))
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.text == "*":
        for row in rows:
            print(output.text_view(what, row))
    elif args.text:
        if rows and not all(output.has_attribute(what, row, args.text) for row in rows):
            raise Usage(f'Unknown attribute "{args.text}".  Replace with -? for help.')
        for row in rows:
            print(output.text_attribute(row, args.text, what))
    else:
        for row in rows:
            print(output.LINES[what](row))
    return 0


def cmd_pool(args) -> int:
    if args.object.lower() in ("site", "sites") and args.command in ("start", "stop"):
        answer = AdminClient(locate_run_dir(args)).site_command(args.command, args.name)
        print(answer.get("message", "") if isinstance(answer, dict) else answer)
        return 0
    if args.object.lower() not in ("pool", "apppool", "pools", "apppools"):
        raise Usage(f"Command '{args.command.upper()}' is not supported on object '{args.object.upper()}'.")
    verb = args.command
    if args.name == "*":
        return _recycle_all(args) if verb == "recycle" else _usage_star(verb)
    # A stop waits for the pool's workers to exit (up to its shutdown_time_limit), a recycle for
    # the new ones to be ready (up to its startup_time_limit).
    answer = AdminClient(locate_run_dir(args)).pool_command(
        verb, args.name, timeout=3600 if verb in ("stop", "recycle") else None)
    done = {"recycle": "recycled", "stop": "stopped", "start": "started"}[verb]
    print(answer.get("message") if isinstance(answer, dict) and answer.get("message")
          else output.command_done(args.name, done))
    return 0


def _usage_star(verb: str) -> int:
    raise Usage(f"'*' names every pool only for recycle; {verb} one pool at a time: wasp {verb} pool NAME")


def _recycle_all(args) -> int:
    """`recycle pool '*'`: every started pool, one after the other (each like `recycle pool NAME`)."""
    client = AdminClient(locate_run_dir(args))
    started = [row["name"] for row in client.get("pools") if row.get("state") == "Started"]
    if not started:
        raise AdminError(409, "Command execution failed. No application pool is started.")
    failed = 0
    for name in started:
        try:
            answer = client.pool_command("recycle", name, timeout=3600)  # waits, as NAME does
        except AdminError as exc:  # stopped meanwhile, or broken: tell, and go on with the others
            print(output.error(exc.message), file=sys.stderr)
            failed += 1
            continue
        print(answer.get("message") if isinstance(answer, dict) and answer.get("message")
              else output.command_done(name, "recycled"))
    return 1 if failed else 0


def cmd_cache(args) -> int:
    answer = AdminClient(locate_run_dir(args)).cache_flush(args.site, args.url)
    print(answer.get("message", "") if isinstance(answer, dict) else answer)
    return 0


def cmd_status(args) -> int:
    """Exit 0 when the server runs, 3 when it does not (systemctl status's "not running")."""
    try:
        summary = AdminClient(locate_run_dir(args)).get("status")
    except ServerNotRunning as exc:
        print(str(exc), file=sys.stderr)
        return 3
    print(json.dumps(summary, indent=2) if args.json else output.status_text(summary))
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


def parse_since(text: str) -> tuple[int, float | None]:
    """`--since`: a sequence number N (events after it) or a duration (30s, 10m, 1h, 2d: events
    of that last stretch of time). (seq, seconds or None)."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        return int(text), None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = text[:-1], text[-1:].lower()
    if unit in units and number:
        try:
            value = float(number)
        except ValueError:
            value = -1.0
        if 0 <= value < 1e9:
            return 0, value * units[unit]
    raise Usage(f"--since: {text!r} is not a sequence number (42) or a duration (30s, 10m, 1h, 2d)")


def _recent(records: list[dict], seconds: float | None) -> list[dict]:
    if seconds is None:
        return records
    cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    kept = []
    for record in records:
        try:
            when = datetime.datetime.fromisoformat(str(record.get("time", "")).replace("Z", "+00:00"))
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        if when >= cutoff:
            kept.append(record)
    return kept


def cmd_events(args) -> int:
    since, seconds = parse_since(args.since)
    client = AdminClient(locate_run_dir(args))
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
    for record in _recent(records, seconds):
        _print_event(record, args.json)
    for record in records:
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
            "stop": cmd_pool, "start": cmd_pool, "reload": cmd_reload, "events": cmd_events,
            "cache": cmd_cache, "status": cmd_status}
COMMANDS["deploy"] = deploy.cmd_deploy
COMMANDS.update(management_cli.COMMANDS)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # A command of its own module (register) sets `handler` or `func` as its default.
        handler = COMMANDS.get(args.command) or getattr(args, "handler", None) or args.func
        return handler(args)
    except Usage as exc:
        parser.print_usage(sys.stderr)
        print(output.error(str(exc)), file=sys.stderr)
        return 2
    except ConfigError as exc:
        _print_problems(exc, sys.stderr)
        return 1
    except LocateError as exc:
        print(output.error(str(exc)), file=sys.stderr)
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
