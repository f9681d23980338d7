"""Per-pool cgroup v2 limits: the mapping from IIS settings, and the tree, on a fake cgroupfs."""

from __future__ import annotations

import os

import pytest

from wasp.config.model import Cpu, Pool
from wasp.manager import cgroups
from wasp.manager.cgroups import CgroupTree, PoolLimits, Unavailable

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def pool(**kw) -> Pool:
    return Pool(name="P", **kw)


def test_limits_of_maps_iis_settings():
    assert cgroups.limits_of(pool(), 4) is None
    assert cgroups.limits_of(pool(cpu=Cpu(limit=50000, action="no_action")), 4) is None
    assert cgroups.limits_of(pool(memory_limit=256 << 20), 4) == PoolLimits(memory_max=256 << 20)
    # 50 % of a 4-core machine is two cores: a quota of two periods.
    assert cgroups.limits_of(pool(cpu=Cpu(limit=50000, action="throttle")), 4).cpu_max == "200000 100000"
    assert cgroups.limits_of(pool(cpu=Cpu(limit=1, action="throttle")), 1).cpu_max == "1000 100000"
    assert cgroups.limits_of(pool(cpu=Cpu(limit=25000, action="throttle_under_load")), 2).cpu_weight == 25


def test_limits_name_their_files_and_controllers():
    limits = PoolLimits(memory_max=1024, cpu_max="5000 100000")
    assert limits.controllers == {"memory", "cpu"}
    assert limits.files() == {"memory.max": "1024", "cpu.max": "5000 100000"}
    assert limits.describe() == "memory.max 1024, cpu.max 5000 100000"


def test_mount_and_own_cgroup_parsing():
    assert cgroups.cgroup2_mount(HYBRID_MOUNTINFO) == "/sys/fs/cgroup/unified"
    assert cgroups.cgroup2_mount(HYBRID_MOUNTINFO.splitlines()[1]) is None
    assert cgroups.own_cgroup("4:memory:/x\n0::/system.slice/wasp.service\n") == "/system.slice/wasp.service"
    assert cgroups.own_cgroup("0::/\n") == "/"
    assert cgroups.own_cgroup("4:memory:/x\n") is None


def test_dir_names_are_safe_and_distinct():
    assert cgroups.dir_name("DefaultAppPool") == "DefaultAppPool"
    odd = cgroups.dir_name("My Pool/1")
    assert "/" not in odd and " " not in odd and odd != cgroups.dir_name("My_Pool_1")
    assert cgroups.dir_name("manager") != "manager"


def fake_cgroup(path, controllers="cpu memory pids", procs="", root=False):
    os.makedirs(path, exist_ok=True)
    files = {"cgroup.controllers": controllers, "cgroup.subtree_control": "", "cgroup.procs": procs}
    if not root:
        files["cgroup.type"] = "domain"
    for name, text in files.items():
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    return str(path)


def read(*parts) -> str:
    with open(os.path.join(*parts)) as f:
        return f.read()


def test_pool_cgroup_in_the_root_cgroup(tmp_path):
    base = fake_cgroup(tmp_path / "cg", procs="1\n77\n", root=True)
    tree = CgroupTree(base, 77)
    path = tree.pool_cgroup("P", PoolLimits(memory_max=1 << 30, cpu_max="50000 100000"))
    assert path == os.path.join(base, "wasp.77", "P")
    assert read(base, "cgroup.subtree_control") == "+cpu +memory"
    assert read(base, "wasp.77", "cgroup.subtree_control") == "+cpu +memory"
    assert read(path, "memory.max") == str(1 << 30) and read(path, "cpu.max") == "50000 100000"
    assert not os.path.exists(os.path.join(base, "wasp.77", "manager"))  # the root may hold processes
    tree.add(path, 1234)
    assert read(path, "cgroup.procs") == "1234"


def test_a_non_root_base_is_emptied_of_the_managers_own_processes(tmp_path):
    base = fake_cgroup(tmp_path / "svc", procs="77\n78\n")
    tree = CgroupTree(base, 77, own_pids={77, 78})
    tree.pool_cgroup("P", PoolLimits(memory_max=100))
    # A real cgroupfs takes one pid per write; the fake file keeps the last.
    assert read(base, "wasp.77", "manager", "cgroup.procs") == "78"


def test_foreign_processes_in_the_base_make_limits_unavailable(tmp_path):
    base = fake_cgroup(tmp_path / "shared", procs="77\n5\n")
    tree = CgroupTree(base, 77, own_pids={77})
    with pytest.raises(Unavailable, match="other than wasp's"):
        tree.pool_cgroup("P", PoolLimits(memory_max=100))


def test_a_missing_controller_is_named(tmp_path):
    base = fake_cgroup(tmp_path / "v1ish", controllers="hugetlb", root=True)
    with pytest.raises(Unavailable, match=r"controller memory is not available .*offers: hugetlb"):
        CgroupTree(base, 1).pool_cgroup("P", PoolLimits(memory_max=100))


def test_limits_dropped_on_reload_go_back_to_defaults(tmp_path):
    base = fake_cgroup(tmp_path / "cg", root=True)
    tree = CgroupTree(base, 9)
    path = tree.pool_cgroup("P", PoolLimits(memory_max=100, cpu_max="1000 100000"))
    tree.pool_cgroup("P", PoolLimits(memory_max=200))
    assert read(path, "memory.max") == "200" and read(path, "cpu.max") == "max 100000"


def test_discover_reads_proc(tmp_path):
    mount = tmp_path / "unified"
    fake_cgroup(mount / "system.slice" / "wasp.service")
    proc = tmp_path / "proc" / "self"
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text("4:memory:/x\n0::/system.slice/wasp.service\n")
    (proc / "mountinfo").write_text(f"41 31 0:38 / {mount} rw,relatime - cgroup2 cgroup2 rw\n")
    tree = CgroupTree.discover(5, proc=str(tmp_path / "proc"))
    assert tree.base == str(mount / "system.slice" / "wasp.service")
    (proc / "cgroup").write_text("4:memory:/x\n")
    with pytest.raises(Unavailable, match="no cgroup v2"):
        CgroupTree.discover(5, proc=str(tmp_path / "proc"))


def test_close_removes_empty_cgroups(tmp_path):
    base = fake_cgroup(tmp_path / "cg", root=True)
    tree = CgroupTree(base, 9)
    path = tree.pool_cgroup("P", PoolLimits(memory_max=100))
    for name in os.listdir(path):  # a real cgroupfs has no regular files to delete
        os.unlink(os.path.join(path, name))
    os.unlink(os.path.join(base, "wasp.9", "cgroup.subtree_control"))
    tree.close()
    assert not os.path.exists(os.path.join(base, "wasp.9"))
