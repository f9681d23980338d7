"""appcmd's output forms (reference §6.2) for the admin API's rows. Pure functions."""

from __future__ import annotations


def error(message: str) -> str:
    return f"ERROR ( message:{message} )"


def site_line(row: dict) -> str:
    bindings = ",".join(row.get("bindings", []))
    return f'SITE "{row["name"]}" (id:{row["id"]},bindings:{bindings},state:{row.get("state", "Unknown")})'


def app_line(row: dict) -> str:
    return f'APP "{row["site"]}{row["path"]}" (applicationPool:{row["pool"]})'


def pool_line(row: dict) -> str:
    # appcmd shows (MgdVersion:…,MgdMode:…,state:…); wasp has no managed runtime, so the same
    # shape carries what a wasp admin wants instead, with state last as appcmd has it.
    recycle = row.get("recycle", "ok")
    failing = f"recycle:{recycle}," if recycle and recycle != "ok" else ""
    return (f'APPPOOL "{row["name"]}" (workers:{row.get("workers", 0)},'
            f'queue:{row.get("queue", 0)},{failing}state:{row.get("state", "Unknown")})')


def wp_line(row: dict) -> str:
    return f'WP "{row["pid"]}" (applicationPool:{row["pool"]})'


def _client(value) -> str:
    """The client's address without its port, as appcmd shows it."""
    if isinstance(value, (list, tuple)) and value:
        return str(value[0])
    text = str(value)
    if text.startswith("[") and "]" in text:
        return text[1:text.index("]")]
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text


def request_line(row: dict) -> str:
    elapsed = int(round(float(row.get("elapsed_ms", 0))))
    return (f'REQUEST "{row.get("id")}" (url:{row.get("method", "")} {row.get("url", "")}, '
            f'time:{elapsed} msec, client:{_client(row.get("client", ""))}, '
            f'stage:{row.get("stage", "")}'
            + (f', module:{row["module"]}' if row.get("module") else "")
            + (f', user:{row["user"]}' if row.get("user") else "")
            # appcmd has no protocol field: plain HTTP/1.x lines stay as appcmd prints them.
            + (f', protocol:{row["protocol"]}' if str(row.get("protocol", "")).startswith("HTTPS")
               or str(row.get("protocol", "")) == "HTTP/2" else "")
            + ")")


def cache_line(row: dict) -> str:
    """One cached response, in appcmd's shape (netsh http show cachestate lists the same facts)."""
    expires = row.get("expires_in")
    expiry = "-" if expires is None else f"{expires}s"
    return (f'CACHE "{row.get("url", "")}" (site:{row.get("site_id", "")},size:{row.get("size", 0)},'
            f'hits:{row.get("hits", 0)},policy:{row.get("policy", "")},expires:{expiry})')


#: appcmd's object name and the row keys that make up its identity (`/text:*` prints them first).
OBJECTS = {
    "sites": ("SITE", (("SITE.NAME", "name"), ("SITE.ID", "id"))),
    "apps": ("APP", (("APP.NAME", None), ("APPPOOL.NAME", "pool"))),
    "pools": ("APPPOOL", (("APPPOOL.NAME", "name"),)),
    "wp": ("WP", (("WP.NAME", "pid"), ("APPPOOL.NAME", "pool"))),
    "requests": ("REQUEST", (("REQUEST.NAME", "id"),)),
    "cache": ("CACHE", (("CACHE.NAME", "url"),)),
}


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return "" if value is None else str(value)


def text_view(what: str, row: dict) -> str:
    """appcmd's `/text:*` detailed view: the object, its identity, then every attribute."""
    kind, identity = OBJECTS[what]
    lines = [kind]
    used = set()
    for label, key in identity:
        value = f'{row.get("site", "")}{row.get("path", "")}' if key is None else row.get(key)
        lines.append(f'  {label}:"{_text(value)}"')
        used.add(key)
    if what == "apps":
        used.update(("site", "path"))
    lines.extend(f'  {key}:"{_text(value)}"' for key, value in row.items() if key not in used)
    return "\n".join(lines)


