"""The one model of wasp.toml.

Every setting is declared here once: its type, default and doc (the `Meta` description). The
loader (`load.py`) decodes strictly against these Structs, `docs/configuration.md` is derived from
them, and every process reads its settings from a decoded `Config` (or a part of one sent to it).

Names follow IIS's applicationHost.config in snake_case; defaults are IIS's
(`shared/reference/iis-behaviour.md` §1.1–1.3). Durations are floats of seconds (written "90s",
"20m", "29h", "1d", "250ms" or a bare number of seconds), sizes are ints of bytes ("512MB", "64KiB",
a bare number of bytes).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct, field

from wasp.config.collection import collection


class Duration(float):
    """Seconds, written in the file as "90s", "20m", "29h", "1d", "250ms" or a number."""


class Size(int):
    """Bytes, written in the file as "512MB", "64KiB", "1GB" or a number."""


def doc(text: str) -> Meta:
    return Meta(description=text)


class _Strict(Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=False):
    pass


class ServerSettings(_Strict):
    run_dir: Annotated[str, doc("Admin socket and pid file. Relative to the config file.")] = "run"
    log_dir: Annotated[str, doc(
        "W3C logs (W3SVC<site id>/u_exYYMMDD.log), httperr/, events. Relative to the config file."
    )] = "logs"
    server_header: Annotated[str, doc(
        "Server header on responses the app does not name one in; \"\" sends none."
    )] = "wasp"
    front_processes: Annotated[Annotated[int, Meta(ge=1, le=64)] | None, doc(
        "Front processes (HTTP.sys) serving the same sockets, 1..64; absent = one per 4 CPUs the "
        "manager may use, at least 1. Pools' queue bounds, workers' capacity and connection "
        "limits hold across all of them (docs/internals.md, \"Several fronts\"). A reload "
        "cannot change it: restart the server."
    )] = None
    shutdown_delay: Annotated[Duration, doc(
        "On a graceful stop, keep accepting and serving this long while every site's "
        "`health_url` answers 503, so load balancers take the server out before its ports "
        "close; then the ports close and requests in flight finish (the pools' "
        "shutdown_time_limit counts from then). 0 = close the ports at once."
    )] = Duration(0)
    trusted_proxies: Annotated[list[str], doc(
        "Addresses and CIDR networks (\"10.0.0.0/8\", \"::1\") of reverse proxies and load "
        "balancers whose X-Forwarded-For, X-Forwarded-Proto, Forwarded and PROXY protocol headers "
        "set the client address and scheme; from any other peer those are ignored. A Unix socket "
        "peer is 127.0.0.1. Empty = trust nobody."
    )] = field(default_factory=list)


class Limits(_Strict):
    """HTTP.sys limits and timeouts (webLimits, site limits and HTTP.sys registry parameters)."""

    connection_timeout: Annotated[Duration, doc(
        "Idle keep-alive connection, entity-body gap and pool-queue wait limit (HTTP.sys "
        "IdleConnection / EntityBody / RequestQueue timers)."
    )] = Duration(120)
    header_wait_timeout: Annotated[Duration, doc(
        "Time allowed to receive a complete request head (HTTP.sys HeaderWait)."
    )] = Duration(120)
    max_request_bytes: Annotated[Size, doc(
        "Request line plus headers, in bytes (HTTP.sys MaxRequestBytes); over it: 431."
    )] = Size(16384)
    max_field_length: Annotated[Size, doc(
        "One header line, in bytes (HTTP.sys MaxFieldLength); over it: 431."
    )] = Size(16384)
    max_url: Annotated[Size, doc("Request target length (HTTP.sys URL limit); over it: 414.")] = Size(16384)
    max_allowed_content_length: Annotated[Size, doc(
        "requestFiltering maxAllowedContentLength; over it: 413.1. 0 disables the check."
    )] = Size(0)
    max_connections: Annotated[int, Meta(ge=0, description=(
        "Open client connections across all sites; over it: 503 ConnLimit; 0 = unlimited."))] = 0
    min_bytes_per_second: Annotated[int, Meta(ge=0, description=(
        "webLimits minBytesPerSecond: a client that takes a response slower than this is cut "
        "(HTTPERR Timer_MinBytesPerSecond) once the bytes sent so far should have reached it at "
        "this rate, plus 5 s; 0 disables."))] = 240
    max_global_bandwidth: Annotated[Size, doc(
        "webLimits maxGlobalBandwidth: bytes per second the front sends to all clients together; "
        "0 = unlimited (IIS's 4294967295). At least 1024 when set."
    )] = Size(0)
    http2_max_concurrent_streams: Annotated[int, Meta(ge=1, le=10000, description=(
        "HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: requests one HTTP/2 connection may have in flight "
        "(HTTP.sys Http2MaxConcurrentClientStreams)."))] = 100


class ProcessModel(_Strict):
    idle_timeout: Annotated[Duration, doc("Stop a pool's workers after this long with no request; 0 disables.")] = Duration(1200)
    ping_interval: Annotated[Duration, doc("How often the manager pings each worker; 0 disables pinging.")] = Duration(30)
    ping_response_time: Annotated[Duration, doc("A worker that has not answered a ping in this time is replaced.")] = Duration(90)
    startup_time_limit: Annotated[Duration, doc("A worker not ready in this time is killed and counts as a failure.")] = Duration(90)
    shutdown_time_limit: Annotated[Duration, doc("A draining worker still alive after this is killed (SIGKILL).")] = Duration(90)


class Recycling(_Strict):
    time: Annotated[Duration, doc("Recycle a worker after it has run this long; 0 disables.")] = Duration(29 * 3600)
    requests: Annotated[int, doc("Recycle a worker after this many requests; 0 disables.")] = 0
    schedule: Annotated[list[str], doc("Local times of day (\"HH:MM\") at which the pool recycles.")] = field(default_factory=list)
    memory: Annotated[Size, doc("Recycle when a worker's virtual memory exceeds this; 0 disables.")] = Size(0)
    private_memory: Annotated[Size, doc("Recycle when a worker's private memory (USS) exceeds this; 0 disables.")] = Size(0)
    disallow_overlapping_rotation: Annotated[bool, doc("Stop the old worker before starting the new one.")] = False
    disallow_rotation_on_config_change: Annotated[bool, doc("Do not recycle when this pool's config changes.")] = False


class Failure(_Strict):
    rapid_fail_protection: Annotated[bool, doc("Stop the pool after too many worker failures.")] = True
    rapid_fail_protection_interval: Annotated[Duration, doc("Window in which failures are counted.")] = Duration(300)
    rapid_fail_protection_max_crashes: Annotated[int, doc("Failures within the window that stop the pool.")] = 5
    load_balancer_capabilities: Annotated[Literal["http_level", "tcp_level"], doc(
        "http_level answers 503 when the pool cannot take a request; tcp_level closes the connection."
    )] = "http_level"
    orphan_worker_process: Annotated[bool, doc(
        "Leave a failing worker running, detached from the pool, for debugging, instead of killing it."
    )] = False
    orphan_action_exe: Annotated[str, doc("Command run when a worker is orphaned; %1% is replaced by its PID.")] = ""
    auto_shutdown_exe: Annotated[str, doc("Command run when rapid-fail protection stops the pool; %1% is the pool name.")] = ""


class Cpu(_Strict):
    limit: Annotated[int, Meta(ge=0, le=100000, description=(
        "CPU limit in 1/1000 of a percent of one core over reset_interval (IIS cpu.limit); 0 = none."))] = 0
    action: Annotated[Literal["no_action", "kill_w3wp", "throttle", "throttle_under_load"], doc(
        "What happens over the limit: log only, kill the worker, or throttle with cgroup v2 cpu.max."
    )] = "no_action"
    reset_interval: Annotated[Duration, doc("Window over which CPU use is measured.")] = Duration(300)


class Identity(_Strict):
    user: Annotated[str, doc("User the pool's workers run as (when the manager runs as root); \"\" = the default.")] = ""
    group: Annotated[str, doc("Group the pool's workers run as; \"\" = the user's primary group.")] = ""


class Pool(_Strict):
    name: Annotated[str, doc("Unique pool name.")]
    queue_length: Annotated[int, Meta(ge=10, le=65535, description=(
        "Requests the front holds for this pool; when full, 503 QueueFull."))] = 1000
    max_processes: Annotated[int, Meta(ge=1, le=64, description="Workers in the pool (>1 = web garden).")] = 1
    start_mode: Annotated[Literal["on_demand", "always_running"], doc(
        "on_demand starts workers at the first request; always_running at start-up."
    )] = "on_demand"
    auto_start: Annotated[bool, doc("Start the pool when the server starts (otherwise it is Stopped).")] = True
    threads: Annotated[int, Meta(ge=1, le=1024, description="WSGI threads per worker.")] = 16
    max_concurrent_requests: Annotated[int, Meta(ge=1, le=100000, description=(
        "Requests one worker takes at once when the pool hosts only ASGI apps."))] = 256
    environment_variables: Annotated[dict[str, str], doc("Extra environment for the pool's workers.")] = field(default_factory=dict)
    python: Annotated[str, doc(
        "Another interpreter for this pool's workers; \"\" = the server's own. One of the server's "
        "Python version gets wasp and its dependencies from the server; another needs wasp-server "
        "installed. For a venv's packages, `virtualenv` is simpler."
    )] = ""
    virtualenv: Annotated[str, doc(
        "A virtualenv (python -m venv) whose site-packages the pool's workers import first; they "
        "run on the server's own interpreter, so the venv needs no wasp but must be of the same "
        "Python major.minor. Relative to the config file; \"\" = none. Not with `python`."
    )] = ""
    enable_configuration_override: Annotated[bool, doc(
        "IIS's enableConfigurationOverride: false ignores every web.toml of this pool's applications."
    )] = True
    identity: Identity = field(default_factory=Identity)
    memory_limit: Annotated[Size, doc("cgroup v2 memory.max for the pool's workers together; 0 = none.")] = Size(0)
    cpu: Cpu = field(default_factory=Cpu)
    process_model: ProcessModel = field(default_factory=ProcessModel)
    recycling: Recycling = field(default_factory=Recycling)
    failure: Failure = field(default_factory=Failure)


class ErrorPage(_Strict, kw_only=True):
    """One IIS httpErrors `<error>`: the page a status (and substatus) gets in Custom mode."""

    status_code: Annotated[int, Meta(ge=400, le=999, description="The status (400-999).")]
    sub_status_code: Annotated[int, Meta(ge=-1, le=999, description=(
        "The substatus; -1 (IIS's default) = any substatus without an entry of its own."))] = -1
    path: Annotated[str, Meta(min_length=1, description=(
        "File: a file, relative to prefix_language_file_path (or, without one, to the "
        "application's physical_path); it must stay inside that folder. ExecuteURL: a URL path "
        "of the same application (\"/errors/404\"), run through the pipeline with the original "
        "status. Redirect: the URL (absolute, or a path of this site) the client is sent to with 302."))]
    prefix_language_file_path: Annotated[str, doc(
        "File mode: a folder holding one sub-folder per language (\"en-US\", \"fr-FR\"); the "
        "client's Accept-Language picks one, falling back to en-US, as IIS's custerr folders. "
        "Relative to the application's physical_path; \"\" = `path` alone."
    )] = ""
    response_mode: Annotated[Literal["File", "ExecuteURL", "Redirect"], doc(
        "File: send the file's content. ExecuteURL: run `path` as a child request. Redirect: 302."
    )] = "File"


class HttpErrors(_Strict):
    """IIS system.webServer/httpErrors: what an error response shows the client."""

    error_mode: Annotated[Literal["DetailedLocalOnly", "Custom", "Detailed"], doc(
        "Custom: IIS's terse custom error page (no substatus, module, handler or physical path) for "
        "everyone. Detailed: IIS's detailed error page (status.substatus, module, notification, handler, "
        "URL, physical path) for everyone. DetailedLocalOnly: detailed for a local request only, one "
        "from a loopback address without an X-Forwarded-For, Forwarded or X-Real-IP header; custom for "
        "the rest. Behind a reverse proxy on the same host that sends none of those headers, every "
        "visitor looks local: set Custom there."
    )] = "DetailedLocalOnly"
    existing_response: Annotated[Literal["Auto", "Replace", "PassThrough"], doc(
        "What happens to an error response (status >= 400) the handler made itself, an app's own "
        "404 say. Replace: the custom or detailed page replaces it. PassThrough: it goes out as the "
        "app made it. Auto (IIS: keep it if the module asked to skip custom errors): on Linux, an "
        "app's error response with a body is kept, an empty one replaced. Errors the server raises "
        "(404.0 of a missing file, 401.2, 500.19) always get the page."
    )] = "Auto"
    default_path: Annotated[str, doc(
        "IIS's defaultPath: the page for an error no `errors` entry matches, in "
        "default_response_mode; "" = wasp's built-in page. Cannot be set in a web.toml (IIS's "
        "install locks it)."
    )] = ""
    default_response_mode: Annotated[Literal["File", "ExecuteURL", "Redirect"], doc(
        "How default_path is used (as an entry's response_mode)."
    )] = "File"
    allow_absolute_paths_when_delegated: Annotated[bool, doc(
        "IIS's allowAbsolutePathsWhenDelegated: whether a web.toml's File pages may name an "
        "absolute path or a prefix_language_file_path. Without it a web.toml's File page must lie "
        "in the application's physical_path. Cannot be set in a web.toml."
    )] = False
    errors: Annotated[list[ErrorPage], collection(key=("status_code", "sub_status_code")), doc(
        "IIS's `<error>` entries, keyed by status and substatus: the custom page of an error. "
        "Without an entry, wasp's built-in pages (IIS's custerr en-US texts for 401, 403, 404, "
        "405, 406, 412, 500, 501, 502, which IIS's install lists) or a one-line message."
    )] = field(default_factory=list)


_CachePolicy = Literal["DontCache", "CacheUntilChange", "CacheForTimePeriod", "DisableCache"]


class CacheProfile(_Strict):
    """One entry of IIS caching/profiles: which responses of a URL extension the front may cache."""

    extension: Annotated[str, doc(
        "The URL extension the profile applies to, as IIS writes it (\".html\", case-insensitive); "
        "\"*\" = every URL, the extensionless ones of a Python app included."
    )]
    policy: Annotated[_CachePolicy, doc(
        "IIS's output cache policy (the user-mode cache). The worker's output cache "
        "(docs/output-cache.md) holds an app's responses the front does not (a query string, "
        "enable_kernel_cache = false, location ServerAndClient) under CacheUntilChange or "
        "CacheForTimePeriod. For the front's cache it counts when kernel_caching_policy is "
        "DontCache. DisableCache in either never caches (static files included)."
    )] = "DontCache"
    kernel_caching_policy: Annotated[_CachePolicy, doc(
        "IIS's kernelCachePolicy: how the front caches these responses. CacheUntilChange: until the "
        "pool gets a new worker (an app's response); CacheForTimePeriod: for `duration`. Static files "
        "are always cached until they change, unless DisableCache."
    )] = "DontCache"
    duration: Annotated[Duration, doc(
        "How long CacheForTimePeriod keeps a response; a response's Cache-Control s-maxage or "
        "max-age shortens it."
    )] = Duration(30)
    location: Annotated[Literal["Any", "Client", "Downstream", "Server", "None", "ServerAndClient"], doc(
        "IIS's OutputCacheLocation: where the response may be cached. Server, Any and "
        "ServerAndClient let the front and the worker's output cache hold it; Client, Downstream "
        "and None keep it off the server. When the app sent no Cache-Control, the worker adds "
        "one: Any and Downstream `public, max-age=<duration>`, Client and ServerAndClient "
        "`private, max-age=<duration>`, None `no-cache` (Server adds none)."
    )] = "Server"
    vary_by_headers: Annotated[list[str], doc(
        "Request headers whose values key separate cached copies (IIS's varyByHeaders, a list here). "
        "Header names the response lists in its own Vary are added."
    )] = field(default_factory=list)
    vary_by_query_string: Annotated[list[str], doc(
        "IIS's varyByQueryString: the query parameters whose values key separate copies in the "
        "worker's output cache; [\"*\"] = the whole query string. The front, like HTTP.sys's "
        "kernel cache, never caches a request with a query string. With an empty list a request "
        "with a query string is not cached at all."
    )] = field(default_factory=list)


class Caching(_Strict):
    """IIS system.webServer/caching for a site or an application."""

    enabled: Annotated[bool, doc("IIS's output cache switch: false caches nothing for these URLs.")] = True
    enable_kernel_cache: Annotated[bool, doc(
        "IIS's enableKernelCache: false keeps every response of these URLs out of the front's cache."
    )] = True
    profiles: Annotated[list[CacheProfile], collection(key="extension")] = field(default_factory=list)
    max_response_size: Annotated[Size, doc(
        "Largest response body the worker's output cache keeps (IIS caching maxResponseSize); "
        "the front's limit is [cache] max_response_size."
    )] = Size(262144)
    size_limit: Annotated[Size, doc(
        "Memory the worker's output cache of one application may use (bodies and heads); the "
        "least recently used go first. 0 turns the worker's output cache off."
    )] = Size(64 * 1024 * 1024)


class CacheSettings(_Strict):
    """The front's response cache (HTTP.sys's kernel cache), server-wide."""

    max_cache_size: Annotated[Size, doc(
        "Total size of the cached responses (IIS caching maxCacheSize, HTTP.sys "
        "UriMaxCacheMegabyteCount); the least recently used go first. 0 = automatic: an eighth of "
        "physical memory, at most 1 GiB."
    )] = Size(0)
    max_response_size: Annotated[Size, doc(
        "Largest response body the front caches (IIS caching maxResponseSize, HTTP.sys UriMaxUriBytes)."
    )] = Size(262144)
    frequent_hit_threshold: Annotated[int, Meta(ge=1, le=2147483647, description=(
        "A URL's response is cached once this many requests for it arrived within "
        "frequent_hit_time_period (IIS serverRuntime frequentHitThreshold)."))] = 2
    frequent_hit_time_period: Annotated[Duration, doc(
        "The window of frequent_hit_threshold (IIS serverRuntime frequentHitTimePeriod)."
    )] = Duration(10)
    scavenger_period: Annotated[Duration, doc(
        "A cached response not used for this long is dropped (HTTP.sys UriScavengerPeriod)."
    )] = Duration(120)


class Application(_Strict):
    path: Annotated[str, doc("URL path the application answers under: \"/\", \"/api\", \"/api/v2\".")] = "/"
    pool: Annotated[str, doc("Name of the pool that runs this application.")] = "DefaultAppPool"
    physical_path: Annotated[str, doc("Static content root. Relative to the config file; \"\" = none.")] = ""
    app: Annotated[str, doc("Python app as \"module:attribute\" (a factory call \"module:make()\" is allowed); \"\" = none.")] = ""
    interface: Annotated[Literal["auto", "wsgi", "asgi"], doc("How to call `app`; auto inspects it.")] = "auto"
    python_path: Annotated[list[str], doc("Directories put on sys.path before importing `app`. Relative to the config file.")] = field(default_factory=list)
    default_documents: Annotated[list[str] | None, doc(
        "Files tried, in order, for a directory request: replaces the inherited "
        "`default_document.files` (not set = inherited; IIS's Default.htm, Default.asp, index.htm, "
        "index.html, iisstart.htm by default)."
    )] = None
    initialization_pages: Annotated[list[str], doc("Paths a new worker requests before it takes traffic.")] = field(default_factory=list)
    execution_timeout: Annotated[Duration, doc(
        "Longest a request may run in the app; over it the client gets 503 and a worker whose request "
        "will not end is replaced after its thread stacks are logged. 0 = no limit."
    )] = Duration(0)
    allow_sub_dir_config: Annotated[bool, doc(
        "IIS's allowSubDirConfig: read the web.toml files of physical_path's sub-folders; false "
        "reads only the one at physical_path itself."
    )] = True
    http_errors: HttpErrors = field(default_factory=HttpErrors)  # keys not set here: the site's
    access: Annotated[Access | None, doc(
        "This application's security/access section; not set = the site's."
    )] = None
    caching: Caching = field(default_factory=Caching)  # keys not set here: the site's


#: IIS logExtFileFlags by name (iis-behaviour.md §1.3 logFile); wasp/wire/w3c.py maps each to its
#: field and writes them in IIS's order.
LogFlag = Literal["Date", "Time", "ClientIP", "UserName", "SiteName", "ComputerName", "ServerIP",
                  "Method", "UriStem", "UriQuery", "HttpStatus", "Win32Status", "BytesSent",
                  "BytesRecv", "TimeTaken", "ServerPort", "UserAgent", "Cookie", "Referer",
                  "ProtocolVersion", "Host", "HttpSubStatus"]
#: IIS's default logExtFileFlags.
DEFAULT_LOG_FLAGS = ("Date", "Time", "ClientIP", "UserName", "ServerIP", "Method", "UriStem", "UriQuery",
                     "TimeTaken", "HttpStatus", "Win32Status", "ServerPort", "UserAgent", "HttpSubStatus",
                     "Referer")


class CustomLogField(_Strict):
    """One IIS 8.5 custom log field (logFile/customFields `add`): a column after the standard ones."""

    log_field_name: Annotated[str, doc(
        "The column's name in the `#Fields` line (IIS's logFieldName), e.g. \"x-https\"; letters, "
        "digits and `-_()`, at most 64."
    )]
    source_name: Annotated[str, doc(
        "The request header, response header or server variable whose value is logged, e.g. "
        "\"X-Forwarded-For\" or \"HTTPS\"."
    )]
    source_type: Annotated[Literal["request_header", "response_header", "server_variable"], doc(
        "IIS's sourceType: RequestHeader, ResponseHeader or ServerVariable. Server variables: "
        "HTTPS (on/off), SERVER_PROTOCOL, SERVER_PORT, SERVER_PORT_SECURE (1/0), CRYPT_PROTOCOL, "
        "CRYPT_CIPHER_ALG_ID, REMOTE_ADDR, REMOTE_PORT, HTTP_HOST, REQUEST_METHOD, URL, QUERY_STRING, "
        "LOCAL_ADDR."
    )]


class SiteLog(_Strict):
    enabled: Annotated[bool, doc("Write the W3C extended log for this site.")] = True
    period: Annotated[Literal["daily", "hourly"], doc("Log file rollover period (UTC).")] = "daily"
    log_ext_file_flags: Annotated[list[LogFlag], doc(
        "IIS logExtFileFlags by name: the fields each line has. They are written in IIS's order "
        "whatever the order here: date time s-sitename s-computername s-ip cs-method cs-uri-stem "
        "cs-uri-query s-port cs-username c-ip cs-version cs(User-Agent) cs(Cookie) cs(Referer) cs-host "
        "sc-status sc-substatus sc-win32-status sc-bytes cs-bytes time-taken. The default is IIS's."
    )] = field(default_factory=lambda: list(DEFAULT_LOG_FLAGS))
    custom_fields: list[CustomLogField] = field(default_factory=list)


class SiteBinding(_Strict):
    """A binding written as a table: an https binding with its certificate (IIS binds a
    certificate to a binding)."""

    binding: Annotated[str, doc("appcmd form \"https/IP:PORT:HOST\", as in a plain string binding.")]
    certificate: Annotated[str, doc(
        "PEM file with the server certificate first, then its chain. Relative to the config file. "
        "\"acme\" = a certificate wasp obtains and renews from the `[acme]` CA for the binding's host "
        "(docs/acme.md); such a binding names no `key`."
    )] = ""
    key: Annotated[str, doc(
        "PEM file with the certificate's private key (unencrypted); \"\" = the key is in `certificate`. "
        "Relative to the config file."
    )] = ""
    ssl_flags: Annotated[list[Literal["sni", "disable_http2"]], doc(
        "IIS binding sslFlags by name: \"sni\" (1) offers this certificate to clients that ask for "
        "HOST by SNI. Without it the certificate is the IP:port certificate, served to every client "
        "of the port that names no SNI host of it. \"disable_http2\" (4): clients of this binding "
        "get HTTP/1.1 (ALPN offers no h2 with its certificate); on an http binding it refuses h2c "
        "on the binding's address:port."
    )] = field(default_factory=list)
    client_ca: Annotated[str, doc(
        "PEM file of the CAs client certificates are verified against. When set, the handshake asks "
        "for a client certificate (a client may send none; one that does not verify is refused). "
        "The handshake asks before it knows the host, so a port has one client_ca: it applies to every "
        "https binding of the port. Relative to the config file; \"\" = no client certificates."
    )] = ""


class AcmeSettings(_Strict):
    """The ACME CA that issues the certificates of bindings with certificate = "acme"."""

    directory: Annotated[str, doc(
        "The CA's ACME directory URL (https). The default is Let's Encrypt's production CA, as "
        "Caddy's; `agree_tos` must be true to use it."
    )] = "https://acme-v02.api.letsencrypt.org/directory"
    agree_tos: Annotated[bool, doc(
        "You agree to the CA's terms of service (the directory's termsOfService). Required for any "
        "binding with certificate = \"acme\": wasp does not agree on your behalf."
    )] = False
    contact: Annotated[list[str], doc(
        "Account contact URLs, e.g. [\"mailto:admin@example.test\"]: the CA writes there before a "
        "certificate expires or when it must be revoked. [] = none."
    )] = field(default_factory=list)
    challenge: Annotated[Literal["http-01", "tls-alpn-01"], doc(
        "How the CA checks you control the host: http-01 (the CA fetches "
        "/.well-known/acme-challenge/TOKEN over http on port 80: needs an http binding on port 80) or "
        "tls-alpn-01 (a TLS handshake with ALPN acme-tls/1 on port 443: the https binding itself). "
        "dns-01 (and so wildcard names) is not supported."
    )] = "http-01"
    ca_bundle: Annotated[str, doc(
        "PEM file of the CAs that verify the directory's HTTPS certificate; \"\" = the system's. "
        "Relative to the config file."
    )] = ""
    renew_before: Annotated[Duration, doc(
        "Renew a certificate when this little of its lifetime is left; 0 = when a third of its "
        "lifetime is left (Caddy's default; 30 days of Let's Encrypt's 90)."
    )] = Duration(0)
    retry_interval: Annotated[Duration, doc(
        "Wait after a failed order before the next try; it doubles after each failure in a row, up "
        "to a day. The certificate already served keeps serving meanwhile."
    )] = Duration(60)


class Access(_Strict):
    """system.webServer/security/access."""

    ssl_flags: Annotated[list[Literal["ssl", "ssl_negotiate_cert", "ssl_require_cert"]], doc(
        "IIS access sslFlags: \"ssl\" (Require SSL: a plain http request gets 403.4), "
        "\"ssl_negotiate_cert\" (accept client certificates: one is passed to the app if sent), "
        "\"ssl_require_cert\" (a request without a verified client certificate gets 403.7)."
    )] = field(default_factory=list)


class SiteLimits(_Strict):
    """IIS site limits, enforced by the front for this site's connections."""

    max_connections: Annotated[int, Meta(ge=0, description=(
        "Open connections of this site; over it: 503 ConnLimit and the connection closed. "
        "0 = unlimited (IIS's 4294967295)."))] = 0
    max_bandwidth: Annotated[Size, doc(
        "Bytes per second sent to all this site's clients together; 0 = unlimited (IIS's "
        "4294967295). At least 1024 when set, as in IIS."
    )] = Size(0)
    connection_timeout: Annotated[Duration, doc(
        "This site's idle keep-alive and entity-body limit (IIS site limits connectionTimeout); "
        "0 = `[limits].connection_timeout`."
    )] = Duration(0)


