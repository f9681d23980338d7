"""IIS system.webServer/httpErrors as a section (the Struct is model.HttpErrors, which the site
and application tables have always had; the front and the error pages read it there).

Checks here: an `<error>` entry's path must suit its response_mode (a local URL for ExecuteURL,
an absolute http(s) URL or a site path for Redirect, no control characters anywhere, so a Location
can never carry a header of its own), and `delegation_problems` is what a web.toml may not say:
IIS's install locks allowAbsolutePathsWhenDelegated and defaultPath, and without the former a
delegated File page may not leave the application's content.
"""

from __future__ import annotations

import os
import re

from wasp.config.model import ErrorPage, HttpErrors
from wasp.config.sections import check, register

register("http_errors", HttpErrors, override_mode_default="Allow")

#: Control characters (CR, LF, NUL, ...) and DEL: never in a path, URL or header value.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ABSOLUTE_URL = re.compile(r"^https?://[^/\\?#@\s]+(?:[/?#]|$)", re.IGNORECASE)


def url_problem(mode: str, path: str) -> str | None:
    """Why `path` cannot be a `mode` page (None when it can)."""
    if _CONTROL.search(path):
        return "a control character (CR, LF, NUL...) is not allowed"
    if mode == "ExecuteURL":
        if not path.startswith("/") or path.startswith("//") or "\\" in path:
            return (f"\"{path}\" is not a URL path of this application (ExecuteURL runs a local "
                    "URL, \"/errors/404.html\")")
        if any(segment in (".", "..") for segment in path.split("?", 1)[0].split("/")):
            return f"\"{path}\" has a \".\" or \"..\" segment"
    elif mode == "Redirect":
        if path.startswith("/"):
            if path.startswith("//") or path.startswith("/\\"):
                return f"\"{path}\" is not a path of this site (\"//\" names another host)"
        elif not _ABSOLUTE_URL.match(path):
            return (f"\"{path}\" is neither an absolute http(s) URL nor a path of this site "
                    "starting with \"/\"")
    return None


@check(ErrorPage)
def _check_page(page: ErrorPage, path: str, add) -> None:
    problem = url_problem(page.response_mode, page.path)
    if problem:
        add(f"{path}.path", problem)
    if _CONTROL.search(page.prefix_language_file_path):
        add(f"{path}.prefix_language_file_path", "a control character is not allowed")


@check(HttpErrors, "default_path")
def _check_default_path(value: str, path: str, add) -> None:
    if _CONTROL.search(value):
        add(path, "a control character (CR, LF, NUL...) is not allowed")


def delegation_problems(table: dict, allow_absolute: bool) -> list[tuple[str, str]]:
    """What a web.toml's raw `http_errors` table may not set: (dotted path, message)."""
    found = []
    for key in ("allow_absolute_paths_when_delegated", "default_path"):
        if key in table:
            found.append((f"http_errors.{key}", f"{key} can only be set in wasp.toml (IIS locks it)"))
    if allow_absolute:
        return found
    errors = table.get("errors")
    entries = errors.get("add", ()) if isinstance(errors, dict) else errors
    for i, entry in enumerate(entries if isinstance(entries, list) else ()):
        if not isinstance(entry, dict) or entry.get("response_mode", "File") != "File":
            continue
        where = f"http_errors.errors[{i}]"
        if entry.get("prefix_language_file_path"):
            found.append((f"{where}.prefix_language_file_path",
                          "a web.toml's File page cannot name a prefix_language_file_path without "
                          "allow_absolute_paths_when_delegated in wasp.toml"))
        path = entry.get("path")
        if isinstance(path, str) and (os.path.isabs(path) or ".." in path.replace("\\", "/").split("/")):
            found.append((f"{where}.path", "a web.toml's File page must be a file of the application's "
                                           "content (no absolute path, no \"..\") without "
                                           "allow_absolute_paths_when_delegated in wasp.toml"))
    return found
