"""IIS system.webServer/fastCgi: the FastCGI applications a worker runs (iis-behaviour.md §2.16).

An application is keyed by `full_path` and `arguments`, as in IIS, and is what a handler entry's
`script_processor = "/usr/bin/php-cgi|-d opcache.enable=1"` names (the part after "|" is
`arguments`). The worker that first needs one starts its processes on demand, each listening on
its own Unix socket (IIS's NamedPipe protocol), and owns them: they are killed when the worker
exits, recycled after `instance_max_requests`, stopped after `idle_timeout`, and when they fail
more than `rapid_fails_per_minute` times in a minute the application is refused (503) until the
minute has passed. A `script_processor` with no application entry runs with IIS's defaults.

An external FastCGI server (php-fpm) needs no entry: `script_processor = "unix:/run/php/fpm.sock"`
or `"127.0.0.1:9000"`; wasp only connects to it (`request_timeout`, `activity_timeout`,
`stderr_mode`, `keep_connections`, `idle_timeout` and `queue_length` come from an entry whose
full_path is that address, if there is one).

IIS makes the section AppHostOnly; wasp accepts it at any wasp.toml level (a web.toml only where a
location unlocks it) and keys the running processes by (full_path, arguments, settings).
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from wasp.config.model import Duration, doc
from wasp.config.sections import Section, collection, section

StderrMode = Literal["ReturnStdErrIn500", "ReturnGeneric500", "IgnoreAndReturn200", "TerminateProcess"]


class EnvironmentVariable(Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, Meta(pattern=r"^[^=\x00]+$"), doc("The variable's name.")]
    value: Annotated[str, Meta(pattern=r"^[^\x00]*$"), doc("Its value.")] = ""


class FastCgiApplication(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<fastCgi><application>`."""

    full_path: Annotated[str, Meta(min_length=1, pattern=r"^[^\x00|]+$"), doc(
        "The executable (\"/usr/bin/php-cgi\"), or the address of an external FastCGI server "
        "(\"unix:/run/php/fpm.sock\", \"127.0.0.1:9000\")."
    )]
    arguments: Annotated[str, Meta(pattern=r"^[^\x00]*$"), doc(
        "Its command-line arguments, split as a shell would (no expansion)."
    )] = ""
    max_instances: Annotated[int, Meta(ge=0, le=10000), doc(
        "Most processes at once; 0 = automatic (twice the CPUs, at least 4)."
    )] = 0
    instance_max_requests: Annotated[int, Meta(ge=1, le=10000000), doc(
        "A process is recycled after this many requests."
    )] = 200
    idle_timeout: Annotated[Duration, Meta(ge=10, le=604800), doc(
        "A process with no request for this long is stopped."
    )] = Duration(300)
    activity_timeout: Annotated[Duration, Meta(ge=10, le=3600), doc(
        "A request whose process sends nothing for this long is ended (500, the process killed). "
        "IIS 7.5 and later's default, 70 s (IIS 7.0: 30 s)."
    )] = Duration(70)
    request_timeout: Annotated[Duration, Meta(ge=10, le=604800), doc(
        "The longest one request may take (500, the process killed)."
    )] = Duration(90)
    queue_length: Annotated[int, Meta(ge=1, le=10000000), doc(
        "Requests that may wait for a free process; one more gets 503.4."
    )] = 1000
    rapid_fails_per_minute: Annotated[int, Meta(ge=1, le=2147483647), doc(
        "A process exiting (or failing to start) more often than this in a minute makes the "
        "application refuse requests (503) for the rest of that minute."
    )] = 10
    stderr_mode: Annotated[StderrMode, doc(
        "What a request whose process wrote to stderr gets: ReturnStdErrIn500 (a 500 with the "
        "text), ReturnGeneric500, IgnoreAndReturn200 (the normal response; stderr logged), "
        "TerminateProcess (a 500 and the process killed)."
    )] = "ReturnStdErrIn500"
    signal_before_terminate_seconds: Annotated[int, Meta(ge=0, le=60), doc(
        "When > 0 a process being stopped gets SIGTERM and this long to exit before SIGKILL "
        "(IIS signals _FCGI_SHUTDOWN_EVENT_); 0 = SIGKILL at once."
    )] = 0
    protocol: Annotated[Literal["NamedPipe", "Tcp"], doc(
        "NamedPipe: each process listens on its own Unix socket (Linux's named pipe). Tcp is "
        "accepted and also uses Unix sockets (nothing outside the worker can reach them)."
    )] = "NamedPipe"
    flush_named_pipe: Annotated[bool, doc("IIS's flushNamedPipe; nothing to flush on Linux: ignored.")] = False
    keep_connections: Annotated[int, Meta(ge=0, le=10000), doc(
        "An external FastCGI server (an address) only: when > 0 each worker keeps its "
        "connections to it open (FCGI_KEEP_CONN) and has at most this many, busy or idle; a "
        "request finding them all busy waits (queue_length, then 503.4). A kept connection holds "
        "a php-fpm child: keep workers x keep_connections <= pm.max_children. 0: a new "
        "connection per request, closed after it (nginx's default). Idle ones close after "
        "idle_timeout."
    )] = 0
    monitor_changes_to: Annotated[str, Meta(pattern=r"^[^\x00]*$"), doc(
        "A file (php.ini) whose change recycles the application's processes (checked every second)."
    )] = ""
    environment_variables: Annotated[list[EnvironmentVariable], collection(key="name"), doc(
        "Environment of the processes, after the worker's own (`[{ name = \"PHP_FCGI_MAX_REQUESTS\", value = \"0\" }]`)."
    )] = field(default_factory=list)


@section("fast_cgi", override_mode_default="Deny", default_collection="applications")
class FastCgi(Section):
    """IIS system.webServer/fastCgi."""

    applications: Annotated[list[FastCgiApplication], collection(key=("full_path", "arguments")), doc(
        "The FastCGI applications: `fast_cgi = [ { full_path = \"/usr/bin/php-cgi\", max_instances = 8 } ]`."
    )] = field(default_factory=list)
