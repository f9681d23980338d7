"""front, manager and worker never import each other; they share config, wire, common and errors."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "wasp"
ROLES = ("front", "manager", "worker")
SHARED = ("config", "wire", "common", "errors")


def imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                package = path.relative_to(ROOT.parent).with_suffix("").parts[:-node.level]
                base = ".".join(package + ((node.module,) if node.module else ()))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("role", ROLES)
def test_role_imports_no_other_role(role):
    files = sorted((ROOT / role).rglob("*.py"))
    assert files, f"wasp/{role} has no modules"
    offenders = []
    for path in files:
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] == "wasp" and len(parts) > 1 and parts[1] in ROLES and parts[1] != role:
                offenders.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("shared", SHARED)
def test_shared_code_imports_no_role(shared):
    target = ROOT / shared
    files = sorted(target.rglob("*.py")) if target.is_dir() else [ROOT / f"{shared}.py"]
    offenders = [
        f"{path.relative_to(ROOT.parent)} imports {name}"
        for path in files
        for name in imported_modules(path)
        if name.split(".")[:2][-1] in ROLES and name.startswith("wasp.")
    ]
    assert not offenders, "\n".join(offenders)


def test_detector_sees_a_cross_import(tmp_path, monkeypatch):
    # The check above must be able to fail: feed it a module that imports another role.
    bad = tmp_path / "wasp" / "front" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from wasp.worker import main\nfrom ..manager import pools\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path / "wasp")
    names = imported_modules(bad)
    assert "wasp.worker.main" in names
    assert "wasp.manager.pools" in names
