"""The admin API's configuration handlers: change, view, history, restore, backups (docs/appcmd.md).

A change runs wasp/config/commit.py's Transaction on a thread (reading, validating and writing
files never blocks the manager's loop), then applies a written wasp.toml through the manager's
reload, on the loop, like SIGHUP: only the pools whose settings changed are recycled (event
5080). A reload the manager refuses (a port in use, front_processes) is rolled back, so the file
on disk is always what runs. Changes are serialized by the config lock (an flock shared with the
CLI's offline edits) and, in the manager, by an asyncio.Lock.

Who made a change: the admin socket peer's uid (SO_PEERCRED), as a user name, and the `user` a
management site passes in the body (the socket's peer vouches for it: the socket's mode is the
authority). Both go in the event log (9070-9074) and the history.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
from typing import TYPE_CHECKING

from wasp.config import commit, history, view
from wasp.errors import ConfigError

if TYPE_CHECKING:
    from wasp.manager.admin import AdminRequest

NO_FILE = ("this server runs without a configuration file (the embedded default site or one "
           "app): there is no wasp.toml to change; start it with -c FILE")


def machine_checks(config, file: str) -> list:
    """The checks of `wasp validate` beyond the file: each pool's python and virtualenv, its
    identity (as root), then the Python modules' own sections (in child processes)."""
    from wasp.manager import environment

    problems = environment.check(config, identities=os.geteuid() == 0)
    if problems:
        return problems
    return environment.module_problems(config, file)


def who(request: "AdminRequest", body: dict | None) -> str:
    """"alice (via uid 1000 ops)" or "ops (uid 1000)"."""
    peer = request.peer
    account = ""
    if peer is not None:
        uid = peer[1]
        try:
            account = f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
        except KeyError:
            account = f"uid {uid}"
    named = body.get("user") if isinstance(body, dict) else None
    if isinstance(named, str) and named.strip():
        named = "".join(c for c in named.strip() if c.isprintable())[:128]
        return f"{named} (via {account})" if account else named
    return account or "unknown"


def audit(manager, name: str, args: dict, request: "AdminRequest", status: int, payload) -> None:
    """Event 9075: who ran which admin action, and how it ended."""
    try:
        body = json.loads(request.body) if request.body else {}
    except ValueError:
        body = {}
    verb, _, kind = name.partition("_")
    if name in ("reload", "cache_flush"):
        verb, kind = name.replace("_", " "), ""
    target = args.get("name") or args.get("pid") or request.query.get("site", "")
    outcome = "done" if status < 400 else (payload.get("error", f"HTTP {status}")
                                           if isinstance(payload, dict) else f"HTTP {status}")
    manager.events.write(9075, data={"user": who(request, body if isinstance(body, dict) else {}),
                                     "action": f"{verb} {kind}".strip(), "target": target or "-",
                                     "status": status, "outcome": outcome})


