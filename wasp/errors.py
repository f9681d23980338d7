"""Error roots shared by every process.

An HttpError carries the status (and IIS substatus) it becomes; exactly one place per process turns
it into a response. Library code raises these and never exits or prints.
"""

from __future__ import annotations


class WaspError(Exception):
    """Root of every error wasp raises on purpose."""


class ConfigError(WaspError):
    """The configuration is invalid. `problems` holds every problem found, each naming its key."""

    def __init__(self, problems: list["ConfigProblem"]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigProblem:
    __slots__ = ("path", "message", "line", "file")

    def __init__(self, path: str, message: str, line: int | None = None, file: str | None = None):
        self.path = path
        self.message = message
        self.line = line
        self.file = file

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        elif self.line:
            where = f"line {self.line}: "
        return f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self.path!r}, {self.message!r}, line={self.line!r})"


class HttpError(WaspError):
    """An error that is answered with an HTTP status. `reason` is HTTP.sys's HTTPERR reason phrase."""

    status = 500
    substatus = 0
    reason = "Internal"

    def __init__(self, detail: str = "", *, status: int | None = None, substatus: int | None = None,
                 reason: str | None = None):
        super().__init__(detail)
        if status is not None:
            self.status = status
        if substatus is not None:
            self.substatus = substatus
        if reason is not None:
            self.reason = reason
        self.detail = detail


class BadRequest(HttpError):
    status = 400
    reason = "BadRequest"


class NotFound(HttpError):
    status = 404
    reason = "NotFound"


class Forbidden(HttpError):
    status = 403
    reason = "Forbidden"


class ServiceUnavailable(HttpError):
    status = 503
    reason = "N/A"


class AppLoadError(WaspError):
    """A worker could not import or build one of its pool's apps."""
