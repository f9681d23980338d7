"""Per-pool CPU and memory limits with cgroup v2 (IIS cpu.limit / cpu.action, and memory_limit).

Layout, under the cgroup the manager was started in (its "base", e.g. the systemd service's
cgroup, which must be delegated to it: `Delegate=yes`):

    <base>/wasp.<manager pid>/            controllers enabled for its children, no processes
    <base>/wasp.<manager pid>/manager/    the manager itself, when <base> had to be emptied
    <base>/wasp.<manager pid>/<pool>/     a limited pool's workers: memory.max, cpu.max, cpu.weight

cgroup v2 lets a cgroup hand controllers to its children only when it holds no process itself
(except the root cgroup), which is why the manager may move itself one level down; it never moves
a process that is not its own. Whatever stops the limits from being applied (cgroup v1, a
controller the base does not offer, a read-only tree, foreign processes in the base) becomes an
`Unavailable` with a reason the manager logs (event 9017); the pool then runs without the limits.

`limits_of`, `cgroup2_mount` and `own_cgroup` are pure; `CgroupTree` does the file I/O, against
any directory, so it is tested on a fake tree.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

#: cpu.max period in microseconds (the kernel's default).
CPU_PERIOD_US = 100_000
#: The kernel refuses a cpu.max quota under 1 ms.
MIN_QUOTA_US = 1_000


class Unavailable(Exception):
    """The limits cannot be applied; the message says why, for an administrator."""


@dataclass(frozen=True)
class PoolLimits:
    memory_max: int | None = None   # bytes -> memory.max
    cpu_max: str | None = None      # "quota period" -> cpu.max (action throttle)
    cpu_weight: int | None = None   # 1..10000 -> cpu.weight (action throttle_under_load)

    @property
    def controllers(self) -> set[str]:
        wanted = set()
        if self.memory_max is not None:
            wanted.add("memory")
        if self.cpu_max is not None or self.cpu_weight is not None:
            wanted.add("cpu")
        return wanted

    def files(self) -> dict[str, str]:
        out = {}
        if self.memory_max is not None:
            out["memory.max"] = str(self.memory_max)
        if self.cpu_max is not None:
            out["cpu.max"] = self.cpu_max
        if self.cpu_weight is not None:
            out["cpu.weight"] = str(self.cpu_weight)
        return out

    def describe(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.files().items())


def limits_of(pool, cpu_count: int) -> PoolLimits | None:
    """The cgroup settings a pool asks for, or None when it asks for none.

    IIS's cpu.limit is in 1/1000 of a percent of the whole machine: 50000 on a 4-core machine is
    two cores' worth, so cpu.max gets a quota of 2 periods. throttle_under_load maps to cpu.weight,
    which only bites when the CPU is contended (the default weight of a cgroup is 100)."""
    memory = int(pool.memory_limit) if pool.memory_limit > 0 else None
    cpu_max = cpu_weight = None
    share = pool.cpu.limit / 100000
    if share > 0 and pool.cpu.action == "throttle":
        quota = max(MIN_QUOTA_US, round(share * max(1, cpu_count) * CPU_PERIOD_US))
        cpu_max = f"{quota} {CPU_PERIOD_US}"
    elif share > 0 and pool.cpu.action == "throttle_under_load":
        cpu_weight = max(1, min(10000, round(share * 100)))
    if memory is None and cpu_max is None and cpu_weight is None:
        return None
    return PoolLimits(memory, cpu_max, cpu_weight)


def cgroup2_mount(mountinfo: str) -> str | None:
    """Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo, or None."""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if sep and right.split(" ", 1)[0] == "cgroup2":
            fields = left.split(" ")
            if len(fields) > 4:
                return fields[4].replace("\\040", " ")
    return None


def own_cgroup(proc_cgroup: str) -> str | None:
    """This process's cgroup v2 path ("0::/system.slice/wasp.service"), or None on pure v1."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return None


