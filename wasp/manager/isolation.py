"""What keeps a pool's workers apart from the rest of the machine, for the manager's spawn path:
the account they run as (`identity`) and their cgroup with the pool's CPU and memory limits
(`cgroups`). Each decision is logged once, when it says something new (events 9017-9019)."""

from __future__ import annotations

import os
import sys

from wasp.config import venv as venvs
from wasp.config.model import Config, Pool
from wasp.config.sections.http_compression import compression_root, server_directory
from wasp.manager import cgroups, identity, spawn
from wasp.manager.events import EventLog


class Isolation:
    def __init__(self, events: EventLog, cpu_count: int, manager_pid: int):
        self.events = events
        self.cpu_count = cpu_count
        self.manager_pid = manager_pid
        self.tree: cgroups.CgroupTree | None = None
        self.tree_error = ""  # why there is no cgroup tree, once we looked
        self._accounts: dict[str, identity.Resolved] = {}
        self._runtimes: dict[tuple[str, int | None], str] = {}
        self._notes: dict[tuple[str, int], dict] = {}

    def forget(self) -> None:
        """A new config: identities and application folders may have changed; look again."""
        self._accounts.clear()
        self._runtimes.clear()

    def account(self, config: Config, pool: Pool) -> identity.Account | None:
        """The account the pool's workers run as (None: the manager's). Raises KeyError for an
        unknown user or group, PermissionError for a named account that cannot run wasp."""
        resolved = self._accounts.get(pool.name)
        if resolved is None:
            paths = [p for site in config.sites for app in site.applications if app.pool == pool.name
                     for p in [app.physical_path, *app.python_path] if p]
            resolved = identity.resolve(pool.identity, pool.python or sys.executable,
                                        spawn.package_root(), paths)
            self._accounts[pool.name] = resolved
            for warning in resolved.warnings:
                self.events.write(9019, pool.name, data={"reason": warning})
        return resolved.account

    def other_accounts(self, config: Config) -> list[str]:
        """One line for each pool whose workers run as a user other than the manager's, so a
        root-run server says it runs a project as `nobody` before the project finds out."""
        lines = []
        for pool in config.pools:
            try:
                acct = self.account(config, pool)
            except (KeyError, PermissionError):
                continue  # the first spawn says why (event 9012)
            if acct is not None and acct.uid != os.geteuid():
                lines.append(f'wasp: pool "{pool.name}" runs as user {acct.user} (uid {acct.uid}); '
                             "set identity.user to change it")
        return lines

    def prepare_compression(self, config: Config, pool: Pool, acct: identity.Account | None) -> None:
        """Make the pool's compressed-file folder (static compression) and give it to the
        pool's account, as IIS grants the pool identity its folder of "IIS Temporary Compressed
        Files". A failure leaves static compression off in the workers, which say why."""
        root = compression_root(server_directory(config.sections), config.source,
                                config.server.run_dir, pool.name)
        try:
            os.makedirs(os.path.dirname(root), mode=0o711, exist_ok=True)
            os.makedirs(root, mode=0o711, exist_ok=True)
            os.chmod(root, 0o711)  # whatever the umask: the account writes, others only traverse
            if acct is not None and os.geteuid() == 0 and acct.uid != 0:
                st = os.stat(root)
                if (st.st_uid, st.st_gid) != (acct.uid, acct.gid):
                    os.chown(root, acct.uid, acct.gid)
        except OSError:
            pass

    def runtime_problem(self, pool: Pool, acct: identity.Account | None) -> str:
        """Why the pool's workers cannot start on its `python` or `virtualenv`, or "" when they
        can. A pool's own interpreter is run once (spawn.probe) and the verdict kept until the
        next config, so a broken one gives one clear event instead of a crash per worker."""
        key = (pool.name, acct.uid if acct else None)
        if key not in self._runtimes:
            problem = ""
            if pool.python and pool.python != sys.executable:
                env = spawn.worker_environment(pool.name, 0, dict(pool.environment_variables), acct)
                problem = spawn.probe(pool.python, env, acct) or ""
            elif pool.virtualenv:
                problem = venvs.problem(pool.virtualenv) or ""
                if not problem and acct is not None:
                    why = identity.blocked(pool.virtualenv, acct, 5)
                    if why:
                        problem = f"user {acct.user!r} cannot read the virtualenv: {why}"
                problem = f"virtualenv: {problem}" if problem else ""
            self._runtimes[key] = problem
        return self._runtimes[key]

    def cgroup(self, pool: Pool) -> str | None:
        """The pool's cgroup folder with its limits set, or None (no limits, or they cannot be
        applied here: event 9017 says why)."""
        limits = cgroups.limits_of(pool, self.cpu_count)
        if limits is None:
            return None
        if self.tree is None and not self.tree_error:
            try:
                self.tree = cgroups.CgroupTree.discover(self.manager_pid)
            except cgroups.Unavailable as exc:
                self.tree_error = str(exc)
        if self.tree is None:
            self._note(pool.name, 9017, reason=self.tree_error)
            return None
        try:
            path = self.tree.pool_cgroup(pool.name, limits)
        except cgroups.Unavailable as exc:
            self._note(pool.name, 9017, reason=str(exc))
            return None
        self._note(pool.name, 9018, cgroup=path, limits=limits.describe())
        return path

    def place(self, pool: Pool, pid: int) -> None:
        """Move a new worker into its pool's cgroup, if the pool has one."""
        path = self.cgroup(pool)
        if path is None:
            return
        try:
            cgroups.CgroupTree.add(path, pid)
        except OSError as exc:
            self._note(pool.name, 9017, reason=f"cannot move pid {pid} into {path}: {exc.strerror or exc}")

    def close(self) -> None:
        if self.tree is not None:
            self.tree.close()

    def _note(self, pool: str, event_id: int, **data) -> None:
        if self._notes.get((pool, event_id)) != data:
            self._notes[(pool, event_id)] = data
            self.events.write(event_id, pool, data=data)