def _body(request: "AdminRequest") -> dict:
    if not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        raise commit.ChangeRefused(400, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise commit.ChangeRefused(400, "the body must be a JSON object")
    return body


def _lock(manager) -> asyncio.Lock:
    lock = getattr(manager, "_config_change_lock", None)
    if lock is None:
        lock = manager._config_change_lock = asyncio.Lock()
    return lock


async def dispatch(manager, name: str, args: dict, request: "AdminRequest") -> tuple[int, object]:
    try:
        body = _body(request) if request.method in ("POST", "DELETE") else {}
        if name == "config_get":
            return 200, await asyncio.to_thread(_view, manager, request.query)
        if name == "config_history":
            directory = _settings(manager).path
            rows = history.entries(directory)
            if request.query.get("diff", "1") in ("0", "false"):
                rows = [{k: v for k, v in r.items() if k != "diff"} for r in rows]
            return 200, rows
        if name == "backup_list":
            return 200, history.backups(manager.run_dir)
        if not manager.config_file:
            return 409, {"error": NO_FILE}
        user = who(request, body)
        if name == "config_change":
            return await _change(manager, user, lambda txn: txn.prepare(body, user))
        if name == "config_restore":
            try:
                number = int(args["number"])
            except ValueError:
                return 400, {"error": f'"{args["number"]}" is not a history number'}
            record, text = history.entry(_settings(manager).path, number)
            return await _change(manager, user, lambda txn: txn.replace(
                record["file"], text, user, f"restore of history {number}"), restored=f"history {number}")
        if name == "backup_add":
            name_ = str(body.get("name") or history.auto_name())
            text = commit.read_text(manager.config_file) or ""
            meta = await asyncio.to_thread(history.backup_add, manager.run_dir, name_, text, user,
                                           manager.config_file)
            manager.events.write(9073, data={"user": user, "backup": name_})
            return 200, dict(meta, message=f'BACKUP object "{name_}" added')
        if name == "backup_restore":
            text = history.backup_text(manager.run_dir, args["name"])
            return await _change(manager, user, lambda txn: txn.replace(
                manager.config_file, text, user, f'restore of backup "{args["name"]}"'),
                restored=f'backup "{args["name"]}"',
                message=f'Restored configuration from backup "{args["name"]}"')
        if name == "backup_delete":
            await asyncio.to_thread(history.backup_delete, manager.run_dir, args["name"])
            manager.events.write(9074, data={"user": user, "backup": args["name"]})
            return 200, {"ok": True, "message": f'BACKUP object "{args["name"]}" deleted'}
    except (commit.ChangeRefused, history.HistoryError) as exc:
        payload = exc.payload() if isinstance(exc, commit.ChangeRefused) else {"error": str(exc)}
        return exc.status, payload
    return 404, {"error": f"no such resource: {request.path}"}


def _settings(manager) -> history.Settings:
    if manager.config_file:
        return history.settings_of_file(manager.config_file, manager.run_dir)
    return history.Settings(True, history.DEFAULT_MAX_HISTORIES, os.path.join(manager.run_dir, "history"))


def _view(manager, query: dict) -> dict:
    effective = query.get("effective", "") not in ("", "0", "false")
    try:
        return view.config_view(manager.config, query.get("path", ""), query.get("section", ""),
                                effective)
    except view.ViewError as exc:
        raise commit.ChangeRefused(exc.status, str(exc)) from None


async def _change(manager, user: str, make, restored: str = "", message: str = "") -> tuple[int, object]:
    """Run `make(txn)` under the locks, apply what it wrote, roll it back if the server refuses."""
    async with _lock(manager):
        txn = commit.Transaction(manager.config_file, manager.run_dir, machine_checks)
        await asyncio.to_thread(txn.__enter__)
        try:
            try:
                written = await asyncio.to_thread(make, txn)
            except commit.ChangeRefused as exc:
                manager.events.write(9071, data={"user": user, "error": str(exc),
                                                 "problems": "; ".join(exc.problems)})
                raise
            if not written.changed:
                return 200, dict(written.result(applied=False), message="no change: the file "
                                 "already says that")
            applied: bool | None = None
            if written.kind == "wasp.toml":
                problems = await manager._call(manager.reload)
                if problems:
                    await asyncio.to_thread(txn.rollback, written)
                    manager.events.write(9071, data={"user": user, "error": "the server could not "
                                                     "apply it", "problems": "; ".join(problems)})
                    return 409, {"error": "the change was valid but the running server could not "
                                          "apply it, so it was undone: " + "; ".join(problems),
                                 "problems": problems}
                applied = True
            # A web.toml applies by itself: each worker sees the file's new stat signature.
            if restored:
                manager.events.write(9072, data={"user": user, "source": restored,
                                                 "file": written.file, "history": written.snapshot})
            else:
                manager.events.write(9070, data={"user": user, "what": written.what,
                                                 "file": written.file, "history": written.snapshot})
            result = written.result(applied=applied if written.kind == "wasp.toml" else True)
            if message:
                result["message"] = message
            return 200, result
        finally:
            await asyncio.to_thread(txn.__exit__, None, None, None)


__all__ = ["dispatch", "who", "ConfigError"]
