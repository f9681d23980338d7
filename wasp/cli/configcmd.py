"""The CLI of configuration changes (docs/appcmd.md): `register(sub)` adds

    wasp add|set|delete site|app|vdir|pool|binding IDENTIFIER [params]
    wasp set config [PATH] --section NAME [params] [--commit apphost|web]
    wasp lock|unlock config PATH --section NAME
    wasp list config [PATH] [--section NAME] [--effective]        (to `wasp list`)
    wasp config history | restore N
    wasp backup add [NAME] | list | restore NAME | delete NAME

each with -c FILE / --run-dir DIR, --json and --user NAME. Parameters and how a change reaches
the server (or the file, when none runs) are wasp/cli/appcmd.py's.
"""

from __future__ import annotations

import argparse
import json
import sys

from wasp.cli import appcmd, output
from wasp.cli.appcmd import CommandError
from wasp.cli.client import AdminClient, AdminError, ServerNotRunning

EDIT_OBJECTS = "site | app | vdir | pool | binding | config"


def register(sub) -> None:
    for verb in ("add", "set", "delete"):
        p = sub.add_parser(verb, help=f"{verb} a site, application, virtual directory, pool or "
                                      f"binding{', or set config' if verb == 'set' else ''} (appcmd)",
                           description="Parameters: key=value or /key:value, "
                                       "+collection.[key='value'], -collection.[key='value'], -key; "
                                       "and -c FILE, --run-dir DIR, --json, --user NAME, "
                                       "--section NAME, --commit apphost|web (docs/appcmd.md).")
        p.add_argument("object", metavar="OBJECT", help=EDIT_OBJECTS if verb == "set" else EDIT_OBJECTS[:-9])
        p.add_argument("words", nargs=argparse.REMAINDER, metavar="IDENTIFIER [PARAMS]")
        p.set_defaults(handler=_guard(cmd_edit))
    for verb in ("lock", "unlock"):
        p = sub.add_parser(verb, help=f"{verb} a section at a config path (a [[locations]] "
                                      "override_mode), as appcmd lock|unlock config")
        p.add_argument("object", metavar="config", help="config")
        p.add_argument("words", nargs=argparse.REMAINDER, metavar="PATH --section NAME")
        p.set_defaults(handler=_guard(cmd_lock))
    p = sub.add_parser("config", help="the configuration history: wasp config history | restore N")
    p.add_argument("action", choices=["history", "restore"])
    p.add_argument("number", nargs="?", metavar="N")
    p.add_argument("--json", action="store_true")
    p.add_argument("--user", metavar="NAME", help="who to record (default: your account)")
    _locate(p)
    p.set_defaults(handler=_guard(cmd_history))
    p = sub.add_parser("backup", help="appcmd's BACKUP object: wasp backup add [NAME] | list | "
                                      "restore NAME | delete NAME")
    p.add_argument("action", choices=["add", "list", "restore", "delete"])
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p.add_argument("--user", metavar="NAME")
    _locate(p)
    p.set_defaults(handler=_guard(cmd_backup))
    # `wasp list config PATH [--section NAME] [--effective]` rides on the existing `list`.
    lister = sub.choices.get("list")
    if lister is not None:
        lister.add_argument("identifier", nargs="?", metavar="PATH",
                            help='with "config": an IIS config path, "Site/app/dir" ("" = the server)')
        lister.add_argument("--section", metavar="NAME", help="with config: only this section")
        lister.add_argument("--effective", action="store_true",
                            help="with config: every key, the defaults too (appcmd's /config:*)")


def _locate(p) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("-c", "--config", metavar="FILE", help="the server's config file")
    group.add_argument("--run-dir", metavar="DIR", help="the server's run_dir")


def _guard(fn):
    def run(args) -> int:
        try:
            return fn(args)
        except CommandError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print(output.error(str(exc)), file=sys.stderr)
            return exc.code
    return run


def _where(general: dict, args=None) -> tuple[str | None, str]:
    """(config file, run dir) from -c / --run-dir (or ./wasp.toml), as the other commands find
    the server."""
    from wasp.cli.main import _config_file, locate_run_dir

    ns = argparse.Namespace(config=general.get("c") or getattr(args, "config", None),
                            run_dir=general.get("run_dir") or getattr(args, "run_dir", None))
    return _config_file(ns.config), locate_run_dir(ns)


def _split_words(words: list[str]) -> tuple[list[str], list[str]]:
    """(identifiers, the rest): identifiers are the words before the first parameter that are
    not options."""
    idents, rest = [], []
    i = 0
    while i < len(words):
        w = words[i]
        if w in ("-c", "--config", "--run-dir", "--section", "--commit", "--user"):
            rest += words[i:i + 2]
            i += 2
            continue
        if not rest and not w.startswith(("/", "-", "+")) and "=" not in w.split("[", 1)[0]:
            idents.append(w)
        else:
            rest.append(w)
        i += 1
    return idents, rest


# ---------------------------------------------------------------------- commands

