"""wasp/worker/tables.py: whether a section is written anywhere in the raw config tables."""

from wasp.worker.tables import mentioned


def test_mentioned_finds_a_section_at_any_level():
    tables = {"sites": [{"name": "s", "applications": [{"path": "/", "ip_security": {}}]}],
              "locations": [{"path": "s/x", "windows_authentication": {"enabled": True}}]}
    assert mentioned(tables, "ip_security")
    assert mentioned(tables, "windows_authentication")
    assert not mentioned(tables, "dynamic_ip_security")
    assert not mentioned({}, "ip_security")
    assert not mentioned({"ip_security_notes": "ip_security"}, "ip_security")  # keys, not values
