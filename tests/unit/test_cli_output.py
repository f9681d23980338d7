"""appcmd's output forms."""

from __future__ import annotations

from wasp.cli import output


def test_site():
    row = {"name": "Default Web Site", "id": 1, "bindings": ["http/*:8080:"], "state": "Started"}
    assert output.site_line(row) == 'SITE "Default Web Site" (id:1,bindings:http/*:8080:,state:Started)'
    row["bindings"] = ["http/*:61902:localhost", "http/127.0.0.1:80:a.test"]
    assert output.site_line(row) == ('SITE "Default Web Site" (id:1,bindings:http/*:61902:localhost,'
                                     'http/127.0.0.1:80:a.test,state:Started)')


def test_app():
    assert output.app_line({"site": "Default Web Site", "path": "/", "pool": "DefaultAppPool"}) == \
        'APP "Default Web Site/" (applicationPool:DefaultAppPool)'
    assert output.app_line({"site": "S", "path": "/api", "pool": "P"}) == 'APP "S/api" (applicationPool:P)'


def test_pool_keeps_appcmds_shape_with_state_last():
    row = {"name": "DefaultAppPool", "state": "Started", "workers": 2, "queue": 0}
    assert output.pool_line(row) == 'APPPOOL "DefaultAppPool" (workers:2,queue:0,state:Started)'


def test_wp():
    assert output.wp_line({"pid": 4242, "pool": "DefaultAppPool"}) == 'WP "4242" (applicationPool:DefaultAppPool)'


def test_request():
    row = {"id": "fa00000008", "method": "GET", "url": "/x", "elapsed_ms": 2840.4,
           "client": ["127.0.0.1", 51234], "stage": "ExecuteRequestHandler"}
    assert output.request_line(row) == ('REQUEST "fa00000008" (url:GET /x, time:2840 msec, '
                                        'client:127.0.0.1, stage:ExecuteRequestHandler)')


def test_error_and_done():
    assert output.error('Cannot find APPPOOL object with identifier "X".') == \
        'ERROR ( message:Cannot find APPPOOL object with identifier "X". )'
    assert output.command_done("TroubleshootingPhp", "recycled") == '"TroubleshootingPhp" successfully recycled'


def test_event_line():
    line = output.event_line({"seq": 42, "time": "2024-01-01T00:00:00.000Z", "id": 5079, "level": "Information",
                              "message": "An administrator has requested a recycle"})
    # The sequence number first: it is what `wasp events --since 42` takes.
    assert line == "#42 2024-01-01T00:00:00.000Z 5079 Information: An administrator has requested a recycle"


def test_request_client_without_port():
    for client, shown in (("127.0.0.1:51234", "127.0.0.1"), ("[::1]:8080", "::1"), ("::1", "::1")):
        assert f"client:{shown}," in output.request_line({"id": 1, "client": client})


def test_text_view_is_appcmds_detailed_form():
    row = {"worker_id": 1, "pid": 4242, "pool": "Web", "state": "Ready", "uptime_s": 12.5,
           "requests": 7, "rss": 30_000_000}
    assert output.text_view("wp", row).splitlines() == [
        "WP", '  WP.NAME:"4242"', '  APPPOOL.NAME:"Web"', '  worker_id:"1"', '  state:"Ready"',
        '  uptime_s:"12.5"', '  requests:"7"', '  rss:"30000000"']
    app = {"site": "Default Web Site", "path": "/api", "pool": "P", "app": "m:app"}
    assert output.text_view("apps", app).splitlines() == [
        "APP", '  APP.NAME:"Default Web Site/api"', '  APPPOOL.NAME:"P"', '  app:"m:app"']
    assert output.text_attribute(row, "state") == "Ready"
    assert output.text_attribute(row, "missing") == ""


def test_cache_line():
    row = {"url": "http://example.test/a.css", "site_id": 1, "size": 6, "hits": 3,
           "policy": "CacheUntilChange", "expires_in": None}
    assert output.cache_line(row) == ('CACHE "http://example.test/a.css" (site:1,size:6,hits:3,'
                                      'policy:CacheUntilChange,expires:-)')
    row.update(policy="CacheForTimePeriod", expires_in=12.5)
    assert output.cache_line(row).endswith("policy:CacheForTimePeriod,expires:12.5s)")