def cmd_edit(args) -> int:
    kind = args.object.lower()
    idents, rest = _split_words(args.words)
    params, general = appcmd.parse_params(rest)
    file, run_dir = _where(general)
    if kind == "config":
        if args.command != "set":
            raise CommandError(f"Command '{args.command.upper()}' is not supported on object "
                               "'CONFIG'. Use set, list, lock or unlock.", 2)
        return _set_config(idents, params, general, file, run_dir)
    if kind not in appcmd.OBJECTS:
        raise CommandError(f"Object '{args.object.upper()}' is not supported.  Use one of: "
                           f"{EDIT_OBJECTS}.", 2)
    kind = appcmd.OBJECTS[kind]
    identifier = idents[0] if idents else ""
    if kind == "binding":
        if len(idents) >= 2:
            params.insert(0, appcmd.Param("set", "binding", idents[1]))
        elif len(idents) == 1 and "/" in identifier and ":" in identifier:
            raise CommandError("Name the site and the binding: wasp add binding SITE http/*:8080:", 2)
    elif len(idents) > 1:
        raise CommandError(f"One {appcmd.KINDS[kind]} identifier, then parameters: got "
                           + ", ".join(f'"{i}"' for i in idents), 2)
    request, lines = appcmd.object_change(args.command, kind, identifier, params)
    result, running = appcmd.send(general, request, file, run_dir)
    appcmd.report(result, lines, running, bool(general.get("json")))
    return 0


def _set_config(idents, params, general, file, run_dir) -> int:
    from wasp.config import sections

    path = idents[0] if idents else ""
    section = general.get("section", "")
    if not section:
        raise CommandError("set config needs --section NAME (or /section:NAME)", 2)
    info = sections.info(section)
    if info is None:
        raise CommandError(f'Unknown config section "{section}". Known: '
                           + ", ".join(sorted(sections.registered())), 2)
    edits = appcmd.edits_from(params, info.cls, section)
    if not edits:
        raise CommandError("Set at least one attribute (key=value).", 2)
    target = {"config": path, "section": section}
    if general.get("commit"):
        target["commit"] = general["commit"]
    # A bare +[...] has the path [] here: the section itself, its default collection.
    request = {"target": target, "edits": edits}
    result, running = appcmd.send(general, request, file, run_dir)
    lines = [] if result.get("messages") else [f'CONFIG object "{section}" changed']
    appcmd.report(result, lines, running, bool(general.get("json")))
    return 0


def cmd_lock(args) -> int:
    if args.object.lower() != "config":
        raise CommandError(f"Command '{args.command.upper()}' is not supported on object "
                           f"'{args.object.upper()}'.", 2)
    idents, rest = _split_words(args.words)
    params, general = appcmd.parse_params(rest)
    if params:
        raise CommandError("lock and unlock take a path and --section NAME only", 2)
    section = general.get("section", "")
    if not section:
        raise CommandError(f"{args.command} config needs --section NAME", 2)
    file, run_dir = _where(general)
    mode = "Deny" if args.command == "lock" else "Allow"
    request = {"target": {"config": idents[0] if idents else "", "section": section},
               "edits": [{"op": "lock", "mode": mode}]}
    result, running = appcmd.send(general, request, file, run_dir)
    appcmd.report(result, [f'{"Locked" if mode == "Deny" else "Unlocked"} section "{section}" at '
                           f'configuration path "{idents[0] if idents else ""}".'],
                  running, bool(general.get("json")))
    return 0


def list_config(args) -> int:
    """`wasp list config ...` (main.py's cmd_list hands it over)."""
    return _guard(_list_config)(args)


def _list_config(args) -> int:
    from wasp.cli.main import _config_file, locate_run_dir

    query = {"path": args.identifier or "", "section": args.section or "",
             "effective": "1" if args.effective else ""}
    try:
        answer = AdminClient(locate_run_dir(args)).get("config", **query)
    except ServerNotRunning:
        path = _config_file(args.config)
        if not path:
            raise
        answer = _local_view(path, query)
    except AdminError as exc:
        raise CommandError(exc.message) from None
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(config_text(answer))
    return 0


def _local_view(path: str, query: dict) -> dict:
    from wasp.config import view
    from wasp.config.load import load
    from wasp.errors import ConfigError

    try:
        config = load(path)
    except ConfigError as exc:
        raise CommandError("the configuration is invalid", 2, [str(p) for p in exc.problems]) from None
    try:
        return view.config_view(config, query["path"], query["section"], bool(query["effective"]))
    except view.ViewError as exc:
        raise CommandError(str(exc)) from None