class Site(_Strict):
    name: Annotated[str, doc("Unique site name.")]
    id: Annotated[int, Meta(ge=1, description="Unique site id; the log folder is W3SVC<id>.")]
    bindings: Annotated[list[str | SiteBinding], doc(
        "appcmd form \"http/IP:PORT:HOST\"; IP \"*\" = any, empty HOST = any; \"http/unix:/abs/path.sock:HOST\" "
        "= a Unix socket (mode 0660). An https binding is a table: { binding = \"https/*:443:www.example.test\", "
        "certificate = \"www.pem\", key = \"www.key\", ssl_flags = [\"sni\"] }."
    )]
    server_auto_start: Annotated[bool, doc("Listen on the site's bindings when the server starts (otherwise the site is Stopped).")] = True
    log: SiteLog = field(default_factory=SiteLog)
    limits: SiteLimits = field(default_factory=SiteLimits)
    proxy_protocol: Annotated[bool, doc(
        "Every connection to this site's bindings starts with a PROXY protocol v1 or v2 header "
        "(HAProxy's) from a `server.trusted_proxies` peer; others are closed. Sites sharing an "
        "IP:port must agree."
    )] = False
    http_errors: HttpErrors = field(default_factory=HttpErrors)
    access: Access = field(default_factory=Access)
    caching: Caching = field(default_factory=Caching)
    health_url: Annotated[str, doc(
        "A path (\"/healthz\") the front answers itself, for load balancers: 200 \"OK\" while "
        "the server runs and every pool of the site's applications is Started, else 503 (also "
        "while the server drains on its way to stopping). Compared without regard to case; no "
        "worker is involved or started. \"\" = off."
    )] = ""
    applications: list[Application] = field(default_factory=list)