def dir_name(pool: str) -> str:
    """A cgroup folder name for a pool: its name when that is safe, else a cleaned form with a
    short hash so two pools never share one."""
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", pool)
    if clean == pool and pool not in (".", "..", "manager"):
        return pool
    return f"{clean}-{hashlib.sha1(pool.encode()).hexdigest()[:8]}"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, text: str) -> None:
    # One write() per value: cgroup files take a whole value per write call. O_CREAT | O_TRUNC
    # are what a shell's `echo > file` uses; cgroupfs ignores them for its own files.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class CgroupTree:
    """wasp's cgroups below `base` (a folder of the cgroup v2 hierarchy)."""

    def __init__(self, base: str, manager_pid: int, own_pids: set[int] | None = None):
        self.base = base
        self.manager_pid = manager_pid
        self.top = os.path.join(base, f"wasp.{manager_pid}")
        self.enabled: set[str] = set()  # controllers handed to the pools' cgroups so far
        self.pools: dict[str, str] = {}
        self._own_pids = own_pids

    @classmethod
    def discover(cls, manager_pid: int, proc: str = "/proc") -> "CgroupTree":
        """The tree for the manager's own cgroup. Raises Unavailable."""
        try:
            own = own_cgroup(_read(os.path.join(proc, "self", "cgroup")))
            mount = cgroup2_mount(_read(os.path.join(proc, "self", "mountinfo")))
        except OSError as exc:
            raise Unavailable(f"cannot read this process's cgroup: {exc.strerror}") from None
        if mount is None or own is None:
            raise Unavailable("this system has no cgroup v2 hierarchy (cgroup v1 only)")
        base = os.path.normpath(os.path.join(mount, own.lstrip("/")))
        if not os.path.isfile(os.path.join(base, "cgroup.controllers")):
            raise Unavailable(f"the manager's cgroup {own} is not visible under {mount}")
        return cls(base, manager_pid)

    # ---- preparing the tree ----
    def _prepare(self, wanted: set[str]) -> None:
        missing = wanted - self.enabled
        if not missing:
            return
        offered = set(_read(os.path.join(self.base, "cgroup.controllers")).split())
        absent = sorted(missing - offered)
        if absent:
            raise Unavailable(
                f"the cgroup v2 controller{'s' if len(absent) > 1 else ''} {', '.join(absent)} "
                f"{'are' if len(absent) > 1 else 'is'} not available in {self.base} (it offers: "
                f"{' '.join(sorted(offered)) or 'none'}); on a cgroup v1 or hybrid system the "
                "controllers belong to v1")
        if not os.access(self.base, os.W_OK):
            raise Unavailable(f"{self.base} is not writable by the manager (delegate it, e.g. "
                              "systemd Delegate=yes)")
        try:
            delegated = set(_read(os.path.join(self.base, "cgroup.subtree_control")).split())
            if missing - delegated:
                self._empty_base()
                _write(os.path.join(self.base, "cgroup.subtree_control"),
                       " ".join(f"+{c}" for c in sorted(missing - delegated)))
            os.makedirs(self.top, exist_ok=True)
            _write(os.path.join(self.top, "cgroup.subtree_control"),
                   " ".join(f"+{c}" for c in sorted(missing)))
        except OSError as exc:
            raise Unavailable(f"cannot set up cgroups under {self.base}: "
                              f"{exc.strerror or exc} ({getattr(exc, 'filename', '') or ''})") from None
        self.enabled |= missing

    def _is_root(self) -> bool:
        # Only the root cgroup lacks cgroup.type; it may hold processes and delegate at once.
        return not os.path.exists(os.path.join(self.base, "cgroup.type"))

    def _empty_base(self) -> None:
        """Move the manager and its children from the base into <top>/manager, so the base may
        hand controllers down. Refuses when the base holds processes that are not ours."""
        if self._is_root():
            return
        procs = [int(p) for p in _read(os.path.join(self.base, "cgroup.procs")).split()]
        if not procs:
            return
        ours = self._own_pids if self._own_pids is not None else _descendants(self.manager_pid)
        foreign = [p for p in procs if p not in ours]
        if foreign:
            raise Unavailable(
                f"{self.base} holds processes other than wasp's (e.g. pid {foreign[0]}), so cgroup "
                "v2 cannot hand controllers down from it; run wasp in a cgroup of its own "
                "(systemd: a service with Delegate=yes)")
        leaf = os.path.join(self.top, "manager")
        os.makedirs(leaf, exist_ok=True)
        for pid in procs:
            try:
                _write(os.path.join(leaf, "cgroup.procs"), str(pid))
            except ProcessLookupError:
                pass  # it exited meanwhile

    # ---- pools ----
    def pool_cgroup(self, pool: str, limits: PoolLimits) -> str:
        """Create (or update) the pool's cgroup with its limits. Returns its folder. Raises
        Unavailable."""
        self._prepare(limits.controllers)
        path = os.path.join(self.top, dir_name(pool))
        try:
            os.makedirs(path, exist_ok=True)
            for name, value in limits.files().items():
                _write(os.path.join(path, name), value)
            # Limits the pool no longer asks for go back to the kernel's defaults.
            for name, default in (("memory.max", "max"), ("cpu.max", f"max {CPU_PERIOD_US}"),
                                  ("cpu.weight", "100")):
                if name not in limits.files() and os.path.exists(os.path.join(path, name)):
                    _write(os.path.join(path, name), default)
        except OSError as exc:
            raise Unavailable(f"cannot set the limits in {path}: {exc.strerror or exc}") from None
        self.pools[pool] = path
        return path

    @staticmethod
    def add(path: str, pid: int) -> None:
        """Move a process into a cgroup. Raises OSError."""
        _write(os.path.join(path, "cgroup.procs"), str(pid))

    def remove(self, pool: str) -> None:
        """Remove a pool's cgroup once its workers are gone (a busy one stays)."""
        path = self.pools.pop(pool, None)
        if path is not None:
            _rmdir(path)

    def close(self) -> None:
        for pool in list(self.pools):
            self.remove(pool)
        _rmdir(self.top)  # fails while the manager sits in <top>/manager: the service manager cleans up


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def _descendants(pid: int) -> set[int]:
    import psutil

    try:
        proc = psutil.Process(pid)
        return {pid, *(p.pid for p in proc.children(recursive=True))}
    except psutil.Error:
        return {pid}