def config_text(answer: dict) -> str:
    """appcmd's `list config` as TOML: each section's keys, each with where it was set."""
    from wasp.config.edit import inline_text

    lines = [f'# CONFIG "{answer.get("path", "")}"'
             + ("" if answer.get("effective") else " (set values; --effective shows the defaults too)")]
    sections = answer.get("sections", {})
    if not sections:
        lines.append("# no section is set at this path")
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        rows = []
        for key, item in keys.items():
            value = item.get("value")
            rendered = inline_text(value) if value is not None else '""'
            rows.append((f"{key} = {rendered}", item.get("set_at", "")))
        width = min(60, max((len(r[0]) for r in rows), default=0))
        for text, where in rows:
            lines.append(f"{text.ljust(width)}  # {where}")
        lines.append("")
    return "\n".join(lines).rstrip()


def cmd_history(args) -> int:
    from wasp.cli.main import _config_file, locate_run_dir
    from wasp.config import commit, history

    run_dir = locate_run_dir(args)
    client = AdminClient(run_dir, timeout=600)
    file = _config_file(args.config)
    if args.action == "history":
        try:
            rows = client.get("config/history")
        except ServerNotRunning:
            if not file:
                raise
            rows = history.entries(history.settings_of_file(file, run_dir).path)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        if not rows:
            print("no configuration history yet")
        for row in rows:
            print(f'HISTORY "{row["number"]}" (time:{row.get("time", "")},user:{row.get("user", "")},'
                  f'file:{row.get("file", "")},what:{row.get("what", "")})')
            for line in (row.get("diff") or "").splitlines():
                print(f"    {line}")
        return 0
    if not args.number or not args.number.isdigit():
        raise CommandError("Must specify the HISTORY object with identifier: wasp config restore N", 2)
    n = int(args.number)
    body = {"user": args.user} if args.user else {}
    try:
        result = client.post_json(f"/config/history/{n}/restore", body)
        running = True
    except ServerNotRunning:
        if not file:
            raise
        settings = history.settings_of_file(file, run_dir)
        try:
            record, text = history.entry(settings.path, n)
            with commit.Transaction(file, run_dir, appcmd._checks()) as txn:
                result = txn.replace(record["file"], text, args.user or appcmd._local_user(),
                                     f"restore of history {n}").result(applied=False)
        except history.HistoryError as exc:
            raise CommandError(str(exc)) from None
        except commit.ChangeRefused as exc:
            raise CommandError(str(exc), 2 if exc.problems else 1, exc.problems) from None
        running = False
    except AdminError as exc:
        problems = exc.payload.get("problems", []) if isinstance(exc.payload, dict) else []
        raise CommandError(exc.message, 2 if problems and exc.status == 400 else 1, problems) from None
    appcmd.report(result, [f'Restored configuration from history "{n}"'], running, args.json)
    return 0


def cmd_backup(args) -> int:
    from wasp.cli.main import _config_file, locate_run_dir
    from wasp.config import commit, history

    run_dir = locate_run_dir(args)
    client = AdminClient(run_dir, timeout=600)
    file = _config_file(args.config)
    body = {"user": args.user} if args.user else {}
    if args.action != "list" and args.action != "add" and not args.name:
        raise CommandError("Must specify the BACKUP object with identifier.", 2)
    try:
        try:
            if args.action == "list":
                rows = client.get("backups")
            elif args.action == "add":
                result = client.post_json("/backups", dict(body, name=args.name or ""))
            elif args.action == "restore":
                result = client.post_json(f"/backups/{args.name}/restore", body)
            else:
                result = client.post_json(f"/backups/{args.name}", body, method="DELETE")
            running = True
        except ServerNotRunning:
            if not file:
                raise
            running = False
            user = args.user or appcmd._local_user()
            if args.action == "list":
                rows = history.backups(run_dir)
            elif args.action == "add":
                name = args.name or history.auto_name()
                result = dict(history.backup_add(run_dir, name, commit.read_text(file) or "", user, file),
                              message=f'BACKUP object "{name}" added')
            elif args.action == "restore":
                text = history.backup_text(run_dir, args.name)
                with commit.Transaction(file, run_dir, appcmd._checks()) as txn:
                    result = txn.replace(file, text, user, f'restore of backup "{args.name}"').result(applied=False)
                result["message"] = f'Restored configuration from backup "{args.name}"'
            else:
                history.backup_delete(run_dir, args.name)
                result = {"ok": True, "message": f'BACKUP object "{args.name}" deleted'}
    except AdminError as exc:
        problems = exc.payload.get("problems", []) if isinstance(exc.payload, dict) else []
        raise CommandError(exc.message, 2 if problems and exc.status == 400 else 1, problems) from None
    except history.HistoryError as exc:
        raise CommandError(str(exc)) from None
    except commit.ChangeRefused as exc:
        raise CommandError(str(exc), 2 if exc.problems else 1, exc.problems) from None
    if args.action == "list":
        if args.json:
            print(json.dumps(rows, indent=2))
        for row in [] if args.json else rows:
            print(f'BACKUP "{row["name"]}"')
        return 0
    if args.json:
        print(json.dumps(dict(result, running=running), indent=2))
        return 0
    print(result.get("message", ""))
    if args.action == "restore" and not running:
        print(appcmd.NOT_RUNNING.format(file=file))
    return 0


__all__ = ["register", "config_text"]
