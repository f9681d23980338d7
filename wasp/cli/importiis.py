"""`wasp import-iis applicationHost.config [--web-config DIR ...] [--root /srv/iis] -o wasp.toml`.

Reads the files (safely: wasp/config/iisxml.py), finds each application's web.config below its
mapped physical path (and below every --web-config DIR), converts them with
wasp/config/iisimport.py, then writes wasp.toml, a web.toml beside each web.config that had
something wasp keeps, and the report (printed, and written as <output>.import-report.txt).
"""

from __future__ import annotations

import os
import sys

from wasp.config import iisimport, tomlwrite
from wasp.config.iisxml import XmlRefused, parse

#: Bounds of the walks below a physical path (a huge share must not hang the import).
MAX_FILES = 20000
MAX_WEB_CONFIGS = 2000


def register(sub) -> None:
    p = sub.add_parser("import-iis", help="convert an IIS applicationHost.config (and web.config files) "
                                          "to wasp.toml")
    p.add_argument("apphost", metavar="applicationHost.config")
    p.add_argument("-o", "--output", default="wasp.toml", metavar="FILE", help="where to write (default ./wasp.toml)")
    p.add_argument("--root", default="/srv/iis", metavar="DIR",
                   help="where the Windows drives are on Linux: C:\\inetpub -> DIR/c/inetpub (default /srv/iis)")
    p.add_argument("--web-config", action="append", default=[], metavar="DIR",
                   help="also read the web.config files below DIR (each must lie in an application's "
                        "physical path under --root); repeatable")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="the value of a %%VARIABLE%% (default mapping: docs/import-iis.md); repeatable")
    p.add_argument("--no-web-toml", action="store_true", help="do not write web.toml files")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file or web.toml")
    p.set_defaults(handler=cmd_import_iis)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(64 * 1024 * 1024 + 1)


def _case_resolver(root: str):
    """Windows paths are case-insensitive: map each component to the spelling on disk, if any."""
    def resolve(path: str) -> str:
        if not path.startswith(root.rstrip("/") + "/"):
            return path
        current = root.rstrip("/") or "/"
        for part in path[len(current):].strip("/").split("/"):
            candidate = os.path.join(current, part)
            if not os.path.exists(candidate) and os.path.isdir(current):
                try:
                    names = os.listdir(current)
                except OSError:
                    names = []
                match = [n for n in names if n.lower() == part.lower()]
                if len(match) == 1:
                    candidate = os.path.join(current, match[0])
            current = candidate
        return current
    return resolve


def _scan(folder: str, found: dict, extensions: dict, key: str) -> None:
    files = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            files += 1
            if files > MAX_FILES:
                return
            ext = os.path.splitext(name)[1].lower()
            if ext:
                extensions.setdefault(key, set()).add(ext)
            if name.lower() == "web.config" and len(found) < MAX_WEB_CONFIGS:
                found.setdefault(dirpath, os.path.join(dirpath, name))


def _write(path: str, text: str) -> None:
    """Write without following a symlink at `path` (a web.toml planted as a link to a file
    elsewhere is not overwritten through it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def cmd_import_iis(args) -> int:
    try:
        apphost = parse(_read(args.apphost), args.apphost)
    except (OSError, XmlRefused) as exc:
        print(f"wasp import-iis: {exc}", file=sys.stderr)
        return 1
    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"wasp import-iis: --env {item!r}: expected NAME=VALUE", file=sys.stderr)
            return 2
        env[name.strip("%")] = value
    root = os.path.abspath(args.root)
    resolver = _case_resolver(root) if os.path.isdir(root) else None
    # First pass: where the applications are, so their web.config files can be found.
    first = iisimport.convert(apphost, root=root, env=env, resolve=resolver, apphost_name=args.apphost)
    found: dict[str, str] = {}
    extensions: dict[str, set[str]] = {}
    for linux, _win in first.physical_paths:
        if os.path.isdir(linux):
            _scan(linux, found, extensions, linux)
    for extra in args.web_config:
        if os.path.isdir(extra):
            _scan(os.path.abspath(extra), found, {}, "")
        else:
            print(f"wasp import-iis: --web-config {extra}: not a folder", file=sys.stderr)
            return 2
    web_configs = {}
    problems = []
    for folder, file in sorted(found.items()):
        try:
            web_configs[folder] = (file, parse(_read(file), file))
        except (OSError, XmlRefused) as exc:
            problems.append(str(exc))
    result = iisimport.convert(apphost, web_configs, root=root, env=env, resolve=resolver,
                               apphost_name=args.apphost, file_extensions=extensions)
    for p in problems:
        result.report.drop(p.split(": ", 1)[0], "web.config", p.split(": ", 1)[-1] + "; skipped")
    for linux, win in result.physical_paths:
        if not os.path.isdir(linux):
            result.report.action(args.apphost, f"physicalPath {win}",
                                 f"copy its content to {linux} (wasp validate needs the folder)")
    if not result.config.get("sites"):
        print(result.report.text())
        print("wasp import-iis: no site wasp can serve in this file; nothing written", file=sys.stderr)
        return 1
    output = os.path.abspath(args.output)
    targets = [output] + ([] if args.no_web_toml else [os.path.join(d, "web.toml") for d in result.web_tomls])
    if not args.force:
        existing = [t for t in targets if os.path.exists(t)]
        if existing:
            print(f"wasp import-iis: {', '.join(existing)} exists; --force overwrites", file=sys.stderr)
            return 1
    header = [f"Imported from {os.path.abspath(args.apphost)} by wasp import-iis.",
              f"Windows drives are under {root} (C:\\ -> {root}/c/); report: "
              f"{os.path.basename(output)}.import-report.txt"]
    text = tomlwrite.dumps(result.config, header)
    links = [t for t in targets if os.path.islink(t)]
    if links:
        print(f"wasp import-iis: {', '.join(links)} is a symbolic link; not written through", file=sys.stderr)
        return 1
    if args.no_web_toml:
        for folder in result.web_tomls:
            result.report.drop(os.path.join(folder, "web.config"), "web.toml", "not written (--no-web-toml)")
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    try:
        _write(output, text)
        if not args.no_web_toml:
            for folder, tables in result.web_tomls.items():
                _write(os.path.join(folder, "web.toml"),
                       tomlwrite.dumps(tables, ["Imported from web.config by wasp import-iis."]))
        _write(output + ".import-report.txt", result.report.text())
    except OSError as exc:
        print(f"wasp import-iis: {exc}", file=sys.stderr)
        return 1
    print(result.report.text())
    print(f"wrote {output}" + (f" and {len(result.web_tomls)} web.toml file(s)"
                               if result.web_tomls and not args.no_web_toml else ""))
    print(f"next: wasp validate -c {output}")
    return 0
