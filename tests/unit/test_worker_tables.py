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


def test_python_module_entries_are_found_at_any_depth():
    from wasp.config.sections import python_module_entries
    tables = {"server": {"modules": {"add": [{"name": "a", "type": "m:A"}, {"name": "static_file"}]}},
              "locations": [{"tables": {"modules": [{"name": "b", "type": "m:B"}]}}],
              "web": [{"modules": {"entries": [{"name": "a", "type": "m:A"}, {"name": "c", "type": ""}]}}]}
    assert sorted(python_module_entries(tables)) == [("a", "m:A"), ("b", "m:B")]
    assert python_module_entries({"modules": "nonsense"}) == []