def _key(what: str, attribute: str):
    """The row key of an attribute: itself, or the one an identity label (WP.NAME) stands for."""
    for label, key in OBJECTS.get(what, ("", ()))[1]:
        if attribute.upper() == label:
            return key
    return attribute


def has_attribute(what: str, row: dict, attribute: str) -> bool:
    key = _key(what, attribute)
    return key is None or key in row


def text_attribute(row: dict, attribute: str, what: str = "") -> str:
    """appcmd's `/text:ATTR`: the one value (an identity label such as APPPOOL.NAME works too)."""
    key = _key(what, attribute)
    if key is None:
        return _text(f'{row.get("site", "")}{row.get("path", "")}')
    return _text(row.get(key))


LINES = {"sites": site_line, "apps": app_line, "pools": pool_line, "wp": wp_line,
         "requests": request_line, "cache": cache_line}


def event_line(record: dict) -> str:
    """`#SEQ TIME ID LEVEL: MESSAGE`; the sequence number is what `events --since N` takes."""
    return (f'#{record.get("seq", "?")} {record.get("time", "")} {record.get("id", "")} '
            f'{record.get("level", "")}: {record.get("message", "")}')


def command_done(pool: str, verb: str) -> str:
    """`"DefaultAppPool" successfully recycled` (appcmd's wording)."""
    return f'"{pool}" successfully {verb}'


def _duration(seconds: float) -> str:
    """3d 4h, 2h 13m, 5m 2s, 42s: the two largest units, as `systemctl status` shows an age."""
    seconds = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def status_text(summary: dict) -> str:
    """`wasp status`: one screen, like `systemctl status`: the server, then each site, each pool
    with its workers, the response cache and the last events."""
    server = summary.get("server", {})
    state = server.get("state", "Unknown")
    lines = [f"\u25cf wasp {server.get('version', '')} - {state.lower()} since "
             f"{_duration(server.get('uptime_s', 0))} (manager pid {server.get('pid', '?')})",
             f"    config: {server.get('config_file') or '(embedded default site or one app)'}",
             f"    run dir: {server.get('run_dir', '')}   logs: {server.get('log_dir', '')}",
             f"    fronts: {server.get('fronts_answering', 0)}/{server.get('fronts', 0)} answering, "
             f"{server.get('connections', 0)} open connection"
             f"{'' if server.get('connections', 0) == 1 else 's'}"]
    cache = summary.get("cache", {})
    lines.append(f"    cache: {cache.get('entries', 0)} response"
                 f"{'' if cache.get('entries', 0) == 1 else 's'}, {_size(cache.get('bytes', 0))}")
    lines.append("")
    lines.append("Sites:")
    for site in summary.get("sites", []):
        lines.append(f"    {site['name']} (id {site['id']}) {site.get('state', 'Unknown')}: "
                     f"{', '.join(site.get('bindings', [])) or 'no bindings'}")
    lines.append("")
    lines.append("Pools:")
    workers = summary.get("workers", [])
    for pool in summary.get("pools", []):
        recycle = pool.get("recycle", "ok")
        lines.append(f"    {pool['name']} {pool.get('state', 'Unknown')}: "
                     f"{pool.get('workers', 0)}/{pool.get('max_processes', 0)} workers, "
                     f"queue {pool.get('queue', 0)}, in flight {pool.get('inflight', 0)}, "
                     f"served {pool.get('served', 0)}, {pool.get('start_mode', '')}"
                     + (f", recycle {recycle}" if recycle and recycle != "ok" else ""))
        for w in workers:
            if w.get("pool") == pool["name"]:
                lines.append(f"        \u2514\u2500 pid {w['pid']} {w.get('state', '')}, up "
                             f"{_duration(w.get('uptime_s', 0))}, {w.get('requests', 0)} requests, "
                             f"RSS {_size(int(w.get('rss', 0) or 0))}")
    events = summary.get("events", [])
    if events:
        lines.append("")
        lines.append("Last events:")
        for record in events:
            message = str(record.get("message", "")).split("\n", 1)[0]
            lines.append(f"    {record.get('time', '')} {record.get('id', '')} "
                         f"{record.get('level', '')}: {message}")
    return "\n".join(lines)