class Config(_Strict):
    server: ServerSettings = field(default_factory=ServerSettings)
    limits: Limits = field(default_factory=Limits)
    cache: CacheSettings = field(default_factory=CacheSettings)
    pool_defaults: dict = field(default_factory=dict)  # raw table, merged into each pool by the loader
    pools: list[Pool] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    acme: AcmeSettings = field(default_factory=AcmeSettings)
    # Not from the file: where it came from (for relative paths and reload).
    source: str = ""
    # Not from the file: the raw tables of the system.webServer sections (wasp/config/sections),
    # by level: {"server": {name: table}, "sites": {"<site id>": {...}}, "applications":
    # {"<site id><path>": {...}}}. Each worker decodes and merges them for its applications.
    sections: dict = field(default_factory=dict)


#: At most this many pools and sites: each has a row of the fronts' shared scoreboard
#: (wasp/common/scoreboard.py), which `wasp validate` and every reload check against.
MAX_POOLS = 4096
MAX_SITES = 4096

#: A Binding whose ip starts with this is a Unix socket at the path that follows (port 0).
UNIX_PREFIX = "unix:"


class Binding(Struct, frozen=True):
    """A parsed binding: "http/*:8080:api.example.test"."""

    protocol: str
    ip: str  # "*" or an address
    port: int
    host: str  # "" = any host, else lower-case

    def __str__(self) -> str:
        if self.ip.startswith(UNIX_PREFIX):  # a Unix socket: "http/unix:/run/app.sock:HOST"
            return f"{self.protocol}/{self.ip}:{self.host}"
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip  # IPv6, as written in the file
        return f"{self.protocol}/{ip}:{self.port}:{self.host}"


def encode(config: Config) -> bytes:
    """A config as msgpack, to hand to a child process."""
    return msgspec.msgpack.encode(config, enc_hook=_enc_hook)


def _enc_hook(value):
    if isinstance(value, Duration):
        return float(value)
    if isinstance(value, Size):
        return int(value)
    raise NotImplementedError(type(value))


def decode(data: bytes) -> Config:
    return msgspec.msgpack.decode(data, type=Config, dec_hook=_trusted_hook)


def _trusted_hook(tp, value):
    if tp is Duration:
        return Duration(value)
    if tp is Size:
        return Size(value)
    raise NotImplementedError(tp)
